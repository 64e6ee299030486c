"""lists of referrals, advocates and gift cards

Referrals get their click's channel and the indexes listReferrals pages by (newest first, alone,
by status, by channel); a referral_signals table indexes the codes of their reasons. Advocates get
the counters the leaderboard sorts on (referrals, approved or rewarded, clicks), and gift cards a
newest-first index. Existing rows are backfilled: channels from the clicks, signals from the
referrals' reasons, counters from counts.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 01:00:00.000000
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

COUNTERS = ('referral_count', 'approved_count', 'click_count')
REFERRAL_INDEXES = {
    'ix_referrals_program_id_created_at_id': ['program_id', 'created_at', 'id'],
    'ix_referrals_program_id_status_created_at_id': ['program_id', 'status', 'created_at', 'id'],
    'ix_referrals_program_id_channel_created_at_id': ['program_id', 'channel', 'created_at', 'id'],
}
ADVOCATE_INDEXES = {
    'ix_advocates_program_id_created_at_id': ['program_id', 'created_at', 'id'],
    'ix_advocates_program_id_approved_count_id': ['program_id', 'approved_count', 'id'],
    'ix_advocates_program_id_click_count_id': ['program_id', 'click_count', 'id'],
    'ix_advocates_program_id_tier': ['program_id', 'tier'],
}
BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('channel', sa.String(length=40), nullable=True))
        for name, columns in REFERRAL_INDEXES.items():
            batch_op.create_index(batch_op.f(name), columns, unique=False)
    with op.batch_alter_table('advocates', schema=None) as batch_op:
        for name in COUNTERS:
            batch_op.add_column(sa.Column(name, sa.Integer(), server_default='0', nullable=False))
        for name, columns in ADVOCATE_INDEXES.items():
            batch_op.create_index(batch_op.f(name), columns, unique=False)
    with op.batch_alter_table('gift_cards', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gift_cards_program_id_created_at_id'),
                              ['program_id', 'created_at', 'id'], unique=False)
    op.create_table(
        'referral_signals',
        sa.Column('referral_id', sa.String(length=32), nullable=False),
        sa.Column('code', sa.String(length=64), nullable=False),
        sa.Column('program_id', sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(['referral_id'], ['referrals.id'],
                                name=op.f('fk_referral_signals_referral_id_referrals')),
        sa.PrimaryKeyConstraint('referral_id', 'code', name=op.f('pk_referral_signals')),
    )
    with op.batch_alter_table('referral_signals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_referral_signals_program_id_code_referral_id'),
                              ['program_id', 'code', 'referral_id'], unique=False)
    _backfill()


def _backfill() -> None:
    if op.get_bind().dialect.name == 'postgresql':  # fresh statistics: each count reads an index
        op.execute(sa.text('ANALYZE referrals'))
        op.execute(sa.text('ANALYZE clicks'))
    op.execute(sa.text(
        'UPDATE referrals SET channel = '
        '(SELECT clicks.channel FROM clicks WHERE clicks.id = referrals.click_id) '
        'WHERE click_id IS NOT NULL'))
    op.execute(sa.text(
        'UPDATE advocates SET '
        'referral_count = (SELECT count(*) FROM referrals r WHERE r.advocate_id = advocates.id), '
        "approved_count = (SELECT count(*) FROM referrals r WHERE r.advocate_id = advocates.id "
        "AND r.status IN ('approved', 'rewarded')), "
        'click_count = (SELECT count(*) FROM clicks c WHERE c.advocate_id = advocates.id)'))
    _backfill_signals()


def _codes(reasons: Any) -> list[str]:
    """The codes of a referral's reasons (as the models' hooks write them at this revision)."""
    return sorted({str(r['code'])[:64] for r in reasons or ()
                   if isinstance(r, dict) and r.get('code')})


def _backfill_signals() -> None:
    bind = op.get_bind()
    referrals = sa.table('referrals', sa.column('id', sa.String), sa.column('program_id', sa.String),
                         sa.column('reasons', sa.JSON))
    signals = sa.table('referral_signals', sa.column('referral_id', sa.String),
                       sa.column('code', sa.String), sa.column('program_id', sa.String))
    last = ''
    while True:
        rows = bind.execute(sa.select(referrals.c.id, referrals.c.program_id, referrals.c.reasons)
                            .where(referrals.c.id > last).order_by(referrals.c.id)
                            .limit(BATCH)).all()
        if not rows:
            return
        values = [{'referral_id': row.id, 'code': code, 'program_id': row.program_id}
                  for row in rows for code in _codes(row.reasons)]
        if values:
            bind.execute(signals.insert(), values)
        last = rows[-1].id


def downgrade() -> None:
    with op.batch_alter_table('referral_signals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_referral_signals_program_id_code_referral_id'))
    op.drop_table('referral_signals')
    with op.batch_alter_table('gift_cards', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gift_cards_program_id_created_at_id'))
    with op.batch_alter_table('advocates', schema=None) as batch_op:
        for name in ADVOCATE_INDEXES:
            batch_op.drop_index(batch_op.f(name))
        for name in reversed(COUNTERS):
            batch_op.drop_column(name)
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        for name in REFERRAL_INDEXES:
            batch_op.drop_index(batch_op.f(name))
        batch_op.drop_column('channel')
