"""The shared clients of one process, Flask-free: what use cases and jobs are handed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from referflow.config import Settings
from referflow.contract import SchemaStore
from referflow.storage.db import Database

if TYPE_CHECKING:  # typing only: these modules sit above this one
    from referflow.api.keycache import KeyCache
    from referflow.api.ratelimit import RateLimits
    from referflow.jobs.queue import JobQueue


@dataclass
class Services:
    """Settings, the database, schemas and caches; the web app keeps its in ``app.extensions``."""

    settings: Settings
    db: Database
    schemas: SchemaStore
    keys: KeyCache | None = None  # API-key cache (web processes)
    limits: RateLimits | None = None  # the API's rate limits (web processes)
    jobs: Any = None  # the in-process ticker (embedded default) or None
    queue: JobQueue | None = None  # where jobs run: InlineQueue, or RqQueue in a worker

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        """Build the services a worker or CLI command needs (no web parts)."""
        return cls(settings, Database(settings.database_url), SchemaStore())
