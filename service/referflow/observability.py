"""Operating referflow: request ids, access logs, liveness and readiness, Prometheus metrics, tracing.

Every number /metrics shows adds up across processes. Request latency is counted in the web
process that answered; gunicorn's workers share it through PROMETHEUS_MULTIPROC_DIR. Jobs are
counted where they ran: in Redis when an rq worker ran them (so every worker adds up), else in
the web process (the embedded runner). State (outbox backlog, deliveries, failing endpoints, job
lag, rq depth, rewards) is read from the database and Redis when Prometheus scrapes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, cast

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask, Response, current_app, g, request
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.registry import FailedJobRegistry
from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from referflow.config import Settings
from referflow.domain.timeutil import utcnow
from referflow.jobs.queue import QUEUE_NAME
from referflow.logs import accept_request_id, bind_request_id, unbind_request_id
from referflow.services import Services
from referflow.storage.migrate import MIGRATIONS
from referflow.storage.models import (
    DeliveryStatus,
    InboundEvent,
    InboundStatus,
    OutboxEvent,
    Reward,
    RewardStatus,
    SyncStatus,
    SyncTask,
    WebhookDelivery,
    WebhookSubscription,
)

log = logging.getLogger("referflow.observability")
# The classic text format: every Prometheus version reads it (our names need nothing newer).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
access_log = logging.getLogger("referflow.access")

REQUEST_SECONDS = Histogram("referflow_http_request_duration_seconds",
                            "Time to answer a request, by operationId (or route name) and status class",
                            ["operation", "status_class"])
# Job counters: not in the default registry, as rq workers count into Redis instead (below).
JOBS_HELP = "Jobs run, by job and outcome"
OUTCOMES = {  # the jobs whose outcomes have a counter of their own: job -> (name, help)
    "deliver_webhook": ("referflow_webhook_deliveries", "Webhook delivery attempts: succeeded, pending "
                        "(failed, retry scheduled), failed (given up), skipped (another worker had it)"),
    "issue_reward": ("referflow_rewards", "Reward issue attempts: issued, failed, pending (provider "
                     "unavailable, retry scheduled), skipped (another worker had it)"),
}
JOBS = Counter("referflow_jobs", JOBS_HELP, ["job", "outcome"], registry=None)
JOB_COUNTERS = {job: Counter(name, doc, ["outcome"], registry=None) for job, (name, doc) in OUTCOMES.items()}
JOB_COUNTS_KEY = "referflow:metrics:jobs"  # Redis hash: "job outcome" -> count, from every worker


def init_app(app: Flask) -> None:
    """Bind a request id to every request, log and time it; serve tracing when configured."""
    services = app.extensions["referflow"]
    prepare_metrics_dir(services.settings)  # a CLI command's jobs (`referflow sweep`) count there too
    app.extensions["observability"] = State(services)
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_unbind)
    if services.settings.tracing:
        _init_tracing(app, services)


def _start() -> None:
    g.request_started = time.perf_counter()
    g.request_id = accept_request_id(request.headers.get("X-Request-Id"))
    g.request_id_token = bind_request_id(g.request_id)


def _finish(response: Response) -> Response:
    if "request_id" not in g:  # a response made before our first hook ran
        return response
    response.headers["X-Request-Id"] = g.request_id
    seconds = time.perf_counter() - g.request_started
    operation = request.endpoint.rpartition(".")[2] if request.url_rule and request.endpoint else None
    REQUEST_SECONDS.labels(operation or "unmatched", f"{response.status_code // 100}xx").observe(seconds)
    # Never the raw path (codes, ids), the query, headers or bodies: the route's template only.
    access_log.info("request", extra={"data": {
        "method": request.method, "route": request.url_rule.rule if request.url_rule else None,
        "operation": operation, "status": response.status_code,
        "duration_ms": round(seconds * 1000, 2), "program_id": g.get("log_program_id"),
        "api_key_prefix": g.get("log_key_prefix")}})
    return response


def _unbind(_exc: BaseException | None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        unbind_request_id(token)


def note_caller(program_id: str | None, key_prefix: str | None) -> None:
    """Name the authenticated program (and the API key's prefix, never the key) in the access log."""
    g.log_program_id, g.log_key_prefix = program_id, key_prefix


def job_done(job: str, outcome: str, redis: Redis | None) -> None:
    """Count a finished job: in ``redis`` when an rq worker ran it, else in this process."""
    if redis is not None:
        try:
            redis.hincrby(JOB_COUNTS_KEY, f"{job} {outcome}", 1)
        except RedisError:
            log.warning("metrics: could not count job %s in Redis", job)
        return
    JOBS.labels(job, outcome).inc()
    if job in JOB_COUNTERS:
        JOB_COUNTERS[job].labels(outcome).inc()


def outcome_of(result: Any) -> str:
    """Name a job's outcome from what it returned: a status, None (not ours), or done."""
    if result is None:
        return "skipped"
    return result if isinstance(result, str) else "done"


class State:
    """Per-app probes: a Redis client (when configured) and the state-metrics registry."""

    def __init__(self, services: Services):
        url = services.settings.redis_url
        self.services = services
        self.redis = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2) if url else None
        self.registry = CollectorRegistry()
        self.registry.register(StateCollector(services, self.redis))


