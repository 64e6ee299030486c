"""Idempotency-Key: the first response to a (scope, key) is replayed for the same request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from referflow.errors import Conflict
from referflow.storage.models import IdempotencyRecord


@dataclass(frozen=True)
class StoredResponse:
    """A response kept for replay."""

    status: int
    body: dict[str, Any]


def lookup(session: Session, scope: str, key: str, request_hash: str) -> StoredResponse | None:
    """Return the stored response of this key, None if unseen; 409 if the body differs."""
    row = session.scalar(select(IdempotencyRecord).where(IdempotencyRecord.scope == scope,
                                                         IdempotencyRecord.key == key))
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise Conflict("this Idempotency-Key was used with a different request",
                       code="idempotency_key_reused")
    return StoredResponse(row.status_code, row.response)


def store(session: Session, scope: str, key: str, request_hash: str,
          response: StoredResponse) -> StoredResponse:
    """Keep a response; when a concurrent twin stored first, return theirs instead."""
    session.add(IdempotencyRecord(scope=scope, key=key, request_hash=request_hash,
                                  status_code=response.status, response=response.body))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        first = lookup(session, scope, key, request_hash)
        assert first is not None
        return first
    return response
