"""INSERTs that skip the rows already recorded, built once per model, key and backend."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

DIALECTS = {"postgresql": postgresql, "sqlite": sqlite}


@functools.cache
def insert_new(dialect: str, model: Any, keys: tuple[str, ...], returning: str = "id") -> Any:
    """Return ``INSERT ... ON CONFLICT (keys) DO NOTHING RETURNING returning`` for ``model``.

    Run it with one row or a list of rows: only the rows it inserted come back, so a duplicate
    is told apart without a flush or a failed transaction. Built once (a statement built per
    call is compiled per call; this one is compiled once and cached).
    """
    table = model.__table__
    return (DIALECTS[dialect].insert(table).on_conflict_do_nothing(index_elements=list(keys))
            .returning(table.c[returning]))
