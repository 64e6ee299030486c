"""Races over real HTTP against gunicorn workers: no duplicate, no overdraw, one effect."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests
import requests.adapters

from tests.conftest import ADMIN_TOKEN, PROGRAM_CONFIG
from tests.live import live_server

pytestmark = pytest.mark.slow
N = 24


@pytest.fixture(scope="module")
def server(database_url, tmp_path_factory):
    with live_server(database_url, tmp_path_factory.mktemp("live")) as base:
        yield base


class Remote:
    def __init__(self, base: str, token: str):
        self.base, self.session = base, requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=N)
        self.session.mount("http://", adapter)

    def post(self, path, body, **headers):
        return self.session.post(self.base + path, json=body, headers=headers, timeout=30)

    def get(self, path):
        return self.session.get(self.base + path, timeout=30)


@pytest.fixture()
def remote(server, settings):  # settings clears the database between tests
    admin = Remote(server, ADMIN_TOKEN)
    created = admin.post("/v1/admin/programs", {"name": "Race", "config": PROGRAM_CONFIG})
    return Remote(server, created.json()["api_key"]["key"])


def _parallel(fn, n=N):
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(fn, range(n)))


def _approved(remote):
    code = remote.post("/v1/links", {"advocate": {"external_id": "a", "email": "a@x.test"}}).json()
    ref = remote.post("/v1/referrals/claim", {"code": code["code"], "friend": {
        "external_id": "f", "email": "f@x.test"}}).json()
    at = (datetime.now(UTC) - timedelta(days=20)).isoformat()
    remote.post("/v1/referrals/qualify", {"referral_id": ref["id"], "event": {
        "id": "inv_1", "type": "first_paid_invoice", "amount": 5000, "currency": "EUR",
        "occurred_at": at}})
    return ref


def test_concurrent_claims_for_one_friend_create_one_referral(remote):
    codes = [remote.post("/v1/links", {"advocate": {"external_id": f"a{i}", "email": f"a{i}@x.test"}}
                         ).json()["code"] for i in range(4)]
    responses = _parallel(lambda i: remote.post("/v1/referrals/claim", {
        "code": codes[i % 4], "friend": {"external_id": "friend-1", "email": "friend@x.test"}}))
    assert Counter(r.status_code for r in responses) == {201: 1, 200: N - 1}
    assert len({r.json()["id"] for r in responses}) == 1


def test_concurrent_create_link_for_one_advocate_gives_one_code(remote):
    responses = _parallel(lambda i: remote.post("/v1/links", {"advocate": {
        "external_id": "same", "email": "same@x.test"}}))
    assert all(r.status_code in (200, 201) for r in responses)
    assert len({(r.json()["advocate_id"], r.json()["code"]) for r in responses}) == 1


def test_concurrent_redemptions_never_overdraw(remote):
    advocate = remote.post("/v1/links", {"advocate": {"external_id": "a", "email": "a@x.test"}}
                           ).json()["advocate_id"]
    card = remote.post("/v1/gift-cards", {"advocate_id": advocate, "amount": 2500}).json()
    responses = _parallel(lambda i: remote.post(f"/v1/gift-cards/{card['code']}/redeem",
                                                {"amount": 1000, "currency": "EUR"}))
    assert Counter(r.status_code for r in responses) == {200: 2, 409: N - 2}
    final = remote.get(f"/v1/gift-cards/{card['code']}").json()
    assert final["balance"] == 500
    assert sum(e["amount"] for e in final["entries"]) == 500


def test_concurrent_issues_pay_each_side_once(remote):
    ref = _approved(remote)
    responses = _parallel(lambda i: remote.post("/v1/gift-cards", {"referral_id": ref["id"]}))
    assert all(r.status_code == 201 for r in responses), {r.status_code for r in responses}
    assert len({frozenset(c["id"] for c in r.json()["cards"]) for r in responses}) == 1
    history = remote.get(f"/v1/referrals/{ref['id']}").json()["history"]
    assert [h["action"] for h in history].count("rewarded") == 1


def test_concurrent_duplicate_qualify_events_apply_once(remote):
    code = remote.post("/v1/links", {"advocate": {"external_id": "a", "email": "a@x.test"}}).json()
    ref = remote.post("/v1/referrals/claim", {"code": code["code"], "friend": {
        "external_id": "f", "email": "f@x.test"}}).json()
    body = {"referral_id": ref["id"], "event": {"id": "in_dup", "type": "first_order",
            "amount": 100, "currency": "EUR", "occurred_at": datetime.now(UTC).isoformat()}}
    responses = _parallel(lambda i: remote.post("/v1/referrals/qualify", body))
    assert all(r.status_code == 200 for r in responses)
    history = remote.get(f"/v1/referrals/{ref['id']}").json()["history"]
    assert [h["action"] for h in history] == ["claimed", "qualified"]


def test_concurrent_requests_with_one_idempotency_key_have_one_effect(remote):
    advocate = remote.post("/v1/links", {"advocate": {"external_id": "a", "email": "a@x.test"}}
                           ).json()["advocate_id"]
    responses = _parallel(lambda i: remote.post(
        "/v1/gift-cards", {"advocate_id": advocate, "amount": 300}, **{"Idempotency-Key": "g-1"}))
    ids = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(ids) == 1, Counter(r.status_code for r in responses)
