"""Real Redis, real rq worker processes, real HTTP: nothing lost, nothing twice."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from tests.conftest import PROGRAM_CONFIG
from tests.fakes.stripe import API_KEY, FakeStripe
from tests.live import free_port, live_program, live_server, service_env
from tests.receiver import Receiver

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("redis-server") is None,
                                 reason="redis-server is not installed (CI installs it)")]


class RedisServer:
    """A private redis-server on a free port that a test may stop and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: subprocess.run(["redis-cli", "-p", str(self.port), "ping"],
                                     capture_output=True).stdout.strip() == b"PONG", 10)

    def stop(self) -> None:
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def _wait(check, seconds, interval=0.1):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False


@contextmanager
def workers(database_url, redis_url, tmp, n=2, **env):
    logs = [(tmp / f"worker-{time.monotonic_ns()}-{i}.log").open("w") for i in range(n)]
    procs = [subprocess.Popen([sys.executable, "-m", "referflow.cli", "worker", "--tick-seconds", "0.3"],
                              env=service_env(database_url, REDIS_URL=redis_url,
                                              REFERFLOW_ALLOW_PRIVATE_WEBHOOK_URLS="true", **env),
                              cwd=tmp, stdout=log, stderr=subprocess.STDOUT) for log in logs]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()


@pytest.fixture()
def stack(database_url, settings, tmp_path):
    """Redis + web (Redis mode: no in-process jobs) + two rq workers + a webhook receiver."""
    redis = RedisServer()
    redis.start()
    try:
        with live_server(database_url, tmp_path, REDIS_URL=redis.url,
                         REFERFLOW_ALLOW_PRIVATE_WEBHOOK_URLS="true") as base, \
                workers(database_url, redis.url, tmp_path) as procs, Receiver() as receiver:
            yield base, redis, procs, receiver
    finally:
        redis.stop()


def _program(base):
    _, session = live_program(base, name="rq")
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=50))
    return session


def _claim(session, base, code, friend):
    response = session.post(f"{base}/v1/referrals/claim", json={
        "code": code, "friend": {"external_id": friend, "email": f"{friend}@mail.test"}}, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def _link(session, base, who="adv"):
    return session.post(f"{base}/v1/links", json={"advocate": {"external_id": who,
                                                               "email": f"{who}@mail.test"}},
                        timeout=10).json()["code"]


def test_workers_deliver_signed_webhooks(stack):
    base, _, _, receiver = stack
    session = _program(base)
    secret = session.post(f"{base}/v1/webhooks", json={"url": receiver.url, "events": ["*"]},
                          timeout=10).json()["secret"]
    _claim(session, base, _link(session, base), "f1")
    assert _wait(lambda: len(receiver.requests) >= 2, 20)
    events = [Webhook(secret).verify(r["body"], {k.lower(): v for k, v in r["headers"].items()})
              for r in receiver.requests]
    assert sorted(e["type"] for e in events) == ["advocate.link_created", "referral.claimed"]


def test_redis_down_loses_nothing(stack):
    base, redis, _, receiver = stack
    session = _program(base)
    session.post(f"{base}/v1/webhooks", json={"url": receiver.url, "events": ["referral.claimed"]},
                 timeout=10)
    code = _link(session, base)
    redis.stop()
    friends = [f"down-{i}" for i in range(20)]
    for friend in friends:  # the API keeps answering: events wait in the outbox
        _claim(session, base, code, friend)
    time.sleep(1.5)
    assert receiver.requests == []
    redis.start()
    assert _wait(lambda: len(receiver.requests) >= len(friends), 60), len(receiver.requests)
    time.sleep(1.5)  # and nothing more arrives: each event exactly once
    got = sorted(e["data"]["referral"]["friend"]["external_id"] for e in receiver.events())
    assert got == sorted(friends)


def test_fifty_identical_deliveries_in_parallel_have_one_effect(stack):
    base, _, _, receiver = stack
    session = _program(base)
    session.post(f"{base}/v1/webhooks", json={"url": receiver.url, "events": ["referral.qualified"]},
                 timeout=10)
    referral = _claim(session, base, _link(session, base), "f50")
    body = {"referral_id": referral["id"], "event": {
        "id": "in_same", "type": "first_paid_invoice", "amount": 4900, "currency": "EUR",
        "occurred_at": "2026-11-20T10:00:00Z"}}
    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(lambda _: session.post(f"{base}/v1/referrals/qualify", json=body,
                                                         timeout=30), range(50)))
    assert {r.status_code for r in responses} == {200}
    history = session.get(f"{base}/v1/referrals/{referral['id']}", timeout=10).json()["history"]
    assert [h["action"] for h in history].count("qualified") == 1
    assert _wait(lambda: len(receiver.requests) >= 1, 20)
    time.sleep(1.5)
    assert len(receiver.requests) == 1


def test_worker_killed_mid_issue_pays_exactly_once(database_url, settings, tmp_path):
    redis = RedisServer()
    redis.start()
    env = {"REFERFLOW_STRIPE_API_BASE": "", "REFERFLOW_JOB_LEASE_SECONDS": "2"}
    try:
        with FakeStripe() as stripe, live_server(database_url, tmp_path, REDIS_URL=redis.url) as base:
            env["REFERFLOW_STRIPE_API_BASE"] = stripe.base
            config = {**PROGRAM_CONFIG, "hold_days": 0, "rewards": {
                "advocate": {"type": "gift_card", "amount": 2500}, "friend": {"type": "none"}},
                "fulfilment": {"issuer": "stripe_promotion_code", "auto_issue": True}}
            _, session = live_program(base, config, name="kill")
            session.put(f"{base}/v1/providers/stripe", json={"credentials": {"api_key": API_KEY}},
                        timeout=10)
            stripe.delay_next = [0, 6]  # the coupon answers at once; the promotion code hangs
            with workers(database_url, redis.url, tmp_path, n=1, **env) as procs:
                referral = _claim(session, base, _link(session, base), "f-kill")
                session.post(f"{base}/v1/referrals/qualify", timeout=10, json={
                    "referral_id": referral["id"], "event": {
                        "id": "in_kill", "type": "first_order", "amount": 100, "currency": "EUR",
                        "occurred_at": "2026-11-20T10:00:00Z"}})
                assert _wait(lambda: any(c["path"] == "/v1/promotion_codes" for c in stripe.calls), 20)
                os.kill(procs[0].pid, signal.SIGKILL)  # mid-call: Stripe made it, we never heard
                procs[0].wait()
            with workers(database_url, redis.url, tmp_path, n=1, **env):
                assert _wait(lambda: session.get(f"{base}/v1/referrals/{referral['id']}", timeout=10)
                             .json()["status"] == "rewarded", 40)
            assert len(stripe.promotion_codes) == 1 and len(stripe.coupons) == 1
            history = session.get(f"{base}/v1/referrals/{referral['id']}", timeout=10).json()["history"]
            paid = history[-1]["data"]["rewards"]
            assert [r["external_id"] for r in paid] == list(stripe.promotion_codes)
            promo_calls = [c for c in stripe.calls if c["path"] == "/v1/promotion_codes"]
            assert len(promo_calls) == 2  # the retry reused the key: Stripe replayed, no new code
            assert len({c["headers"]["Idempotency-Key"] for c in promo_calls}) == 1
    finally:
        redis.stop()
