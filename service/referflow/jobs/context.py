"""The services a job runs with: the app's in-process, or built from the environment in a worker."""

from __future__ import annotations

from typing import Any

_services: Any = None


def use(services: Any) -> None:
    """Set the services of this process (the in-process runner passes the app's)."""
    global _services
    _services = services


def services() -> Any:
    """Return this process's services, building them from the environment on first use."""
    global _services
    if _services is None:
        from referflow.api.keycache import KeyCache
        from referflow.app import Services
        from referflow.config import Settings
        from referflow.contract import SchemaStore
        from referflow.storage.db import Database

        settings = Settings.from_env()
        _services = Services(settings, Database(settings.database_url), SchemaStore(), KeyCache())
    return _services
