"""Work-item leases: one worker owns a due row at a time; a dead worker's lease expires."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

PENDING = "pending"  # every leased family (DeliveryStatus, RewardStatus, SyncStatus) shares it
# The wait before each retry of a call that makes something in a store (a reward, a friend offer's
# discount): seconds, the last one repeating.
STORE_BACKOFF = (10, 60, 300, 1800, 7200, 21600, 43200)


def take(session: Session, model: Any, row_id: Any, now: datetime, seconds: float,
         working: str) -> Any | None:
    """Move a due ``pending`` row (or one whose lease expired) to ``working``; None if not ours."""
    taken = session.execute(update(model).where(
        model.id == row_id,
        or_((model.status == PENDING) & (model.next_attempt_at <= now),
            (model.status == working) & (model.lease_until < now)))
        .values(status=working, lease_until=now + timedelta(seconds=seconds))
        .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
    session.commit()
    return session.get(model, row_id) if taken == 1 else None


def due(session: Session, model: Any, now: datetime, working: str,
        limit: int = 200) -> list[tuple[Any, str]]:
    """Return (id, job generation) of rows due now; the generation changes with their state."""
    rows = session.execute(select(model.id, model.attempts, model.lease_until).where(or_(
        (model.status == PENDING) & (model.next_attempt_at <= now),
        (model.status == working) & (model.lease_until < now)))
        .order_by(model.next_attempt_at).limit(limit)).all()
    session.rollback()
    return [(row_id, generation(attempts, lease)) for row_id, attempts, lease in rows]


def generation(attempts: int, lease_until: datetime | None) -> str:
    """Return a job-id suffix that changes whenever the work item's state does."""
    return f"{attempts}-{int(lease_until.timestamp()) if lease_until else 0}"


def settle(row: Any, status: str) -> None:
    """Count the attempt and release the lease with the row's new status (caller commits)."""
    row.attempts += 1
    row.status, row.lease_until = status, None


def retry_later(row: Any, now: datetime, schedule: Sequence[float],
                retry_after: float | None = None) -> None:
    """Count the attempt, release the lease and make the row due again after its backoff.

    The wait is the provider's Retry-After when it gave one, else the schedule's entry for this
    attempt (the last one repeats), with +-10% jitter so retries of one outage spread out.
    """
    settle(row, PENDING)
    row.next_attempt_at = next_try(now, schedule, row.attempts, retry_after)


def next_try(now: datetime, schedule: Sequence[float], attempt: int,
             retry_after: float | None = None) -> datetime:
    """Return when attempt ``attempt + 1`` is due: the provider's Retry-After, else the schedule."""
    planned = schedule[min(max(attempt, 1), len(schedule)) - 1]
    wait = min(retry_after, max(schedule)) if retry_after else planned  # a huge Retry-After: capped
    return now + timedelta(seconds=wait * random.uniform(0.9, 1.1))  # noqa: S311 (jitter)
