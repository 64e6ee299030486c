"""The web worker's start hook (server.py): jobs started when asked, the built app frozen."""

from __future__ import annotations

import gc
from types import SimpleNamespace

from referflow import server


class _Jobs:
    def __init__(self) -> None:
        self.started = False

    def start(self) -> None:
        self.started = True


def _worker(start_jobs: bool, jobs: _Jobs) -> SimpleNamespace:
    services = SimpleNamespace(settings=SimpleNamespace(start_jobs=start_jobs), jobs=jobs)
    return SimpleNamespace(wsgi=SimpleNamespace(extensions={"referflow": services}))


def test_a_ready_worker_sets_the_built_app_aside_from_the_collector():
    jobs = _Jobs()
    try:
        server._worker_ready(_worker(False, jobs))
        assert gc.get_freeze_count() > 0  # what was built is out of every later collection
    finally:
        gc.unfreeze()
    assert not jobs.started  # start_jobs off: the worker runs no jobs


def test_a_ready_worker_starts_its_job_runner_when_asked():
    jobs = _Jobs()
    try:
        server._worker_ready(_worker(True, jobs))
    finally:
        gc.unfreeze()
    assert jobs.started
