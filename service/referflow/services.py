"""The shared clients of one process, Flask-free: what use cases and jobs are handed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from referflow.config import Settings
from referflow.contract import SchemaStore
from referflow.storage.crypto import Keyring
from referflow.storage.db import Database


class JobQueue(Protocol):
    """Run ``func(*args)`` once per ``job_id``, now or on a worker (jobs/queue.py has both)."""

    def enqueue(self, func: Callable[..., Any], *args: Any, job_id: str) -> None: ...


@dataclass
class Services:
    """Settings, the database, schemas and where jobs run (the web app adds its own parts)."""

    settings: Settings
    db: Database
    schemas: SchemaStore
    jobs: Any = None  # the in-process ticker (embedded default) or None
    queue: JobQueue | None = None  # where jobs run: InlineQueue, or RqQueue in a worker

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        """Build the services a worker or CLI command needs (no web parts)."""
        return cls(settings, Database(settings.database_url, Keyring(settings.secret_keys)), SchemaStore())
