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
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        col = getattr(model, column)
        session.execute(update(model).where(model.id == row_id).values({column: col})
                        .execution_options(synchronize_session=False))
    else:
        session.execute(select(model.id).where(model.id == row_id).with_for_update(key_share=True))


def lock_and_load(session: Session, model: Any, row_id: str, column: str) -> Any:
    """``serialise_on`` and read the row as it is once locked, in one statement; None if absent.

    PostgreSQL: the locking ``SELECT`` returns the row's latest committed version; SQLite: the
    no-op ``UPDATE ... RETURNING`` returns it under the write lock. Either way an instance this
    session held already is refreshed (``populate_existing``).
    """
    statement = _locked_read(model, column, session.get_bind().dialect.name == "sqlite")
    return session.scalars(statement, {"row_id": row_id}).first()


@functools.cache
def _locked_read(model: Any, column: str, sqlite: bool) -> Any:
    """The statement of ``lock_and_load``, built once per model, column and backend."""
    options = {"populate_existing": True}
    if sqlite:
        col = getattr(model, column)
        return (update(model).where(model.id == bindparam("row_id")).values({column: col})
                .returning(model).execution_options(synchronize_session=False, **options))
    return (select(model).where(model.id == bindparam("row_id")).with_for_update(key_share=True)
            .execution_options(**options))

