"""dashboard users and their roles per program

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 01:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import referflow.storage.types

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('users',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('email_key', sa.String(length=320), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('created_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email_key', name=op.f('uq_users_email_key'))
    )
    op.create_table('program_members',
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('program_id', sa.String(length=32), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], name=op.f('fk_program_members_program_id_programs')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_program_members_user_id_users')),
    sa.PrimaryKeyConstraint('user_id', 'program_id', name=op.f('pk_program_members'))
    )
    with op.batch_alter_table('program_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_program_members_program_id'), ['program_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('program_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_program_members_program_id'))
    op.drop_table('program_members')
    op.drop_table('users')
