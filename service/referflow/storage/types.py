"""Column types that behave the same on SQLite and PostgreSQL, and the encrypted secret columns."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import BigInteger, DateTime, Integer, Text
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.types import TypeDecorator

from referflow.errors import UnreadableSecret
from referflow.storage.crypto import Keyring

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a real bigint.
BigIntPK = BigInteger().with_variant(Integer, "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Store aware datetimes as UTC; always read them back aware (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# The keyring of each engine, found through the dialect a value is bound or read with (every
# engine has its own dialect object), so two apps in one process can hold different keys.
_KEYRINGS: WeakKeyDictionary[Dialect, Keyring] = WeakKeyDictionary()


def use_keyring(engine: Engine, keyring: Keyring) -> None:
    """Encrypt and decrypt the secret columns of ``engine`` with ``keyring``."""
    _KEYRINGS[engine.dialect] = keyring


def keyring_of(dialect: Dialect) -> Keyring:
    """Return the keyring bound to an engine's dialect, or raise UnreadableSecret."""
    keyring = _KEYRINGS.get(dialect)
    if keyring is None:
        raise UnreadableSecret("this database connection has no secret key: build it with "
                               "Database(url, Keyring(settings.secret_keys))")
    return keyring


class EncryptedText(TypeDecorator[str]):
    """A secret string, stored encrypted (storage/crypto.py); ``purpose`` names the column."""

    impl = Text
    cache_ok = True

    def __init__(self, purpose: str):
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else keyring_of(dialect).encrypt(self.purpose, value)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else keyring_of(dialect).decrypt(self.purpose, value)


class EncryptedJSON(TypeDecorator[Any]):
    """A JSON document holding secrets, stored encrypted as one value."""

    impl = Text
    cache_ok = True

    def __init__(self, purpose: str):
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        plain = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return keyring_of(dialect).encrypt(self.purpose, plain)

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else json.loads(keyring_of(dialect).decrypt(self.purpose, value))


SECRET_TYPES = (EncryptedText, EncryptedJSON)
