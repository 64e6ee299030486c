"""dashboard sessions can be revoked: a session stamp per user

``users.session_stamp`` is a random string that every dashboard cookie of the user holds
(dashboard/auth.py); a new one (a password change, "sign out everywhere") ends every session
holding the old one. Existing users get a stamp each here; cookies made before it hold none, so
they are logged out once. The way down drops the column (sessions are then revocable no more).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01 12:00:00.000000
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

STAMP_BYTES = 16  # as domain/codes.py new_session_stamp at the time: 22 characters
USERS = sa.table('users', sa.column('id', sa.String(32)), sa.column('session_stamp', sa.String(32)))


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_stamp', sa.String(length=32), nullable=True))
    bind = op.get_bind()
    ids = bind.execute(sa.select(USERS.c.id)).scalars().all()
    if ids:  # dashboard users: a handful, one statement for them all
        bind.execute(USERS.update().where(USERS.c.id == sa.bindparam('uid'))
                     .values(session_stamp=sa.bindparam('stamp')),
                     [{'uid': uid, 'stamp': secrets.token_urlsafe(STAMP_BYTES)} for uid in ids])
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column('session_stamp', existing_type=sa.String(length=32), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_stamp')
