"""advocate page: the keyed hash of the permanent token, its generation and rotation time

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 03:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import referflow.storage.types

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing advocates get their hash when their portal_url is first given out (createLink,
    # getAdvocate): the token is derived from the install's hashing key, which migrations lack.
    with op.batch_alter_table('advocates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('portal_token_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('portal_generation', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('portal_rotated_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_advocates_portal_token_hash'), ['portal_token_hash'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('advocates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_advocates_portal_token_hash'))
        batch_op.drop_column('portal_rotated_at')
        batch_op.drop_column('portal_generation')
        batch_op.drop_column('portal_token_hash')
