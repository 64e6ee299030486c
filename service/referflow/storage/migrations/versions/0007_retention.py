"""retention: when an event's payload was pruned

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 19:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import referflow.storage.types

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pruned_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('inbound_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pruned_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('inbound_events', schema=None) as batch_op:
        batch_op.drop_column('pruned_at')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('pruned_at')
