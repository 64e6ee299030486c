"""bench/floor_app.py writes rows referflow itself reads: the floor does the same work, fairly.

The benchmark's floor (docs/development.md, round five) answers claim, qualify and a Stripe
delivery with bare driver statements on referflow's own database. Here it runs through Flask's
test client on the test database, and referflow's API reads what it wrote.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api
from tests.helpers import event, link

FLOOR = Path(__file__).resolve().parents[1] / "bench" / "floor_app.py"
SECRET = "whsec_floor_test"


@pytest.fixture()
def floor(api: Api, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("FLOOR_PROGRAM_ID", api.program_id)  # type: ignore[attr-defined]
    monkeypatch.setenv("FLOOR_STRIPE_SECRET", SECRET)
    spec = importlib.util.spec_from_file_location("floor_app_under_test", FLOOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module.app.test_client()
    conn = getattr(module._LOCAL, "conn", None)
    if conn is not None:
        conn.close()
    module.ENGINE.dispose()


def _signed(body: bytes) -> str:
    now = str(int(time.time()))
    mac = hmac.new(SECRET.encode(), now.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={now},v1={mac}"


def test_the_floor_claims_and_qualifies_rows_referflow_reads(api: Api, floor: Any) -> None:
    code = link(api)["code"]
    friend = {"external_id": "cus_floor_1", "email": "floor.friend@mail.test"}
    claimed = floor.post("/v1/referrals/claim", json={"code": code, "friend": friend})
    assert claimed.status_code == 201
    referral_id = claimed.get_json()["id"]

    again = floor.post("/v1/referrals/claim", json={"code": code, "friend": friend})
    assert (again.status_code, again.get_json()["id"]) == (200, referral_id)  # first claim wins
    unknown = floor.post("/v1/referrals/claim", json={"code": "NOSUCHCODE", "friend": {
        "external_id": "cus_floor_2", "email": "other@mail.test"}})
    assert unknown.status_code == 404

    qualified_event = event("in_floor_1", amount=4200)
    qualified = floor.post("/v1/referrals/qualify",
                           json={"referral_id": referral_id, "event": qualified_event})
    assert qualified.get_json()["outcome"] == "qualified"
    repeated = floor.post("/v1/referrals/qualify",
                          json={"referral_id": referral_id, "event": qualified_event})
    assert repeated.get_json()["outcome"] == "duplicate"

    read = api.get(f"/v1/referrals/{referral_id}")
    assert read.status_code == 200, read.get_json()
    referral = read.get_json()
    assert referral["friend"]["external_id"] == "cus_floor_1"
    assert referral["status"] == "pending"
    assert referral["history"][0]["action"] == "claimed"
    assert [h["action"] for h in referral["history"]] == ["claimed", "qualified"]


def test_the_floor_records_a_signed_delivery_once(api: Api, floor: Any) -> None:
    program_id = api.program_id  # type: ignore[attr-defined]
    body = json.dumps({"id": "evt_floor_1", "type": "invoice.paid", "data": {}}).encode()
    path = f"/v1/ingress/{program_id}/stripe"
    first = floor.post(path, data=body, headers={"Stripe-Signature": _signed(body)})
    assert first.get_json() == {"received": 1, "duplicates": 0}
    second = floor.post(path, data=body, headers={"Stripe-Signature": _signed(body)})
    assert second.get_json() == {"received": 1, "duplicates": 1}
    forged = floor.post(path, data=body, headers={"Stripe-Signature": "t=1,v1=00"})
    assert forged.status_code == 400
