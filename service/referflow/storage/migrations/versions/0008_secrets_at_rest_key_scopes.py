"""secrets encrypted at rest; API key scopes and last use

Provider credentials and webhook secrets, outbound webhook signing secrets and the replayed
first answers of idempotent requests become text columns holding Fernet tokens
(storage/crypto.py); the rows already there are encrypted here, and decrypted on the way down.
The keys come from referflow.storage.migrate (``secret_keys``), else from the environment.

Existing API keys keep what they could do: scope admin-of-program.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

import referflow.storage.types
from referflow.config import Settings
from referflow.storage.crypto import Keyring
from referflow.storage.rekey import Change, SecretColumn, decrypting, reencrypting, rewrite

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# The encrypted columns as of this revision, with the type each had before it.
SECRETS = (
    (SecretColumn('provider_configs', ('program_id', 'provider'), 'webhook_secrets',
                  'provider_configs.webhook_secrets'), sa.JSON()),
    (SecretColumn('provider_configs', ('program_id', 'provider'), 'credentials',
                  'provider_configs.credentials'), sa.JSON()),
    (SecretColumn('webhook_subscriptions', ('id',), 'secret', 'webhook_subscriptions.secret'),
     sa.String(length=100)),
    (SecretColumn('idempotency_keys', ('id',), 'response', 'idempotency_keys.response'), sa.JSON()),
)


def upgrade() -> None:
    for col, before in SECRETS:
        _retype(col, before, sa.Text())
    for col, _ in SECRETS:
        _rewrite_all(col, reencrypting)
    _compact_sqlite_after()
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scopes', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('last_used_at', referflow.storage.types.UTCDateTime(timezone=True), nullable=True))
    op.execute(sa.text("UPDATE api_keys SET scopes = '[\"admin-of-program\"]'"))
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.alter_column('scopes', existing_type=sa.JSON(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('last_used_at')
        batch_op.drop_column('scopes')
    for col, _ in SECRETS:
        _rewrite_all(col, decrypting)
    for col, before in SECRETS:
        _retype(col, sa.Text(), before)


def _retype(col: SecretColumn, before: sa.types.TypeEngine, after: sa.types.TypeEngine) -> None:
    cast = 'json' if isinstance(after, sa.JSON) else 'text' if isinstance(after, sa.Text) else None
    with op.batch_alter_table(col.table, schema=None) as batch_op:
        batch_op.alter_column(col.name, existing_type=before, type_=after, existing_nullable=False,
                              postgresql_using=f'{col.name}::{cast}' if cast else None)


def _rewrite_all(col: SecretColumn, change: Callable[[Keyring, str], Change]) -> None:
    bind = op.get_bind()
    if not bind.scalar(sa.select(sa.func.count()).select_from(sa.table(col.table))):
        return  # nothing to encrypt: no key needed (a fresh database)
    for _batch in rewrite(bind, col, change(_keyring(), col.purpose)):
        pass


def _compact_sqlite_after() -> None:
    """Ask referflow.storage.migrate to VACUUM a SQLite file: free pages keep the plain text."""
    config = op.get_context().config
    if config is not None and op.get_bind().dialect.name == 'sqlite':
        config.attributes['compact_sqlite'] = True


def _keyring() -> Keyring:
    config = op.get_context().config
    keys = config.attributes.get('secret_keys') if config is not None else None
    return Keyring(keys or Settings.from_env().secret_keys)
