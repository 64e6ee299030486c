"""Operating referflow: JSON access logs, request ids end to end, probes, Prometheus metrics, tracing.

Logs and metrics are checked by parsing them: log lines as JSON, /metrics with prometheus_client's
own text parser.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update
from standardwebhooks.webhooks import Webhook

from referflow import logs
from referflow.app import create_app
from referflow.config import Settings
from referflow.jobs import context
from referflow.jobs.runner import tick
from referflow.storage.migrate import upgrade
from referflow.storage.models import OutboxEvent, WebhookDelivery
from tests.conftest import ADMIN_TOKEN, PROGRAM_CONFIG, Api, _postgres_database, make_program
from tests.helpers import claim, event, expire_hold, link, qualify
from tests.live import live_server
from tests.receiver import Receiver

REDIS_URL = os.environ.get("REDIS_URL")
CLOSED = "127.0.0.1:1"  # nothing listens on port 1: connections are refused at once


@pytest.fixture()
def log_lines() -> Iterator[Any]:
    """Capture referflow's logs as the server writes them; yield a function returning parsed lines."""
    stream = io.StringIO()
    handler = logs.configure(stream)
    logger = logging.getLogger("referflow")

    def lines(name: str | None = None) -> list[dict[str, Any]]:
        parsed = [json.loads(line) for line in stream.getvalue().splitlines()]  # every line is JSON
        return [p for p in parsed if name is None or p["logger"] == name]

    lines.raw = stream.getvalue
    yield lines
    logger.removeHandler(handler)
    logger.propagate = True


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def _tick(app: Any) -> None:
    services = app.extensions["referflow"]
    tick(services, services.queue)


def _subscribe(api: Api, url: str) -> dict[str, Any]:
    response = api.post("/v1/webhooks", {"url": url, "events": ["*"]})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _access(lines: Any, operation: str) -> list[dict[str, Any]]:
    return [line for line in lines("referflow.access") if line["operation"] == operation]


# -- access log ----------------------------------------------------------------------------------

def test_access_log_has_the_fields_and_no_personal_data_or_secrets(client, api, log_lines):
    email = "ann.private.person@mail.test"
    created = api.post("/v1/links", {"advocate": {"external_id": "cus_ann_ext", "email": email}})
    assert created.status_code == 201
    code = created.get_json()["code"]
    client.get(f"/r/{code}?email={email}&token=sekrit-query-token")
    api.get("/v1/referrals/ref_not_a_real_one")

    (line,) = _access(log_lines, "createLink")
    assert line["method"] == "POST" and line["route"] == "/v1/links" and line["status"] == 201
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["request_id"] == created.headers["X-Request-Id"]
    assert line["program_id"] == api.program_id
    assert api.token.startswith(line["api_key_prefix"]) and len(line["api_key_prefix"]) <= 12
    assert line["level"] == "info" and line["logger"] == "referflow.access" and line["ts"]
    (missing,) = _access(log_lines, "getReferral")
    assert missing["route"] == "/v1/referrals/<referral_id>" and missing["status"] == 404
    (visit,) = [line for line in log_lines("referflow.access") if line["route"] == "/r/<code>"]
    assert visit["program_id"] is None and visit["api_key_prefix"] is None  # public: nobody named

    everything = log_lines.raw()
    for secret in (email, "ann.private.person", api.token, api.token[12:], code, "ref_not_a_real_one",
                   "sekrit-query-token", "cus_ann_ext", ADMIN_TOKEN):
        assert secret not in everything


def test_an_unexpected_error_is_logged_by_type_and_stack_without_its_message(app, client, log_lines):
    email = "ann" + "@mail.test"  # not in the source line the stack shows

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError(f"parameters: {email}")

    response = client.get("/boom", headers={"X-Request-Id": "req-boom-1"})
    assert response.status_code == 500 and response.get_json()["request_id"] == "req-boom-1"
    (error,) = log_lines("referflow.api")
    assert error["exc_type"] == "RuntimeError" and "boom" in error["stack"]
    assert error["request_id"] == "req-boom-1"
    assert "ann@mail.test" not in log_lines.raw()


# -- request id -----------------------------------------------------------------------------------

