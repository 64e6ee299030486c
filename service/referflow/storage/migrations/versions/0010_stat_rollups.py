"""program statistics rollups

stat_rollups holds each program's figures per calendar day in its timezone, split by channel and
by tier (domain/stats.py); stat_sharers the advocates whose first click is counted. The rollups of
existing rows are built here from the source tables (the same code as `referflow stats rebuild`).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 01:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'stat_rollups',
        sa.Column('program_id', sa.String(length=32), nullable=False),
        sa.Column('split', sa.String(length=8), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('segment', sa.String(length=40), nullable=False),
        sa.Column('metric', sa.String(length=64), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('count', sa.BigInteger(), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('program_id', 'split', 'day', 'segment', 'metric', 'currency',
                                name=op.f('pk_stat_rollups')),
    )
    with op.batch_alter_table('stat_rollups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stat_rollups_program_id_split_metric_day'),
                              ['program_id', 'split', 'metric', 'day'], unique=False)
    op.create_table(
        'stat_sharers',
        sa.Column('program_id', sa.String(length=32), nullable=False),
        sa.Column('advocate_id', sa.String(length=32), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint('program_id', 'advocate_id', name=op.f('pk_stat_sharers')),
    )
    _build()


def _build() -> None:
    """Count the rows already there (nothing to do on a new install)."""
    from referflow.actions.stats import rebuild  # noqa: PLC0415 (the app's code, at upgrade only)

    rebuild(Session(bind=op.get_bind()))


def downgrade() -> None:
    op.drop_table('stat_sharers')
    with op.batch_alter_table('stat_rollups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stat_rollups_program_id_split_metric_day'))
    op.drop_table('stat_rollups')
