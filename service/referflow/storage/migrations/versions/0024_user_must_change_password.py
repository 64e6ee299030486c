"""dashboard users: a password someone else set is changed at the next login

``users.must_change_password`` is true once a program's owner has set the account's password
(actions/accounts.py ``reset_password``): until its holder sets one of their own on the account
page, every program page sends them there. An owner may set the password only of an account
whose every program they own; the account may later join another program, and the password the
owner knows must not open it. Existing accounts start false. The way down drops the column.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03 13:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('must_change_password', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('must_change_password')
