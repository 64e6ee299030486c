"""Where jobs run: inline in the in-process runner, or on rq workers through Redis."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from redis import Redis
from rq import Queue, get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from referflow.logs import current_request_id
from referflow.services import JobQueue

__all__ = ["InlineQueue", "JobQueue", "RqQueue", "enqueued_request_id", "rq_connection"]

log = logging.getLogger("referflow.jobs")
QUEUE_NAME = "referflow"


class InlineQueue:
    """Run jobs right away in the calling thread (the embedded default's runner)."""

    def enqueue(self, func: Callable[..., Any], *args: Any, job_id: str) -> None:
        try:
            func(*args)
        except Exception:  # the database state says what is still to do; the next tick retries
            log.exception("job %s failed", job_id.split("-")[0])


class RqQueue:
    """Hand jobs to rq; a job id seen before is not enqueued twice, unless that job failed.

    Job ids carry the state they act on (attempt number, lease generation), so after a worker
    dies the next state gets a new id; the database lease is what prevents double work.
    """

    def __init__(self, redis_url: str):
        self.redis = Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=2)
        self.queue = Queue(QUEUE_NAME, connection=self.redis)

    def enqueue(self, func: Callable[..., Any], *args: Any, job_id: str) -> None:
        try:
            job = Job.fetch(job_id, connection=self.redis)
            if job.get_status(refresh=True) not in (JobStatus.FAILED, JobStatus.STOPPED,
                                                    JobStatus.CANCELED):
                return
            job.delete()
        except NoSuchJobError:
            pass
        self.queue.enqueue(func, *args, job_id=job_id, result_ttl=600, failure_ttl=86400,
                           job_timeout=60, meta={"request_id": current_request_id()})


def rq_connection() -> Redis | None:
    """Return the Redis of the rq job running now (None outside an rq worker)."""
    job = get_current_job()
    return job.connection if job is not None else None


def enqueued_request_id() -> str | None:
    """Return the request id the running job was enqueued under (inline jobs run under it)."""
    job = get_current_job()
    return job.meta.get("request_id") if job is not None else current_request_id()
