"""statistics: expired gift cards are no liability

The rollups gain each gift card's expiring balance on its expiry day (metric card_expiring,
domain/stats.py); the rows of existing cards are counted here from the card ledger (the same
code as `referflow stats rebuild`). No table changes.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30 05:00:00.000000
"""

from __future__ import annotations

from alembic import op
from sqlalchemy.orm import Session

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    from referflow.actions.stats import recount_card_expiry  # noqa: PLC0415 (at upgrade only)

    recount_card_expiry(Session(bind=op.get_bind()))


def downgrade() -> None:
    op.execute("DELETE FROM stat_rollups WHERE metric = 'card_expiring'")