# -- readiness ---------------------------------------------------------------------------------

@cache
def migration_heads() -> frozenset[str]:
    """Return the head revisions of the migrations shipped with this code."""
    return frozenset(ScriptDirectory(str(MIGRATIONS)).get_heads())


def readiness(app: Flask) -> dict[str, str]:
    """Check the database, the migrations and Redis; return each check's state ("ok" when fine)."""
    state: State = app.extensions["observability"]
    checks = {"database": "ok", "migrations": "ok", "redis": "ok" if state.redis else "not configured"}
    try:
        with state.services.db.engine.connect() as conn:
            current = frozenset(MigrationContext.configure(conn).get_current_heads())
    except (SQLAlchemyError, OSError) as exc:
        checks["database"] = f"unreachable ({type(exc).__name__})"
        checks["migrations"] = "unknown"
    else:
        if current != migration_heads():
            checks["migrations"] = (f"not at head: database at {', '.join(sorted(current)) or 'none'}, "
                                    f"code at {', '.join(sorted(migration_heads()))}; run `referflow migrate`")
    if state.redis is not None:
        try:
            state.redis.ping()
        except RedisError as exc:
            checks["redis"] = f"unreachable ({type(exc).__name__})"
    return checks


def not_ready(checks: dict[str, str]) -> list[str]:
    """Return the names of the checks that failed."""
    return [name for name, value in checks.items() if value not in ("ok", "not configured")]


# -- metrics -----------------------------------------------------------------------------------

def metrics_response() -> Response:
    """Render the process metrics and the state metrics in the Prometheus text format."""
    state: State = current_app.extensions["observability"]
    body = generate_latest(_process_registry(state.services.settings)) + generate_latest(state.registry)
    return Response(body, content_type=CONTENT_TYPE)


def _process_registry(settings: Settings) -> CollectorRegistry:
    if not settings.metrics_dir:
        return REGISTRY
    registry = CollectorRegistry()  # every gunicorn worker's counts, merged from their files
    multiprocess.MultiProcessCollector(registry, path=settings.metrics_dir)
    return registry


class StateCollector:
    """Gauges read from the database and Redis when Prometheus scrapes."""

    def __init__(self, services: Services, redis: Redis | None):
        self.services, self.redis = services, redis

    def collect(self) -> Iterator[Metric]:
        """Yield the state gauges; a source that is down yields its ``*_up`` gauge as 0."""
        up = GaugeMetricFamily("referflow_database_up", "1 when the metrics could read the database")
        try:
            with self.services.db.session() as session:
                families = list(_database_families(session, utcnow()))
            up.add_metric([], 1)
        except SQLAlchemyError:
            log.warning("metrics: the database is unreachable", exc_info=True)
            families = []
            up.add_metric([], 0)
        yield up
        yield from families
        if self.redis is not None:
            yield from _rq_families(self.redis)
        elif not self.services.settings.metrics_dir:  # (with it, MultiProcessCollector has them)
            for counter in (JOBS, *JOB_COUNTERS.values()):
                yield from counter.collect()


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _age(now: datetime, oldest: datetime | None) -> float:
    return max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0


def _by_status(session: Session, model: Any, statuses: Iterable[str], name: str,
               doc: str) -> GaugeMetricFamily:
    counts = dict.fromkeys(statuses, 0)
    for status, count in session.execute(select(model.status, func.count()).group_by(model.status)):
        counts[status] = count
    family = GaugeMetricFamily(name, doc, labels=["status"])
    for status, count in sorted(counts.items()):
        family.add_metric([status], count)
    return family


def _database_families(session: Session, now: datetime) -> Iterator[Metric]:
    count, oldest = session.execute(select(func.count(), func.min(OutboxEvent.created_at))
                                    .where(OutboxEvent.done_at.is_(None))).one()
    yield _gauge("referflow_outbox_backlog", "Outbox events not yet fanned out", count)
    yield _gauge("referflow_outbox_oldest_age_seconds", "Age of the oldest undone outbox event",
                 _age(now, oldest))
    yield _by_status(session, WebhookDelivery, DeliveryStatus, "referflow_webhook_deliveries_by_status",
                     "Webhook deliveries by their current status")
    yield _by_status(session, Reward, RewardStatus, "referflow_rewards_by_status",
                     "Rewards by their current status")
    live = and_(WebhookSubscription.deleted_at.is_(None), WebhookSubscription.active.is_(True))
    failing, since = session.execute(select(func.count(), func.min(WebhookSubscription.failing_since))
                                     .where(live, WebhookSubscription.failing_since.is_not(None))).one()
    yield _gauge("referflow_webhook_endpoints_failing",
                 "Active subscriptions whose latest deliveries failed", failing)
    yield _gauge("referflow_webhook_endpoint_failing_longest_seconds",
                 "How long the longest-failing active subscription has failed", _age(now, since))
    yield _gauge("referflow_webhook_endpoints_disabled", "Subscriptions disabled after failing for days",
                 session.scalar(select(func.count()).where(WebhookSubscription.deleted_at.is_(None),
                                                           WebhookSubscription.active.is_(False))) or 0)
    lag = GaugeMetricFamily("referflow_job_lag_seconds",
                            "How long the oldest due work item of each kind has waited for a worker",
                            labels=["kind"])
    for kind, due_since, condition in _due_work(now):
        lag.add_metric([kind], _age(now, session.scalar(select(func.min(due_since)).where(condition))))
    yield lag


