"""Rewrite the secret columns in batches: encrypt (migration), decrypt (downgrade), rotate.

Values are read and written raw (no column types), walked in primary-key order a batch at a
time. A value is written back only while it is still the one read, so a concurrent change by
the app wins over a re-encryption of its old value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, MetaData, bindparam, column, func, select, table, tuple_, update
from sqlalchemy.engine import Connection, Engine

from referflow.errors import UnreadableSecret
from referflow.storage.crypto import Keyring
from referflow.storage.types import SECRET_TYPES

BATCH_SIZE = 500
Change = Callable[[str], str | None]  # the new stored value, or None to leave it


@dataclass(frozen=True)
class SecretColumn:
    """One encrypted column: its table, the table's primary key, and its purpose."""

    table: str
    key: tuple[str, ...]
    name: str
    purpose: str


def secret_columns(metadata: MetaData) -> list[SecretColumn]:
    """Return every encrypted column of the models."""
    return [SecretColumn(t.name, tuple(c.name for c in t.primary_key.columns), c.name,
                         c.type.purpose)
            for t in metadata.sorted_tables for c in t.columns if isinstance(c.type, SECRET_TYPES)]


def count(conn: Connection, col: SecretColumn) -> int:
    """Return how many rows hold the column."""
    return conn.scalar(select(func.count()).select_from(table(col.table))) or 0


def rewrite(conn: Connection, col: SecretColumn, change: Change,
            batch_size: int = BATCH_SIZE) -> Iterator[tuple[int, int]]:
    """Apply ``change`` to every non-null value; yield (rows read, values changed) per batch.

    Nothing is committed here: a migration runs in its own transaction, `secrets rotate`
    commits after each batch.
    """
    raw = table(col.table, *(column(n) for n in (*col.key, col.name)))
    keys = [raw.c[n] for n in col.key]
    write = update(raw).where(*(k == bindparam(f"_key{i}") for i, k in enumerate(keys)),
                              raw.c[col.name] == bindparam("_old")).values({col.name: bindparam("_new")})
    after: tuple[object, ...] | None = None
    while True:
        query = select(raw).order_by(*keys).limit(batch_size)
        if after is not None:
            query = query.where(_after(keys, after))
        rows = conn.execute(query).all()
        if not rows:
            return
        changes = []
        for *key, value in rows:
            new = None if value is None else _changed(col, key, value, change)
            if new is not None:
                changes.append({**{f"_key{i}": v for i, v in enumerate(key)}, "_old": value, "_new": new})
        if changes:
            conn.execute(write, changes)
        after = tuple(rows[-1][: len(keys)])
        yield len(rows), len(changes)


def _after(keys: Sequence[ColumnElement[Any]], after: tuple[object, ...]) -> ColumnElement[bool]:
    if len(keys) == 1:
        return keys[0] > after[0]
    return tuple_(*keys) > tuple_(*after)


def _changed(col: SecretColumn, key: list[object], value: str, change: Change) -> str | None:
    try:
        return change(value)
    except UnreadableSecret as exc:
        where = ", ".join(f"{n}={v}" for n, v in zip(col.key, key, strict=True))
        raise UnreadableSecret(f"{col.table} ({where}): {exc}") from exc


def reencrypting(keyring: Keyring, purpose: str) -> Change:
    """Return the change that puts a value under the current key (None when it is)."""
    return lambda value: keyring.reencrypt(purpose, value)


def decrypting(keyring: Keyring, purpose: str) -> Change:
    """Return the change that turns a stored value back into plain text."""
    return lambda value: keyring.decrypt(purpose, value)


@dataclass
class Rotation:
    """What a rotation did: rows read, and values re-encrypted per column."""

    seen: int = 0
    rotated: dict[str, int] = field(default_factory=dict)


def rotate(engine: Engine, keyring: Keyring, columns: list[SecretColumn],
           progress: Callable[[int], None] = lambda n: None, batch_size: int = BATCH_SIZE) -> Rotation:
    """Re-encrypt every value not under the current key, committing after each batch.

    Idempotent, and safe to interrupt: a value already under the current key is left alone,
    so a second run (or the rest of an interrupted one) only does what is left.
    """
    done = Rotation()
    with engine.connect() as conn:
        for col in columns:
            done.rotated[col.purpose] = 0
            for seen, changed in rewrite(conn, col, reencrypting(keyring, col.purpose), batch_size):
                conn.commit()
                done.seen += seen
                done.rotated[col.purpose] += changed
                progress(seen)
    return done
