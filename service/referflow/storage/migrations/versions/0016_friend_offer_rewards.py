"""friend offers: a store discount per referral code; every reward kind (perks, discounts, tiers)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 03:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import referflow.storage.types

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('store_discounts',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('program_id', sa.String(length=32), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('advocate_id', sa.String(length=32), nullable=False),
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('terms', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('wanted', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('lease_until', referflow.storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('external_id', sa.String(length=200), nullable=True),
    sa.Column('coupon_id', sa.String(length=200), nullable=True),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('expires_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['code'], ['referral_codes.code'], name=op.f('fk_store_discounts_code_referral_codes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_store_discounts')),
    sa.UniqueConstraint('code', name=op.f('uq_store_discounts_code'))
    )
    with op.batch_alter_table('store_discounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_store_discounts_status_next_attempt_at'), ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_store_discounts_program_id_provider_external_id'), ['program_id', 'provider', 'external_id'], unique=False)

    # Rewards issued before this revision are gift cards (the only kind there was). A tier's
    # perks belong to an advocate, not to a referral.
    with op.batch_alter_table('rewards', schema=None) as batch_op:
        batch_op.alter_column('referral_id', existing_type=sa.String(length=32), nullable=True)
        batch_op.add_column(sa.Column('advocate_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('kind', sa.String(length=16), server_default='gift_card', nullable=False))
        batch_op.add_column(sa.Column('details', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('expires_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('rewards', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
        batch_op.drop_column('details')
        batch_op.drop_column('kind')
        batch_op.drop_column('advocate_id')
        batch_op.alter_column('referral_id', existing_type=sa.String(length=32), nullable=False)

    with op.batch_alter_table('store_discounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_store_discounts_program_id_provider_external_id'))
        batch_op.drop_index(batch_op.f('ix_store_discounts_status_next_attempt_at'))

    op.drop_table('store_discounts')
