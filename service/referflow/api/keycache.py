"""A per-process cache of API key -> program, so authentication costs no query when warm.

Entries live ``ttl`` seconds: a revoked key or a changed config reaches every worker within
that time (the worker that made the change drops its entry at once).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from referflow.storage.models import Program

DEFAULT_TTL = 5.0


@dataclass(frozen=True)
class CachedKey:
    """A detached snapshot of a program and the key id that opened it."""

    program: Program
    key_id: str
    expires: float


class KeyCache:
    """Thread-safe TTL cache keyed by the API key's SHA-256."""

    def __init__(self, ttl: float = DEFAULT_TTL):
        self.ttl = ttl
        self._entries: dict[str, CachedKey] = {}
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> CachedKey | None:
        """Return a fresh entry, or None."""
        entry = self._entries.get(key_hash)
        if entry is None or entry.expires < time.monotonic():
            return None
        return entry

    def put(self, key_hash: str, program: Program, key_id: str) -> None:
        """Keep a detached copy of ``program`` for this key."""
        snapshot = Program(id=program.id, name=program.name, config=program.config,
                           config_version=program.config_version, created_at=program.created_at)
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key_hash] = CachedKey(snapshot, key_id, time.monotonic() + self.ttl)

    def forget_program(self, program_id: str) -> None:
        """Drop every entry of a program (after its config changed)."""
        with self._lock:
            for key_hash in [h for h, e in self._entries.items() if e.program.id == program_id]:
                del self._entries[key_hash]
