"""experiments, their stored assignments, the variants of referrals and asks; tiers set by hand

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 03:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import referflow.storage.types

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('experiments',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('program_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('subject', sa.String(length=16), nullable=False),
    sa.Column('running_subject', sa.String(length=16), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('design', sa.JSON(), nullable=False),
    sa.Column('created_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('stopped_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('stop_note', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], name=op.f('fk_experiments_program_id_programs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_experiments')),
    sa.UniqueConstraint('program_id', 'running_subject', name=op.f('uq_experiments_program_id_running_subject'))
    )
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_experiments_program_id_created_at_id'), ['program_id', 'created_at', 'id'], unique=False)

    op.create_table('experiment_assignments',
    sa.Column('experiment_id', sa.String(length=32), nullable=False),
    sa.Column('subject_key', sa.String(length=64), nullable=False),
    sa.Column('advocate_id', sa.String(length=32), nullable=True),
    sa.Column('variant', sa.String(length=40), nullable=False),
    sa.Column('assigned_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], name=op.f('fk_experiment_assignments_experiment_id_experiments')),
    sa.PrimaryKeyConstraint('experiment_id', 'subject_key', name=op.f('pk_experiment_assignments'))
    )
    with op.batch_alter_table('experiment_assignments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_experiment_assignments_advocate_id'), ['advocate_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_experiment_assignments_experiment_id_variant'), ['experiment_id', 'variant'], unique=False)

    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('variants', sa.JSON(none_as_null=True), nullable=True))
    with op.batch_alter_table('moment_decisions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('variants', sa.JSON(none_as_null=True), nullable=True))
    with op.batch_alter_table('advocates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tier_manual', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('advocates', schema=None) as batch_op:
        batch_op.drop_column('tier_manual')
    with op.batch_alter_table('moment_decisions', schema=None) as batch_op:
        batch_op.drop_column('variants')
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.drop_column('variants')
    with op.batch_alter_table('experiment_assignments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_experiment_assignments_experiment_id_variant'))
        batch_op.drop_index(batch_op.f('ix_experiment_assignments_advocate_id'))
    op.drop_table('experiment_assignments')
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_experiments_program_id_created_at_id'))
    op.drop_table('experiments')
