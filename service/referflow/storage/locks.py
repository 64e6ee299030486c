"""Row locks that serialise the transactions deciding a limited resource (caps, velocity)."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session


def serialise_on(session: Session, model: Any, row_id: str, column: str) -> None:
    """Hold ``row_id``'s write lock until this transaction ends, before reading what it guards.

    PostgreSQL: ``SELECT ... FOR NO KEY UPDATE``; later statements of the same transaction see
    every transaction that held the lock before. (Not ``FOR UPDATE``: that would also block every
    insert whose foreign key points at the row, and deadlock a claim against an approval.)
    Lock order, everywhere: referral, then programme, then advocate.

    SQLite has no row locks: a no-op write of ``column`` takes the database's write lock
    (waiting on busy_timeout), which serialises the deciders.
    """
    session.execute(_lock(model, column, _on_sqlite(session), load=False), {"row_id": row_id})


def lock_and_load(session: Session, model: Any, row_id: str, column: str) -> Any:
    """``serialise_on`` and read the row as it is once locked, in one statement; None if absent.

    PostgreSQL: the locking ``SELECT`` returns the row's latest committed version; SQLite: the
    no-op ``UPDATE ... RETURNING`` returns it under the write lock. Either way an instance this
    session held already is refreshed (``populate_existing``).
    """
    statement = _lock(model, column, _on_sqlite(session), load=True)
    return session.scalars(statement, {"row_id": row_id}).first()


def _on_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


@functools.cache
def _lock(model: Any, column: str, sqlite: bool, load: bool) -> Any:
    """The lock statement of a model's row, reading the row back when ``load``; built once."""
    row = model.id == bindparam("row_id")
    if sqlite:
        statement: Any = update(model).where(row).values({column: getattr(model, column)})
        statement = statement.returning(model) if load else statement
        return statement.execution_options(synchronize_session=False, populate_existing=load)
    statement = select(model if load else model.id).where(row).with_for_update(key_share=True)
    return statement.execution_options(populate_existing=True) if load else statement
