"""Engine and sessions for SQLite (WAL) and PostgreSQL (psycopg 3) from the same code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from referflow.storage import sqlite_writer
from referflow.storage.crypto import Keyring
from referflow.storage.types import use_keyring


def make_engine(url: str) -> Engine:
    """Create an engine tuned for the backend behind ``url``."""
    if url.startswith("sqlite"):
        _ensure_sqlite_dir(url)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False,
                                                  "factory": sqlite_writer.WriterConnection})
        event.listen(engine, "connect", _sqlite_pragmas)
        database = engine.url.database or ""
        event.listen(engine, "connect",
                     lambda dbapi_conn, _record: sqlite_writer.on_connect(dbapi_conn, database))
        event.listen(engine, "before_cursor_execute", sqlite_writer.before_execute)
        return engine
    # connect_timeout: a database that is down or unreachable fails /readyz and requests in
    # seconds instead of hanging a worker for the TCP timeout.
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                         connect_args={"connect_timeout": 5})


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def compact_sqlite(url: str) -> None:
    """Rewrite a SQLite file without free pages and empty its WAL.

    Rows rewritten in place (encrypted, re-encrypted) leave their old bytes in free pages and
    in the write-ahead log until then; a copy of the file would still hold them.
    """
    engine = make_engine(url)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()


class Database:
    """One engine and its session factory; ``keyring`` reads and writes the secret columns."""

    def __init__(self, url: str, keyring: Keyring | None = None):
        self.url = url
        self.engine = make_engine(url)
        if keyring is not None:
            use_keyring(self.engine, keyring)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        if self.engine.dialect.name == "sqlite":  # writers take turns (storage/sqlite_writer.py)
            event.listen(self.sessions, "after_begin", sqlite_writer.session_began)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a session that is rolled back on error and always closed."""
        session = self.sessions()
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
