"""Run the app under gunicorn, with the in-process job runner in each worker."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from referflow import logs, observability
from referflow.app import create_app
from referflow.config import Settings


class ReferflowServer(BaseApplication):
    """A gunicorn application that builds referflow in each worker."""

    def __init__(self, settings: Settings, options: dict[str, Any]):
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return create_app(self.settings)


def _start_jobs(worker: Any) -> None:
    services = worker.wsgi.extensions["referflow"]
    if services.settings.start_jobs and services.jobs is not None:
        services.jobs.start()


def run(settings: Settings, host: str, port: int, workers: int, threads: int) -> None:
    """Serve until interrupted."""
    logs.configure()  # JSON lines on stderr, one per request (gunicorn's own access log stays off)
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "accesslog": None,
        "post_worker_init": _start_jobs,
        "timeout": 30,
        **observability.gunicorn_hooks(settings, workers),
    }
    ReferflowServer(settings, options).run()
