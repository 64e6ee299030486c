"""SQLite writers take turns through a lock that wakes the next one at once.

SQLite lets one transaction write at a time. A writer that finds the database locked waits in
SQLite's busy handler, which sleeps and retries (1, 2, 5, 10 ... 100 ms): under a burst of claims
the write lock is free most of the time while the waiting writers sleep, and a claim's p99 grew
past a second (bench/wrk.py). So a connection about to write first takes this process's turn (a
thread lock) and then the database's turn (``flock`` on ``<database>.writer``, which the kernel
hands to the next process as soon as it is released), and gives both back when its transaction
ends: commit, rollback or close.

Turns are taken by the transactions of the app's sessions (``Database.sessions``: requests, jobs,
the CLI's commands), the short writers that contend. A bulk import's own connection takes none:
it holds a transaction over its temporary staging table for long, which never needed the
database's write lock. The turn only orders writers; SQLite's lock still decides. A writer
that does not take a turn (an import, the sqlite3 shell, another tool) still works: the others
wait for it in SQLite's busy handler, as before. If a turn cannot be had within ``WAIT_SECONDS`` (a thread that writes
on two connections at once would wait for itself), the write goes ahead without it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: the thread lock alone (one process's threads take turns)
    fcntl = None  # type: ignore[assignment]

WAIT_SECONDS = 30.0
READS = ("SELECT", "PRAGMA", "EXPLAIN")  # statements that never take SQLite's write lock


class Turns:
    """The writer turn of one database file, in this process."""

    def __init__(self, path: str):
        self.path = path
        self.lock = threading.Lock()
        self.fd: int | None = None
        self.pid = 0

    def take(self) -> bool:
        """Wait for the turn; False when it could not be had in time (write anyway)."""
        if not self.lock.acquire(timeout=WAIT_SECONDS):
            return False
        if fcntl is not None:
            with contextlib.suppress(OSError):  # no flock on this file system: the thread lock
                fcntl.flock(self._fd(), fcntl.LOCK_EX)
        return True

    def give_back(self) -> None:
        """End the turn (the caller holds it)."""
        if fcntl is not None and self.fd is not None and self.pid == os.getpid():
            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
        self.lock.release()

    def _fd(self) -> int:
        if self.fd is None or self.pid != os.getpid():  # opened after a fork, once per process
            self.fd = os.open(self.path + ".writer", os.O_RDWR | os.O_CREAT, 0o600)
            self.pid = os.getpid()
        return self.fd


_TURNS: dict[str, Turns] = {}
_TURNS_LOCK = threading.Lock()


def turns_of(path: str) -> Turns:
    """The turns of a database file (one per file and process)."""
    key = str(Path(path).resolve())
    with _TURNS_LOCK:
        if key not in _TURNS:
            _TURNS[key] = Turns(key)
        return _TURNS[key]


class WriterConnection(sqlite3.Connection):
    """A sqlite3 connection that takes its database's writer turn before its first write of a
    transaction and gives it back when the transaction ends (pass as ``factory``)."""

    turns: Turns | None = None
    takes_turns = False  # set while a session's transaction uses the connection
    holding = False

    def take_turn(self) -> None:
        """Called before a statement that writes (see ``before_execute``)."""
        if not self.holding and self.takes_turns and self.turns is not None:
            self.holding = self.turns.take()

    def _end_turn(self) -> None:
        self.takes_turns = False
        if self.holding and self.turns is not None:
            self.holding = False
            self.turns.give_back()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._end_turn()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._end_turn()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._end_turn()


def before_execute(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
    """SQLAlchemy ``before_cursor_execute``: a statement that may write takes the turn first."""
    connection = cursor.connection
    if isinstance(connection, WriterConnection) and connection.takes_turns \
            and not connection.holding and not statement.lstrip()[:7].upper().startswith(READS):
        connection.take_turn()


def session_began(_session: Any, _transaction: Any, connection: Any) -> None:
    """Session ``after_begin``: this transaction's writes take turns."""
    dbapi = connection.connection.dbapi_connection
    if isinstance(dbapi, WriterConnection):
        dbapi.takes_turns = True


def on_connect(dbapi_conn: Any, database: str) -> None:
    """Give a new connection of a database file its turns (not an in-memory database)."""
    if isinstance(dbapi_conn, WriterConnection) and database and database != ":memory:" \
            and not database.startswith("file::memory:"):
        dbapi_conn.turns = turns_of(database)
