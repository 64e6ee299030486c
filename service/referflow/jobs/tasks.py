"""Jobs: module-level functions that take ids, never request state (rq runs them by name)."""

from __future__ import annotations

import logging

from referflow.actions import inbound, rewards, sync, webhooks
from referflow.jobs.context import services

log = logging.getLogger("referflow.jobs")


def process_outbox_event(outbox_id: int) -> list[str]:
    """Fan one outbox event out to its subscriptions; return the deliveries created."""
    svc = services()
    with svc.db.session() as session:
        created = webhooks.fan_out(session, outbox_id)
    if svc.queue is not None:
        for delivery_id in created:
            svc.queue.enqueue(deliver_webhook, delivery_id, job_id=f"deliver-{delivery_id}-0-0")
    return created


def deliver_webhook(delivery_id: str) -> str | None:
    """Make one delivery attempt; the retry is scheduled in the database."""
    svc = services()
    with svc.db.session() as session:
        return webhooks.deliver(session, delivery_id, svc.settings.allow_private_webhook_urls,
                                svc.settings.job_lease_seconds)


def issue_reward(reward_id: str) -> str | None:
    """Issue one reward through the program's issuer (idempotent per reward id)."""
    svc = services()
    with svc.db.session() as session:
        return rewards.issue_reward(session, svc, reward_id)


def process_inbound_event(inbound_id: int) -> str | None:
    """Map one recorded provider event to its referral action."""
    svc = services()
    with svc.db.session() as session:
        return inbound.process(session, svc, inbound_id)


def sync_to_provider(task_id: int) -> str | None:
    """Push one referral fact to Klaviyo or HubSpot."""
    svc = services()
    with svc.db.session() as session:
        return sync.run(session, svc, task_id)
