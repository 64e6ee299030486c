"""In-process job runner for the embedded default: a daemon thread running periodic sweeps."""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Flask

from referflow.actions.referrals import release_due_holds
from referflow.actions.reviews import resolve_expired_reviews

log = logging.getLogger("referflow.jobs")


def sweep(services: Any) -> int:
    """Run every periodic task once; return how many referrals moved."""
    secret = services.settings.secret_key
    with services.db.session() as session:
        return release_due_holds(session, secret) + resolve_expired_reviews(session, secret)


class InProcessRunner:
    """Runs the periodic sweeps in a daemon thread until stopped."""

    def __init__(self, services: Any, interval: float):
        self.services = services
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="referflow-jobs", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                sweep(self.services)
            except Exception:  # keep the runner alive; the next sweep retries
                log.exception("periodic sweep failed")


def init_app(app: Flask) -> InProcessRunner | None:
    """Create (not start) the in-process runner when there is no Redis."""
    services = app.extensions["referflow"]
    if services.settings.redis_url:
        return None
    return InProcessRunner(services, services.settings.job_poll_seconds)
