"""Jobs: module-level functions that take ids, never request state (rq runs them by name).

Each runs under a request id (logs.py): the one of the request that caused its work item when
the item remembers it, else the one it was enqueued under, else its own; and logs one line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from referflow import observability
from referflow.actions import inbound, offers, rewards, sync, webhooks
from referflow.jobs.context import services
from referflow.jobs.queue import enqueued_request_id, rq_connection
from referflow.logs import new_request_id, request_id_bound

log = logging.getLogger("referflow.jobs")
Task = TypeVar("Task", bound=Callable[..., Any])


def observed(cause: Callable[[Session, Any], str | None] | None = None) -> Callable[[Task], Task]:
    """Run a job under its request id (``cause`` finds the causing request's); log and count it."""

    def decorate(fn: Task) -> Task:
        @wraps(fn)
        def run(target_id: Any) -> Any:
            request_id = _cause(cause, target_id) or enqueued_request_id() or new_request_id()
            with request_id_bound(request_id):
                started, outcome = time.monotonic(), "error"
                try:
                    result = fn(target_id)
                    outcome = observability.outcome_of(result)
                    return result
                finally:
                    observability.job_done(fn.__name__, outcome, rq_connection())
                    log.info("job", extra={"data": {
                        "job": fn.__name__, "target": str(target_id), "outcome": outcome,
                        "duration_ms": round((time.monotonic() - started) * 1000, 2)}})

        return run  # type: ignore[return-value]

    return decorate


def _cause(cause: Callable[[Session, Any], str | None] | None, target_id: Any) -> str | None:
    if cause is None:
        return None
    with services().db.session() as session:
        return cause(session, target_id)


@observed(cause=webhooks.request_id_of_event)
def process_outbox_event(outbox_id: int) -> list[str]:
    """Fan one outbox event out to its subscriptions; return the deliveries created."""
    svc = services()
    with svc.db.session() as session:
        created = webhooks.fan_out(session, outbox_id)
    if svc.queue is not None:
        for delivery_id in created:
            svc.queue.enqueue(deliver_webhook, delivery_id, job_id=f"deliver-{delivery_id}-0-0")
    return created


@observed(cause=webhooks.request_id_of_delivery)
def deliver_webhook(delivery_id: str) -> str | None:
    """Make one delivery attempt; the retry is scheduled in the database."""
    svc = services()
    with svc.db.session() as session:
        return webhooks.deliver(session, delivery_id, svc.settings.allow_private_webhook_urls,
                                svc.settings.job_lease_seconds)


@observed()
def issue_reward(reward_id: str) -> str | None:
    """Issue one reward through the program's issuer (idempotent per reward id)."""
    svc = services()
    with svc.db.session() as session:
        return rewards.issue_reward(session, svc, reward_id)


@observed()
def sync_friend_offer(offer_id: str) -> str | None:
    """Create (or switch off) one friend offer's discount in the store (idempotent per row)."""
    svc = services()
    with svc.db.session() as session:
        return offers.sync_offer(session, svc, offer_id)


@observed()
def process_inbound_event(inbound_id: int) -> str | None:
    """Map one recorded provider event to its referral action."""
    svc = services()
    with svc.db.session() as session:
        return inbound.process(session, svc, inbound_id)


@observed()
def sync_to_provider(task_id: int) -> str | None:
    """Push one referral fact to Klaviyo or HubSpot."""
    svc = services()
    with svc.db.session() as session:
        return sync.run(session, svc, task_id)
