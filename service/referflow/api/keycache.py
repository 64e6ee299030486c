"""A per-process cache of API key -> program, so authentication costs no query when warm.

Entries live ``ttl`` seconds: a revoked key or a changed config reaches every process within
that time (the process that made the change drops its entries at once). The cache also decides
when a key's ``last_used_at`` is due: at most once a minute per key and process.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from referflow.storage.models import ApiKey, Program

DEFAULT_TTL = 5.0
TOUCH_EVERY = 60.0
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class CachedKey:
    """A detached snapshot of a program and the key that opened it."""

    program: Program
    key_id: str
    prefix: str
    scopes: frozenset[str]
    expires: float


class KeyCache:
    """Thread-safe TTL cache keyed by the API key's SHA-256."""

    def __init__(self, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[str, CachedKey] = {}
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> CachedKey | None:
        """Return a fresh entry, or None."""
        entry = self._entries.get(key_hash)
        if entry is None or entry.expires < self.clock():
            return None
        return entry

    def put(self, key_hash: str, program: Program, key: ApiKey) -> CachedKey:
        """Keep a detached copy of ``program`` and the key's scopes; return the entry."""
        snapshot = Program(id=program.id, name=program.name, config=program.config,
                           config_version=program.config_version, created_at=program.created_at)
        entry = CachedKey(snapshot, key.id, key.prefix, frozenset(key.scopes), self.clock() + self.ttl)
        with self._lock:
            if len(self._entries) > MAX_ENTRIES:
                self._entries.clear()
            self._entries[key_hash] = entry
        return entry

    def forget_program(self, program_id: str) -> None:
        """Drop every entry of a program (after its config changed)."""
        self._forget(lambda e: e.program.id == program_id)

    def forget_key(self, key_id: str) -> None:
        """Drop the entry of one key (after it was revoked)."""
        self._forget(lambda e: e.key_id == key_id)

    def _forget(self, matches: Callable[[CachedKey], bool]) -> None:
        with self._lock:
            for key_hash in [h for h, e in self._entries.items() if matches(e)]:
                del self._entries[key_hash]

    def touch_due(self, key_id: str) -> bool:
        """Tell whether this key's last use should be written now (and note that it is)."""
        now = self.clock()
        with self._lock:
            if now - self._touched.get(key_id, -math.inf) < TOUCH_EVERY:
                return False
            if len(self._touched) > MAX_ENTRIES:
                self._touched.clear()
            self._touched[key_id] = now
            return True
