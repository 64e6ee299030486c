"""moments, ask decisions, people and consent evidence

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 03:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import referflow.storage.types

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('people',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('program_id', sa.String(length=32), nullable=False),
    sa.Column('external_key', sa.String(length=64), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('email_key', sa.String(length=64), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('attributes', sa.JSON(), nullable=False),
    sa.Column('erased_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], name=op.f('fk_people_program_id_programs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_people')),
    sa.UniqueConstraint('program_id', 'external_key', name=op.f('uq_people_program_id_external_key'))
    )
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_people_program_id_email_key'), ['program_id', 'email_key'], unique=False)

    op.create_table('consents',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('program_id', sa.String(length=32), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=True),
    sa.Column('email_key', sa.String(length=64), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('text_version', sa.String(length=100), nullable=True),
    sa.Column('occurred_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_consents_person_id_people')),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], name=op.f('fk_consents_program_id_programs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consents'))
    )
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consents_person_id_channel_occurred_at'), ['person_id', 'channel', 'occurred_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_consents_program_id_email_key_channel'), ['program_id', 'email_key', 'channel'], unique=False)

    op.create_table('moment_decisions',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('program_id', sa.String(length=32), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('request_id', sa.String(length=200), nullable=True),
    sa.Column('moment', sa.String(length=40), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('occurred_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decision', sa.String(length=8), nullable=False),
    sa.Column('skip_reason', sa.String(length=40), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=True),
    sa.Column('send_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('outcomes', sa.JSON(), nullable=False),
    sa.Column('config_version', sa.Integer(), nullable=False),
    sa.Column('advocate_id', sa.String(length=32), nullable=True),
    sa.Column('code', sa.String(length=32), nullable=True),
    sa.Column('response', sa.String(length=16), nullable=True),
    sa.Column('responded_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('pruned_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_moment_decisions_person_id_people')),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], name=op.f('fk_moment_decisions_program_id_programs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_moment_decisions')),
    sa.UniqueConstraint('program_id', 'request_id', name=op.f('uq_moment_decisions_program_id_request_id'))
    )
    with op.batch_alter_table('moment_decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_moment_decisions_person_id_created_at'), ['person_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_moment_decisions_program_id_created_at'), ['program_id', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('moment_decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_moment_decisions_program_id_created_at'))
        batch_op.drop_index(batch_op.f('ix_moment_decisions_person_id_created_at'))
    op.drop_table('moment_decisions')
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consents_program_id_email_key_channel'))
        batch_op.drop_index(batch_op.f('ix_consents_person_id_channel_occurred_at'))
    op.drop_table('consents')
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_people_program_id_email_key'))
    op.drop_table('people')