@pytest.mark.parametrize("sent", ["req-42", "01J9ZQ3V9K8X2N4M5P6Q7R8S9T", "6f9619ff-8b86-4d01-b42d-00cf4fc964ff",
                                  "a.b:c_d-1"])  # fixed ids: xdist workers must collect the same tests
def test_a_sane_request_id_is_echoed(client, sent):
    assert client.get("/livez", headers={"X-Request-Id": sent}).headers["X-Request-Id"] == sent


@pytest.mark.parametrize("sent", ["", " ", "x" * 129, "has space", "semi;colon", "ünïcode",
                                  "-leading-dash", "<script>", "a/b"])
def test_an_unsafe_request_id_is_replaced(client, sent):
    echoed = client.get("/livez", headers={"X-Request-Id": sent}).headers["X-Request-Id"]
    assert echoed != sent and re.fullmatch(r"[0-9a-f]{32}", echoed)


def test_a_request_without_an_id_gets_a_fresh_one_each_time(client):
    first, second = (client.get("/livez").headers["X-Request-Id"] for _ in range(2))
    assert first != second and re.fullmatch(r"[0-9a-f]{32}", first)


@pytest.mark.parametrize(("method", "path", "auth", "status"), [
    ("GET", "/v1/referrals/ref_nope", True, 404),
    ("GET", "/v1/referrals/ref_nope", False, 401),
    ("POST", "/v1/links", True, 422),
    ("GET", "/no/such/route", False, 404),
    ("DELETE", "/v1/links", True, 405),
    ("GET", "/v1/referrals/a%00b", True, 422),  # refused before any view
])
def test_every_error_body_carries_the_request_id(app, client, api, method, path, auth, status):
    headers = {"X-Request-Id": "req-error-7", **(api.headers() if auth else {})}
    response = client.open(path, method=method, headers=headers, json={} if method == "POST" else None)
    assert response.status_code == status
    body = response.get_json()
    assert body["request_id"] == response.headers["X-Request-Id"] == "req-error-7"
    app.extensions["referflow"].schemas.validate("error", body)


def test_deliveries_and_their_jobs_carry_the_id_of_the_request_that_caused_them(api, app, receiver,
                                                                                 log_lines):
    sub = _subscribe(api, receiver.url)
    response = api.post("/v1/links", {"advocate": {"external_id": "cus_rid", "email": "rid@mail.test"}},
                        **{"X-Request-Id": "req-link-1"})
    assert response.headers["X-Request-Id"] == "req-link-1"
    _tick(app)

    (delivery,) = receiver.requests
    headers = {k.lower(): v for k, v in delivery["headers"].items()}
    assert headers["referflow-request-id"] == "req-link-1"
    Webhook(sub["secret"]).verify(delivery["body"], headers)  # the signed body is the event alone
    assert "_meta" not in delivery["body"].decode() and "req-link-1" not in delivery["body"].decode()
    assert "_meta" not in json.dumps(api.get("/v1/events").get_json())
    jobs = {line["job"]: line for line in log_lines("referflow.jobs")}
    assert jobs["process_outbox_event"]["request_id"] == "req-link-1"
    assert jobs["deliver_webhook"]["request_id"] == "req-link-1"
    assert jobs["deliver_webhook"]["outcome"] == "succeeded"


def test_a_retry_keeps_the_id_and_work_a_sweep_caused_gets_its_own(api, app, receiver, log_lines):
    _subscribe(api, receiver.url)
    code = link(api)["code"]
    referral = claim(api, code)
    qualified = api.post("/v1/referrals/qualify", {"referral_id": referral["id"], "event": event()},
                         **{"X-Request-Id": "req-qualify-1"})
    assert qualified.status_code == 200, qualified.get_json()
    receiver.statuses = [204, 204, 500]  # link_created, claimed, then qualified fails once
    _tick(app)
    expire_hold(app, referral["id"])
    with app.extensions["referflow"].db.session() as session:
        session.execute(update(WebhookDelivery).values(next_attempt_at=datetime.now(UTC)))
        session.commit()
    _tick(app)

    sent = [(json.loads(r["body"])["type"], r["headers"]["referflow-request-id"]) for r in receiver.requests]
    qualified = [rid for kind, rid in sent if kind == "referral.qualified"]
    assert qualified == ["req-qualify-1", "req-qualify-1"]  # the retry names the same request
    (approved,) = [rid for kind, rid in sent if kind == "referral.approved"]
    request_ids = {line["request_id"] for line in log_lines("referflow.access")}
    assert approved not in request_ids and re.fullmatch(r"[0-9a-f]{32}", approved)
    jobs = [line for line in log_lines("referflow.jobs") if line["request_id"] == approved]
    assert {line["job"] for line in jobs} == {"process_outbox_event", "deliver_webhook"}


@pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL (CI's PostgreSQL + Redis run)")
def test_rq_jobs_carry_the_request_id_log_it_and_are_counted_in_redis(app, settings, log_lines):
    from rq import SimpleWorker
    from rq.job import Job

    from referflow.jobs.queue import RqQueue
    from referflow.jobs.tasks import deliver_webhook

    web = create_app(settings.with_overrides(redis_url=REDIS_URL)).test_client()  # what Prometheus reads
    skipped = {"outcome": "skipped"}
    before = _value(_scrape(web), "referflow_webhook_deliveries_total", **skipped)
    context.use(app.extensions["referflow"])
    queue = RqQueue(REDIS_URL)
    job_id = f"deliver-msg_test_{uuid.uuid4().hex[:8]}-0-0"
    with logs.request_id_bound("req-rq-1"):
        queue.enqueue(deliver_webhook, "msg_does_not_exist", job_id=job_id)
    assert Job.fetch(job_id, connection=queue.redis).meta["request_id"] == "req-rq-1"
    SimpleWorker([queue.queue], connection=queue.redis).work(burst=True, with_scheduler=False)
    (line,) = [line for line in log_lines("referflow.jobs") if line.get("job") == "deliver_webhook"]
    assert line["request_id"] == "req-rq-1" and line["outcome"] == "skipped"
    Job.fetch(job_id, connection=queue.redis).delete()
    after = _scrape(web)  # a worker's counts reach every web process through Redis
    assert _value(after, "referflow_webhook_deliveries_total", **skipped) - before == 1
    assert _value(after, "referflow_jobs_total", job="deliver_webhook", **skipped) >= 1
    web.application.extensions["referflow"].db.dispose()


# -- probes ---------------------------------------------------------------------------------------

@pytest.fixture()
def unmigrated_url(tmp_path) -> Iterator[str]:
    """A fresh, empty database on the suite's backend."""
    base = os.environ.get("TEST_DATABASE_URL", "")
    if base.startswith("postgres"):
        url, drop = _postgres_database(base.replace("postgresql://", "postgresql+psycopg://", 1))
        yield url
        drop()
    else:
        yield f"sqlite:///{tmp_path / 'fresh.db'}"


def _probe(settings: Settings, path: str) -> Any:
    app = create_app(settings)
    try:
        return app.test_client().get(path)
    finally:
        app.extensions["referflow"].db.dispose()


def test_livez_and_readyz_answer_200_when_all_is_well(client):
    assert client.get("/livez").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "ready", "checks": {
        "database": "ok", "migrations": "ok", "redis": "not configured"}}
    assert client.get("/healthz").get_json() == {"status": "ok"}


def _not_ready(response: Any) -> dict[str, str]:
    assert response.status_code == 503
    body = response.get_json()
    assert body["code"] == "not_ready" and body["status"] == 503 and body["request_id"]
    return {e["check"]: e["state"] for e in body["errors"]}


def test_readyz_is_503_naming_the_database_when_it_is_unreachable(settings):
    down = settings.with_overrides(database_url=f"postgresql+psycopg://postgres@{CLOSED}/referflow")
    failing = _not_ready(_probe(down, "/readyz"))
    assert failing["database"].startswith("unreachable") and failing["migrations"] == "unknown"
    assert "redis" not in failing
    assert _probe(down, "/livez").status_code == 200  # liveness depends on nothing


def test_readyz_is_503_naming_redis_when_it_is_down(settings):
    failing = _not_ready(_probe(settings.with_overrides(redis_url=f"redis://{CLOSED}/0"), "/readyz"))
    assert set(failing) == {"redis"} and failing["redis"].startswith("unreachable")


@pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL (CI's PostgreSQL + Redis run)")
def test_readyz_checks_a_live_redis(settings):
    ready = _probe(settings.with_overrides(redis_url=REDIS_URL), "/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"]["redis"] == "ok"


def test_readyz_is_503_naming_the_migrations_when_they_are_behind(settings, unmigrated_url):
    fresh = settings.with_overrides(database_url=unmigrated_url)
    failing = _not_ready(_probe(fresh, "/readyz"))
    assert set(failing) == {"migrations"} and "database at none" in failing["migrations"]
    upgrade(unmigrated_url, "0001")  # an old revision: still behind
    failing = _not_ready(_probe(fresh, "/readyz"))
    assert set(failing) == {"migrations"} and "database at 0001" in failing["migrations"]
    upgrade(unmigrated_url)
    assert _probe(fresh, "/readyz").status_code == 200


# -- metrics --------------------------------------------------------------------------------------

def _scrape(client: Any, token: str = ADMIN_TOKEN) -> dict[str, dict[tuple, float]]:
    """Return {sample name: {sorted label items: value}} parsed by prometheus_client's parser."""
    response = client.get("/metrics", headers=_bearer(token))
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=0.0.4")
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def _value(samples: dict[str, dict[tuple, float]], name: str, **labels: str) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_metrics_need_the_admin_token(client, api):
    assert client.get("/metrics").status_code == 401
    assert api.get("/metrics").status_code == 401  # a program's API key is not enough
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401


METRICS_TOKEN = "test-metrics-token-0123456789"


@pytest.fixture()
def scraper_client(settings: Settings) -> Iterator[Any]:
    """Return a client of an app with REFERFLOW_METRICS_TOKEN set."""
    application = create_app(settings.with_overrides(metrics_token=METRICS_TOKEN))
    application.testing = True
    yield application.test_client()
    application.extensions["referflow"].db.dispose()


def test_the_metrics_token_reads_metrics_and_the_admin_token_still_does(scraper_client, log_lines):
    assert _value(_scrape(scraper_client, METRICS_TOKEN), "referflow_database_up") == 1
    assert _value(_scrape(scraper_client, ADMIN_TOKEN), "referflow_database_up") == 1
    scrapes = [line for line in log_lines("referflow.access") if line["route"] == "/metrics"]
    assert [line["status"] for line in scrapes] == [200, 200]
    assert all(line["api_key_prefix"] is None for line in scrapes)
    assert METRICS_TOKEN not in log_lines.raw() and METRICS_TOKEN[:12] not in log_lines.raw()


@pytest.mark.parametrize(("authorization", "code"), [
    ("", "missing_credentials"),
    ("Bearer nope", "invalid_credentials"),
    (f"Bearer {METRICS_TOKEN}x", "invalid_credentials"),
    (f"Bearer {METRICS_TOKEN[:-1]}", "invalid_credentials"),
    (f"Basic {METRICS_TOKEN}", "missing_credentials"),
])
def test_metrics_refuse_a_wrong_token_in_the_error_shape(scraper_client, authorization, code):
    response = scraper_client.get("/metrics", headers={"Authorization": authorization})
    assert response.status_code == 401 and response.is_json
    body = response.get_json()
    assert body["code"] == code and body["status"] == 401 and body["request_id"]


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/v1/admin/programs", {"name": "Acme", "config": PROGRAM_CONFIG}),
    ("POST", "/v1/admin/programs/prg_x/api-keys", {"label": "scraper"}),
    ("GET", "/v1/inbound-events", None),
    ("GET", "/v1/referrals/ref_x", None),
    ("POST", "/v1/links", {"advocate": {"external_id": "cus_1"}}),
])
def test_the_metrics_token_grants_nothing_else(scraper_client, method, path, body):
    response = scraper_client.open(path, method=method, json=body, headers=_bearer(METRICS_TOKEN))
    assert response.status_code == 401 and response.is_json
    assert response.get_json()["code"] == "invalid_credentials"
    assert METRICS_TOKEN not in response.get_data(as_text=True)


