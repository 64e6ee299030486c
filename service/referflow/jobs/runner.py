"""Periodic work: release holds, resolve expired reviews, dispatch the outbox, retry deliveries.

``tick`` is idempotent and safe to run from many processes at once. The embedded default runs
it in a daemon thread with inline jobs; ``referflow worker`` runs it beside rq workers.
"""

from __future__ import annotations

import logging
import threading
import time

from flask import Flask

from referflow.actions.inbound import due_inbound
from referflow.actions.lifecycle import release_due_holds
from referflow.actions.offers import due_offers
from referflow.actions.retention import prune
from referflow.actions.reviews import resolve_expired_reviews
from referflow.actions.rewards import due_rewards, fulfil_stranded_perks
from referflow.actions.sync import due_tasks
from referflow.actions.webhooks import due_work
from referflow.domain.timeutil import utcnow
from referflow.jobs import context
from referflow.jobs.queue import InlineQueue, JobQueue
from referflow.jobs.tasks import (
    deliver_webhook,
    issue_reward,
    process_inbound_event,
    process_outbox_event,
    sync_friend_offer,
    sync_to_provider,
)
from referflow.logs import new_request_id, request_id_bound
from referflow.services import Services

log = logging.getLogger("referflow.jobs")
PRUNE_EVERY_SECONDS = 300


def sweep(services: Services) -> int:
    """Run the periodic state changes once; return how many referrals moved."""
    secret = services.settings.secret_key
    with services.db.session() as session:
        return (release_due_holds(session, secret) + resolve_expired_reviews(session, secret)
                + fulfil_stranded_perks(session, secret))


def dispatch(services: Services, queue: JobQueue) -> int:
    """Hand undone outbox events, due deliveries and due rewards to the queue; return how many."""
    now = utcnow()
    with services.db.session() as session:
        outbox, deliveries = due_work(session, now)
        rewards = due_rewards(session, now)
        offers = due_offers(session, now)
        inbound = due_inbound(session, now)
        syncs = due_tasks(session, now)
    bucket = int(now.timestamp()) // 30  # an undone outbox row is offered again every 30 s
    for outbox_id in outbox:
        queue.enqueue(process_outbox_event, outbox_id, job_id=f"outbox-{outbox_id}-{bucket}")
    for delivery_id, generation in deliveries:
        queue.enqueue(deliver_webhook, delivery_id, job_id=f"deliver-{delivery_id}-{generation}")
    for reward_id, generation in rewards:
        queue.enqueue(issue_reward, reward_id, job_id=f"reward-{reward_id}-{generation}")
    for offer_id, generation in offers:
        queue.enqueue(sync_friend_offer, offer_id, job_id=f"offer-{offer_id}-{generation}")
    for inbound_id, attempts in inbound:
        queue.enqueue(process_inbound_event, inbound_id,
                      job_id=f"inbound-{inbound_id}-{attempts}-{bucket}")
    for task_id, generation in syncs:
        queue.enqueue(sync_to_provider, task_id, job_id=f"sync-{task_id}-{generation}")
    return len(outbox) + len(deliveries) + len(rewards) + len(offers) + len(inbound) + len(syncs)


def tick(services: Services, queue: JobQueue) -> None:
    """Run one round of periodic work (under a request id of its own, for what it causes)."""
    with request_id_bound(new_request_id()):
        sweep(services)
        dispatch(services, queue)


def prune_expired(services: Services) -> dict[str, int]:
    """Prune one batch of data older than the retention period (REFERFLOW_RETENTION_DAYS)."""
    with services.db.session() as session:
        return prune(session, utcnow(), services.settings.retention_days)


class Ticker:
    """Runs ``tick`` in a daemon thread every ``interval`` seconds until stopped."""

    def __init__(self, services: Services, queue: JobQueue, interval: float):
        self.services, self.queue, self.interval = services, queue, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="referflow-ticker", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        next_prune = 0.0
        while not self._stop.wait(self.interval):
            try:
                tick(self.services, self.queue)
                if time.monotonic() >= next_prune:  # retention: a batch every few minutes is plenty
                    prune_expired(self.services)
                    next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
            except Exception:  # keep ticking; the database says what is left to do
                log.exception("tick failed")


def init_app(app: Flask) -> Ticker | None:
    """Embedded default (no Redis): inline jobs and a ticker thread (started by the server)."""
    services = app.extensions["referflow"]
    if services.settings.redis_url:
        return None
    queue = InlineQueue()
    services.queue = queue
    context.use(services)
    return Ticker(services, queue, services.settings.job_poll_seconds)
