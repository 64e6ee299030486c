"""Run Alembic migrations programmatically (no alembic.ini needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from referflow.storage.db import compact_sqlite

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str, secret_keys: Sequence[str] = (), hash_key: str = "") -> Config:
    """Return an Alembic config pointing at our migrations and ``url``.

    ``secret_keys`` reach the migrations that encrypt or decrypt stored secrets, ``hash_key``
    those that store keyed hashes (Settings.secret_key); without them, those migrations read the
    keys from the environment (Settings.from_env), when rows need them.
    """
    cfg = Config(attributes={"secret_keys": tuple(secret_keys), "hash_key": hash_key})
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head", secret_keys: Sequence[str] = (),
            hash_key: str = "") -> None:
    """Migrate the database at ``url`` up to ``revision``.

    A migration that rewrote secrets in a SQLite file asks for it to be compacted after, so no
    plain-text copy is left in its free pages or write-ahead log.
    """
    cfg = alembic_config(url, secret_keys, hash_key)
    command.upgrade(cfg, revision)
    if cfg.attributes.get("compact_sqlite"):
        compact_sqlite(url)


def downgrade(url: str, revision: str, secret_keys: Sequence[str] = (), hash_key: str = "") -> None:
    """Migrate the database at ``url`` down to ``revision``."""
    command.downgrade(alembic_config(url, secret_keys, hash_key), revision)


def is_at_head(conn: Connection) -> bool:
    """Tell whether the database behind ``conn`` is at the latest revision."""
    heads = set(ScriptDirectory.from_config(alembic_config("")).get_heads())
    return set(MigrationContext.configure(conn).get_current_heads()) == heads