def test_without_a_metrics_token_only_the_admin_token_reads_metrics(client):
    refused = client.get("/metrics", headers=_bearer(METRICS_TOKEN))
    assert refused.status_code == 401 and refused.get_json()["code"] == "invalid_credentials"
    assert _value(_scrape(client), "referflow_database_up") == 1


def test_metrics_have_a_latency_histogram_per_operation_and_status_class(client, api):
    labels = {"operation": "createLink", "status_class": "2xx"}
    before = _scrape(client)
    link(api)
    link(api)
    api.get("/v1/referrals/ref_nope")
    after = _scrape(client)
    count = "referflow_http_request_duration_seconds_count"
    assert _value(after, count, **labels) - _value(before, count, **labels) == 2
    missing = {"operation": "getReferral", "status_class": "4xx"}
    assert _value(after, count, **missing) - _value(before, count, **missing) == 1
    buckets = after["referflow_http_request_duration_seconds_bucket"]
    assert buckets[tuple(sorted({**labels, "le": "+Inf"}.items()))] == _value(after, count, **labels)


def test_metrics_show_the_outbox_the_deliveries_and_failing_endpoints(client, api, app, receiver):
    _subscribe(api, receiver.url)
    link(api)
    with app.extensions["referflow"].db.session() as session:
        undone = session.scalar(select(func.count()).where(OutboxEvent.done_at.is_(None)))
    samples = _scrape(client)
    assert _value(samples, "referflow_outbox_backlog") == undone >= 1
    assert _value(samples, "referflow_outbox_oldest_age_seconds") >= 0
    assert _value(samples, "referflow_job_lag_seconds", kind="outbox") >= 0
    assert _value(samples, "referflow_database_up") == 1

    before = _scrape(client)
    receiver.status = 500
    _tick(app)
    samples = _scrape(client)
    assert _value(samples, "referflow_outbox_backlog") == 0
    assert _value(samples, "referflow_webhook_deliveries_by_status", status="pending") == 1
    assert _value(samples, "referflow_webhook_endpoints_failing") == 1
    pending = "referflow_webhook_deliveries_total"
    assert _value(samples, pending, outcome="pending") - _value(before, pending, outcome="pending") == 1

    with app.extensions["referflow"].db.session() as session:  # the retry is overdue by 90 s
        session.execute(update(WebhookDelivery).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=90)))
        session.commit()
    assert _value(_scrape(client), "referflow_job_lag_seconds", kind="webhook_delivery") >= 90
    receiver.status = 204
    _tick(app)
    samples = _scrape(client)
    assert _value(samples, "referflow_webhook_deliveries_by_status", status="succeeded") == 1
    assert _value(samples, "referflow_webhook_endpoints_failing") == 0
    assert _value(samples, "referflow_job_lag_seconds", kind="webhook_delivery") == 0


def test_metrics_count_rewards_issued_in_the_background(client, app):
    api = make_program(client, {**PROGRAM_CONFIG, "hold_days": 0,
                                "fulfilment": {"issuer": "ledger", "auto_issue": True}})
    before = _scrape(client)
    referral = claim(api, link(api)["code"])
    assert qualify(api, referral["id"])["status"] == "approved"
    _tick(app)
    _tick(app)
    samples = _scrape(client)
    rewards = "referflow_rewards_total"
    assert _value(samples, rewards, outcome="issued") - _value(before, rewards, outcome="issued") == 2
    assert _value(samples, "referflow_rewards_by_status", status="issued") == 2
    jobs = "referflow_jobs_total"
    assert _value(samples, jobs, job="issue_reward", outcome="issued") >= 2


def test_metrics_still_answer_when_the_database_is_down(settings):
    down = settings.with_overrides(database_url=f"postgresql+psycopg://postgres@{CLOSED}/referflow")
    app = create_app(down)
    samples = _scrape(app.test_client())
    assert _value(samples, "referflow_database_up") == 0 and "referflow_outbox_backlog" not in samples
    app.extensions["referflow"].db.dispose()


def test_rq_metrics_say_when_redis_is_down(settings):
    app = create_app(settings.with_overrides(redis_url=f"redis://{CLOSED}/0"))
    samples = _scrape(app.test_client())
    assert _value(samples, "referflow_redis_up") == 0 and "referflow_rq_queue_depth" not in samples
    app.extensions["referflow"].db.dispose()


@pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL (CI's PostgreSQL + Redis run)")
def test_rq_metrics_show_the_queue_depth(settings):
    from referflow.jobs.queue import RqQueue

    app = create_app(settings.with_overrides(redis_url=REDIS_URL))
    queue = RqQueue(REDIS_URL)
    depth = queue.queue.count
    samples = _scrape(app.test_client())
    assert _value(samples, "referflow_redis_up") == 1
    assert _value(samples, "referflow_rq_queue_depth") == depth
    assert "referflow_rq_failed_jobs" in samples
    app.extensions["referflow"].db.dispose()


# -- tracing --------------------------------------------------------------------------------------

def test_tracing_is_off_unless_an_otlp_endpoint_is_set(app):
    env = {"DATABASE_URL": "sqlite:///x.db", "REFERFLOW_ADMIN_TOKEN": "a", "REFERFLOW_SECRET_KEY": "b"}
    assert Settings.from_env(env).tracing is False
    assert Settings.from_env({**env, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}).tracing
    assert not Settings.from_env({**env, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                                  "OTEL_SDK_DISABLED": "true"}).tracing
    assert "tracing" not in app.extensions
    # Off costs nothing: no tracing module, no instrumentation (redis-py imports the OpenTelemetry
    # SDK by itself when it is installed; it does nothing with it unless told).
    probe = ("import sys; from referflow.app import create_app; from referflow.config import Settings; "
             "create_app(Settings(database_url='sqlite://', redis_url=None, admin_token='a', secret_key='b'))"
             ".test_client().get('/livez'); print(sorted(m for m in sys.modules if m == 'referflow.tracing' "
             "or m.startswith('opentelemetry.instrumentation')))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert imported.stdout.strip() == "[]"


def test_tracing_exports_a_span_per_request_with_its_request_id(settings, monkeypatch):
    pytest.importorskip("opentelemetry.sdk", reason="referflow[otel] is not installed")
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    with Receiver() as collector:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.removesuffix("/hook"))
        app = create_app(settings.with_overrides(tracing=True))
        provider = app.extensions["tracing"]
        try:
            response = app.test_client().get("/readyz", headers={"X-Request-Id": "req-traced-1"})
            assert response.status_code == 200
            assert provider.force_flush(10_000)
        finally:
            provider.shutdown()
            SQLAlchemyInstrumentor().uninstrument()
            RequestsInstrumentor().uninstrument()
            app.extensions["referflow"].db.dispose()
        assert {r["path"] for r in collector.requests} == {"/v1/traces"}
        spans = []
        for posted in collector.requests:
            export = ExportTraceServiceRequest.FromString(posted["body"])
            spans += [s for rs in export.resource_spans for ss in rs.scope_spans for s in ss.spans]
    (server,) = [s for s in spans if s.kind == s.SPAN_KIND_SERVER]
    attributes = {a.key: a.value.string_value for a in server.attributes}
    assert server.name == "GET /readyz" and attributes["referflow.request_id"] == "req-traced-1"
    assert any(s.kind == s.SPAN_KIND_CLIENT for s in spans)  # the readiness query, traced


# -- gunicorn -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_gunicorn_workers_share_their_metrics_and_log_json(database_url, tmp_path):
    with live_server(database_url, tmp_path, workers=2, threads=1,
                     PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics")) as base:
        for _ in range(20):
            assert requests.get(f"{base}/livez", timeout=5).status_code == 200
        counts = set()
        for _ in range(6):  # whichever worker answers, it reports both workers' requests
            scraped = requests.get(f"{base}/metrics", timeout=5,
                                   headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).text
            samples = {s.name: s for f in text_string_to_metric_families(scraped) for s in f.samples
                       if s.labels.get("operation") == "livez"}
            counts.add(samples["referflow_http_request_duration_seconds_count"].value)
        assert counts == {20.0}
    served = (tmp_path / next(p.name for p in tmp_path.iterdir() if p.name.startswith("server-"))).read_text()
    access = [json.loads(line) for line in served.splitlines() if line.startswith("{")]
    assert sum(1 for line in access if line.get("operation") == "livez") == 20
    assert len({line["request_id"] for line in access if line.get("operation") == "livez"}) == 20

