"""Rate limits on failed authentication and on the public endpoints (429 with Retry-After).

Built on ``limits`` (the engine of Flask-Limiter): moving windows kept in Redis when REDIS_URL
is set, so every web process counts together, and in memory on the embedded default.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from referflow.config import Settings
from referflow.errors import ConfigurationError, TooManyRequests

log = logging.getLogger("referflow.ratelimit")
KEY_PREFIX_CHARS = 12  # "rfk_" and 8 more: guesses at one key, spread over many addresses


class RateLimits:
    """The install's rate limits: auth failures, share-link visits, provider deliveries."""

    def __init__(self, settings: Settings):
        self.storage = storage_from_string(settings.redis_url or "memory://",
                                           key_prefix="referflow-limits")
        self.window = MovingWindowRateLimiter(self.storage)
        self.auth_failures = _parse(settings.rate_limit_auth_failures, "AUTH_FAILURES")
        self.public = _parse(settings.rate_limit_public, "PUBLIC")
        self.ingress = _parse(settings.rate_limit_ingress, "INGRESS")

    def refuse_if_over(self, item: RateLimitItem, *keys: str) -> None:
        """Raise 429 when ``keys`` have used up ``item``; never fail a request on a storage outage."""
        self._check(self.window.test, item, keys)

    def count(self, item: RateLimitItem, *keys: str) -> None:
        """Count one request (or failure) against ``keys``."""
        try:
            self.window.hit(item, *keys)
        except Exception:  # see refuse_if_over
            log.warning("rate-limit storage unavailable; not counting", exc_info=True)

    def take(self, item: RateLimitItem, *keys: str) -> None:
        """Refuse when over the limit, else count this request: one round trip to the storage
        (``hit`` counts only what it allows)."""
        self._check(self.window.hit, item, keys)

    def _check(self, allows: Callable[..., bool], item: RateLimitItem, keys: tuple[str, ...]) -> None:
        try:
            if allows(item, *keys):
                return
            reset = self.window.get_window_stats(item, *keys).reset_time
        except Exception:  # a limiter outage must not take the API down with it
            log.warning("rate-limit storage unavailable; not limiting", exc_info=True)
            return
        wait = max(1, math.ceil(reset - time.time()))
        raise TooManyRequests(f"too many requests; try again in {wait} s", retry_after=wait)


def key_prefix(token: str) -> str:
    """Return the part of a credential that failures are counted under."""
    return token[:KEY_PREFIX_CHARS]


def _parse(value: str, name: str) -> RateLimitItem:
    try:
        return parse(value)
    except ValueError as exc:
        raise ConfigurationError(f"REFERFLOW_RATE_LIMIT_{name} must look like '30/minute': "
                                 f"{value!r}") from exc
