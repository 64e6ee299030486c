"""Row locks that serialise the transactions deciding a limited resource (caps, velocity)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
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
