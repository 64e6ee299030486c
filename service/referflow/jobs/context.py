"""The services a job runs with: the app's in-process, or built from the environment in a worker."""

from __future__ import annotations

from referflow import logs, observability
from referflow.config import Settings
from referflow.services import Services

_services: Services | None = None


def use(services: Services) -> None:
    """Set the services of this process (the in-process runner passes the app's)."""
    global _services
    _services = services


def services() -> Services:
    """Return this process's services, building them from the environment on first use."""
    global _services
    if _services is None:  # a worker process (`referflow worker`): its logs are JSON lines too
        settings = Settings.from_env()
        logs.configure()
        observability.prepare_metrics_dir(settings)
        _services = Services.from_settings(settings)
    return _services