def _due_work(now: datetime) -> Iterator[tuple[str, Any, ColumnElement[bool]]]:
    """(kind, when it became due, which rows are due) of each kind of background work."""
    yield "outbox", OutboxEvent.created_at, OutboxEvent.done_at.is_(None)
    yield ("inbound", InboundEvent.next_attempt_at,
           InboundEvent.status.in_((InboundStatus.PENDING, InboundStatus.WAITING))
           & (InboundEvent.next_attempt_at <= now))
    leased = (("webhook_delivery", WebhookDelivery, DeliveryStatus.SENDING),
              ("reward", Reward, RewardStatus.ISSUING), ("sync", SyncTask, SyncStatus.SENDING))
    for kind, model, working in leased:  # due: pending and its time came, or its worker's lease ran out
        pending = (model.status == "pending") & (model.next_attempt_at <= now)
        stale = (model.status == working) & (model.lease_until < now)
        yield kind, case((model.status == working, model.lease_until), else_=model.next_attempt_at), \
            or_(pending, stale)


def _rq_families(redis: Redis) -> Iterator[Metric]:
    try:
        depth, failed = Queue(QUEUE_NAME, connection=redis).count, FailedJobRegistry(QUEUE_NAME, connection=redis).count
        counts = cast(dict[bytes, bytes], redis.hgetall(JOB_COUNTS_KEY))
    except RedisError:
        log.warning("metrics: Redis is unreachable", exc_info=True)
        yield _gauge("referflow_redis_up", "1 when the metrics could read Redis", 0)
        return
    yield _gauge("referflow_redis_up", "1 when the metrics could read Redis", 1)
    yield _gauge("referflow_rq_queue_depth", "Jobs waiting in the rq queue", depth)
    yield _gauge("referflow_rq_failed_jobs", "Jobs in rq's failed-job registry", failed)
    yield from _counted_jobs({tuple(k.decode().split(" ", 1)): float(v) for k, v in counts.items()})


def _counted_jobs(counts: dict[tuple[str, ...], float]) -> Iterator[Metric]:
    """The job counters, as rq workers counted them into Redis (same names as in-process)."""
    jobs = CounterMetricFamily("referflow_jobs", JOBS_HELP, labels=["job", "outcome"])
    by_job = {job: CounterMetricFamily(name, doc, labels=["outcome"]) for job, (name, doc) in OUTCOMES.items()}
    for (job, outcome), count in sorted(counts.items()):
        jobs.add_metric([job, outcome], count)
        if job in by_job:
            by_job[job].add_metric([outcome], count)
    yield jobs
    yield from by_job.values()


# -- processes ---------------------------------------------------------------------------------

def prepare_metrics_dir(settings: Settings, fresh: bool = False) -> None:
    """Create PROMETHEUS_MULTIPROC_DIR; ``fresh`` removes the files a previous run left."""
    if not settings.metrics_dir:
        return
    directory = Path(settings.metrics_dir)
    directory.mkdir(parents=True, exist_ok=True)
    if fresh:
        for stale in directory.glob("*.db"):
            stale.unlink()


def gunicorn_hooks(settings: Settings, workers: int) -> dict[str, Any]:
    """Return gunicorn settings that keep multi-process metrics right (and warn when they cannot)."""
    if not settings.metrics_dir:
        if workers > 1:
            log.warning("PROMETHEUS_MULTIPROC_DIR is not set: each of the %d workers counts its own "
                        "requests, and /metrics shows whichever worker answers", workers)
        return {}
    prepare_metrics_dir(settings, fresh=True)
    directory = settings.metrics_dir

    def child_exit(_server: Any, worker: Any) -> None:
        multiprocess.mark_process_dead(worker.pid, directory)

    return {"child_exit": child_exit}


def _init_tracing(app: Flask, services: Services) -> None:
    try:
        # The optional extra (referflow[otel]): imported only when tracing is configured, so an
        # install without it pays nothing.
        from referflow import tracing  # noqa: PLC0415
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but referflow[otel] is not installed: "
                    "no traces (pip install 'referflow[otel]')")
        return
    tracing.instrument(app, services.db.engine)
