"""partial indexes on referrals: only the rows that set the indexed time (or channel)

Every claim and every row of `referflow import referrals` paid the upkeep of all the indexes on
``referrals``. Five of them are on a column that most rows leave NULL: ``hold_until`` (set when
a referral qualifies), ``review_deadline`` (in review only), ``approved_at`` (twice: by advocate
and by program) and ``channel`` (a click's ``?ch=``; imported referrals have none). They become
partial, ``WHERE <column> IS NOT NULL``, on SQLite and PostgreSQL alike: the rows without the
column skip them. Their queries compare the column (the due holds, the expired reviews, the
monthly caps, listReferrals by channel), which implies it is set, so they still use them
(tests/storage/test_partial_indexes.py). The way down puts the full indexes back.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01 11:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

# (index, its columns, the column a row must set to be in it), as models.Referral has them
PARTIAL = (
    ('ix_referrals_status_hold_until', ['status', 'hold_until'], 'hold_until'),
    ('ix_referrals_status_review_deadline', ['status', 'review_deadline'], 'review_deadline'),
    ('ix_referrals_advocate_id_approved_at', ['advocate_id', 'approved_at'], 'approved_at'),
    ('ix_referrals_program_id_approved_at', ['program_id', 'approved_at'], 'approved_at'),
    ('ix_referrals_program_id_channel_created_at_id',
     ['program_id', 'channel', 'created_at', 'id'], 'channel'),
)


def upgrade() -> None:
    for name, columns, column in PARTIAL:
        where = sa.text(f'{column} IS NOT NULL')
        op.drop_index(name, table_name='referrals')
        op.create_index(name, 'referrals', columns, sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    for name, columns, _column in PARTIAL:
        op.drop_index(name, table_name='referrals')
        op.create_index(name, 'referrals', columns)
