"""Scenario table for eligibility and fraud: one row per rule and signal, over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from referflow.storage.models import Click, IdentityMark
from tests.conftest import PROGRAM_CONFIG, make_program
from tests.helpers import claim, iso, link

NOW = datetime.now(UTC)


def _db(app):
    return app.extensions["referflow"].db.session()


def _age_marks(app, days):
    with _db(app) as s:
        s.execute(update(IdentityMark).values(created_at=NOW - timedelta(days=days)))
        s.commit()


def _age_clicks(app, hours):
    with _db(app) as s:
        s.execute(update(Click).values(created_at=datetime.now(UTC) - timedelta(hours=hours)))
        s.commit()


def _friend(email="friend@mail.test", fid="friend-1", **context):
    body: dict[str, Any] = {"friend": {"external_id": fid, "email": email}}
    if context:
        body["context"] = context
    return body


# Each row: id, config overrides, advocate (external_id, email, link context), setup(api, code,
# client, app) before the claim, the claim body, expected status, expected reason codes.
SCENARIOS = [
    ("clean", {}, ("adv", "ann@mail.test", None), None, _friend(), "pending", []),
    ("self_referral_same_customer_id", {}, ("cus_1", "ann@mail.test", None), None,
     _friend(fid="cus_1"), "rejected", ["self_referral"]),
    ("self_referral_gmail_dots_plus_and_alias", {}, ("adv", "Jane.Doe@gmail.com", None), None,
     _friend(email="janedoe+promo@googlemail.com"), "rejected", ["self_referral"]),
    ("self_referral_case_and_spaces", {}, ("adv", "ann@mail.test", None), None,
     _friend(email="  ANN@Mail.Test "), "rejected", ["self_referral"]),
    ("same_payment_method_as_advocate", {}, ("adv", "ann@mail.test", {"payment_fingerprint": "fp_1"}),
     None, _friend(payment_fingerprint="fp_1"), "in_review", ["same_payment_method"]),
    ("same_payment_method_as_earlier_friend", {}, ("adv", "ann@mail.test", None),
     lambda api, code, c, a: claim(api, code, friend_id="f0", context={"payment_fingerprint": "fp_9"}),
     _friend(payment_fingerprint="fp_9"), "in_review", ["same_payment_method"]),
    ("same_household_ipv4_as_earlier_friend", {}, ("adv", "ann@mail.test", None),
     lambda api, code, c, a: claim(api, code, friend_id="f0", context={"ip": "203.0.113.9"}),
     _friend(ip="203.0.113.9"), "in_review", ["same_household"]),
    ("same_household_ipv6_same_64", {}, ("adv", "ann@mail.test", {"ip": "2001:db8:5:6::1"}), None,
     _friend(ip="2001:db8:5:6:ffff::42"), "in_review", ["same_household"]),
    ("other_ipv6_64_is_not_a_household", {}, ("adv", "ann@mail.test", {"ip": "2001:db8:5:6::1"}), None,
     _friend(ip="2001:db8:5:7::1"), "pending", []),
    ("same_device_as_advocate", {}, ("adv", "ann@mail.test", {"device_id": "dev-1"}), None,
     _friend(device_id="dev-1"), "in_review", ["same_household"]),
    ("household_outside_window", {"household_window_days": 7}, ("adv", "ann@mail.test", None),
     lambda api, code, c, a: (claim(api, code, friend_id="f0", context={"ip": "203.0.113.9"}),
                              _age_marks(a, 8)),
     _friend(ip="203.0.113.9"), "pending", []),
    ("disposable_email", {}, ("adv", "ann@mail.test", None), None,
     _friend(email="someone@mailinator.com"), "in_review", ["disposable_email"]),
    ("disposable_email_rejected_by_policy", {"review": {"policy": {"disposable_email": "reject"}}},
     ("adv", "ann@mail.test", None), None, _friend(email="someone@mailinator.com"), "rejected",
     ["disposable_email"]),
    ("velocity_per_hour", {"velocity": {"per_hour": 2, "per_day": 100}}, ("adv", "ann@mail.test", None),
     lambda api, code, c, a: [claim(api, code, friend_id=f"v{i}") for i in range(2)],
     _friend(), "in_review", ["velocity"]),
    ("velocity_under_limit", {"velocity": {"per_hour": 3, "per_day": 100}}, ("adv", "ann@mail.test", None),
     lambda api, code, c, a: [claim(api, code, friend_id=f"v{i}") for i in range(2)],
     _friend(), "pending", []),
    ("existing_customer_flag", {}, ("adv", "ann@mail.test", None), None,
     _friend(existing_customer=True), "rejected", ["existing_customer"]),
    ("existing_customer_from_imported_list", {}, ("adv", "ann@mail.test", None),
     lambda api, code, c, a: api.post("/v1/customers", {"customers": [{"email": "Friend+x@mail.test"}]}),
     _friend(), "rejected", ["existing_customer"]),
    ("outside_attribution_window", {"attribution_window_days": 30}, ("adv", "ann@mail.test", None),
     None, ("CLICK", 30 * 24 + 1), "rejected", ["outside_attribution_window"]),
    ("inside_attribution_window", {"attribution_window_days": 30}, ("adv", "ann@mail.test", None),
     None, ("CLICK", 30 * 24 - 1), "pending", []),
    ("late_claim_inside_grace", {"late_claim_grace_days": 7}, ("adv", "ann@mail.test", None), None,
     _friend(purchased_at=iso(NOW - timedelta(days=6, hours=23))), "pending", []),
    ("late_claim_outside_grace", {"late_claim_grace_days": 7}, ("adv", "ann@mail.test", None), None,
     _friend(purchased_at=iso(NOW - timedelta(days=7, hours=1))), "rejected", ["late_claim"]),
    ("inactive_code", {}, ("adv", "ann@mail.test", None),
     lambda api, code, c, a: api.post(f"/v1/codes/{code}/deactivate"), _friend(), "rejected",
     ["inactive_code"]),
    ("advocate_flagged_after_chargeback", {}, ("adv", "ann@mail.test", None),
     lambda api, code, c, a: api.post(f"/v1/referrals/{claim(api, code, friend_id='f0')['id']}/reverse",
                                      {"reason": "chargeback"}),
     _friend(), "in_review", ["advocate_flagged"]),
]


@pytest.mark.parametrize(("config", "advocate", "setup", "body", "status", "codes"),
                         [row[1:] for row in SCENARIOS], ids=[row[0] for row in SCENARIOS])
def test_claim_scenarios(client, app, config, advocate, setup, body, status, codes):
    api = make_program(client, {**PROGRAM_CONFIG, **config})
    external_id, email, context = advocate
    code = link(api, external_id=external_id, email=email,
                **({"context": context} if context else {}))["code"]
    if setup:
        setup(api, code, client, app)
    if isinstance(body, tuple):  # ("CLICK", hours): claim by a click made that long ago
        location = client.get(f"/r/{code}").headers["Location"]
        _age_clicks(app, body[1])
        body = {"click_id": location.split("click_id=")[1], **_friend()}
    else:
        body = {"code": code, **body}
    response = api.post("/v1/referrals/claim", body)
    assert response.status_code == 201, response.get_json()
    referral = response.get_json()
    assert referral["status"] == status
    assert [r["code"] for r in referral["reasons"]] == codes
    assert all(r["message"] for r in referral["reasons"])
    history = api.get(f"/v1/referrals/{referral['id']}").get_json()["history"]
    outcomes = {o["rule"]: o["outcome"] for o in history[0]["data"]["rules"]}
    assert len(outcomes) == 10 and set(codes) <= set(outcomes.values())
    if status == "in_review":
        assert referral["review_deadline"] is not None
