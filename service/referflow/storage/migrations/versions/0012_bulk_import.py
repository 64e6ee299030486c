"""bulk import: no schema change

The bulk imports (`referflow customers import`, `referflow import referrals`) find what is
already there with NOT EXISTS over the indexes the tables have (known customers by
(program_id, external_id) and (program_id, email_key); referrals by the unique
(program_id, friend_external_id)), so no index is added. Kept as a step of the chain.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 02:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
