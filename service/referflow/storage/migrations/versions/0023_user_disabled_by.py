"""dashboard users: who disabled an account

``users.disabled_by`` is ``admin`` when the install's admin disabled the account (the CLI), the
owner's user id when a program's owner did (actions/accounts.py), NULL otherwise. An owner may
enable an account an owner disabled, not one the admin disabled (an account shut out as
compromised stays out until the admin lets it back). Accounts disabled before this revision
keep NULL: by whom is not known, so an owner who may manage them can still enable them, as
before. The way down drops the column.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('disabled_by', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('disabled_by')
