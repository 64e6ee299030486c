"""Alembic environment: runs against the URL given by referflow.storage.migrate."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from referflow.storage.db import make_engine
from referflow.storage.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run migrations with a live connection."""
    connectable = config.attributes.get("connection")
    if connectable is not None:
        _run(connectable)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    if engine.dialect.name == "sqlite":
        _transactional_ddl(engine)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:  # a failed migration too: no connection left for the garbage collector
        engine.dispose()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite needs batch mode to alter tables
        compare_type=True,
    )
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode rebuilds a table (copy, drop, rename): with foreign keys enforced, dropping
        # a table that other rows point at fails (gift_cards under its ledger entries). The
        # pragma only takes effect outside a transaction; the keys are checked after.
        _pragma(connection, "PRAGMA foreign_keys=OFF")
    try:
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"foreign keys broken by the migration: {broken[:5]}")
    finally:
        if sqlite:
            _pragma(connection, "PRAGMA foreign_keys=ON")


def _transactional_ddl(engine: Engine) -> None:
    """Make a migration one SQLite transaction, its DDL included: Python's sqlite3 opens a
    transaction only before INSERT, UPDATE and DELETE, so each ALTER or CREATE committed at
    once, and a migration that failed half-way left its first columns behind (its retry then
    failed on them). SQLAlchemy's recipe: the driver's own transaction handling off, and
    BEGIN emitted when SQLAlchemy begins."""

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")


def _pragma(connection: Connection, statement: str) -> None:
    """Run a pragma outside any transaction (foreign_keys is ignored inside one)."""
    if connection.in_transaction():
        connection.commit()
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    if getattr(dbapi, "in_transaction", False):
        dbapi.commit()
    dbapi.execute(statement)


run_migrations_online()
