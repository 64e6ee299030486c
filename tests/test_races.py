"""Money and rate limits under parallel requests against real gunicorn workers.

Caps and velocity are decided under a row lock (FOR UPDATE on PostgreSQL, the write lock on
SQLite), so the exact numbers hold however many requests arrive at once.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import ADMIN_TOKEN, PROGRAM_CONFIG
from tests.live import live_server
from tests.test_concurrency import Remote

pytestmark = pytest.mark.slow
N = 20


@pytest.fixture(scope="module")
def server(database_url, tmp_path_factory):
    with live_server(database_url, tmp_path_factory.mktemp("races"), threads=N) as base:
        yield base


def _program(server: str, **config: Any) -> Remote:
    admin = Remote(server, ADMIN_TOKEN)
    created = admin.post("/v1/admin/programs", {"name": "Race", "config": {**PROGRAM_CONFIG, **config}})
    assert created.status_code == 201, created.text
    return Remote(server, created.json()["api_key"]["key"])


def _parallel(fn, n: int = N) -> list[Any]:
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(fn, range(n)))


def _claim(remote: Remote, code: str, friend: str) -> dict[str, Any]:
    response = remote.post("/v1/referrals/claim", {"code": code, "friend": {
        "external_id": friend, "email": f"{friend}@mail.test"}})
    assert response.status_code == 201, response.text
    return response.json()


def _qualify(remote: Remote, referral_id: str, i: int) -> Any:
    return remote.post("/v1/referrals/qualify", {"referral_id": referral_id, "event": {
        "id": f"in_{i}", "type": "first_paid_invoice", "amount": 5000, "currency": "EUR",
        "occurred_at": (datetime.now(UTC) - timedelta(days=1)).isoformat()}})


def _statuses(remote: Remote, ids: list[str]) -> Counter[str]:
    return Counter(remote.get(f"/v1/referrals/{rid}").json()["status"] for rid in ids)


@pytest.mark.parametrize("run", range(2))
def test_program_spend_cap_holds_for_parallel_qualifies_of_many_advocates(server, settings, run):
    remote = _program(server, hold_days=0, rewards={"advocate": {"type": "gift_card", "amount": 2000},
                                                    "friend": {"type": "none"}},
                      caps={"program_spend_per_month": 2000, "on_cap": "defer"})
    ids = []
    for i in range(N):
        code = remote.post("/v1/links", {"advocate": {"external_id": f"a{i}", "email": f"a{i}@x.test"}})
        ids.append(_claim(remote, code.json()["code"], f"f{i}")["id"])
    responses = _parallel(lambda i: _qualify(remote, ids[i], i))
    assert all(r.status_code == 200 for r in responses), Counter(r.status_code for r in responses)
    assert _statuses(remote, ids) == {"approved": 1, "held": N - 1}


def test_advocate_monthly_cap_holds_for_parallel_qualifies(server, settings):
    remote = _program(server, hold_days=0, velocity={"per_hour": 1000, "per_day": 1000},
                      caps={"advocate_rewards_per_month": 3, "on_cap": "reject"})
    code = remote.post("/v1/links", {"advocate": {"external_id": "a", "email": "a@x.test"}}).json()["code"]
    ids = [_claim(remote, code, f"f{i}")["id"] for i in range(N)]
    responses = _parallel(lambda i: _qualify(remote, ids[i], i))
    assert all(r.status_code == 200 for r in responses), Counter(r.status_code for r in responses)
    assert _statuses(remote, ids) == {"approved": 3, "rejected": N - 3}


def test_velocity_counts_parallel_claims_exactly(server, settings):
    remote = _program(server, velocity={"per_hour": 5, "per_day": 20})
    code = remote.post("/v1/links", {"advocate": {"external_id": "a", "email": "a@x.test"}}).json()["code"]
    n = 30
    responses = _parallel(lambda i: remote.post("/v1/referrals/claim", {"code": code, "friend": {
        "external_id": f"f{i}", "email": f"f{i}@mail.test"}}), n)
    assert Counter(r.status_code for r in responses) == {201: n}
    assert Counter(r.json()["status"] for r in responses) == {"pending": 5, "in_review": n - 5}
