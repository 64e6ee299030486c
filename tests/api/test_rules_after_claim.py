"""Rules after the claim: refunds around the hold end, caps, tiers, review queue, audit, privacy."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select, text, update

from referflow.actions.lifecycle import release_due_holds
from referflow.actions.reviews import resolve_expired_reviews
from referflow.storage.models import Referral, ReferralHistory
from tests.conftest import PROGRAM_CONFIG, make_program
from tests.helpers import claim, expire_hold, iso, link, qualify


def _program(client, **config):
    return make_program(client, {**PROGRAM_CONFIG, **config})


def _db(app):
    return app.extensions["referflow"].db.session()


# -- refunds around the end of the hold -------------------------------------------------------

@pytest.mark.parametrize(("offset", "policy", "status", "code"), [
    (-1, "reverse", "reversed", "refunded_in_hold"),
    (0, "reverse", "reversed", "refunded_in_hold"),
    (+1, "reverse", "reversed", "refunded_after_hold"),
    (+1, "keep", "held", None),
])
def test_refund_one_second_around_the_hold_end(client, offset, policy, status, code):
    api = _program(client, refund_after_hold=policy)
    referral = claim(api, link(api)["code"])
    # Qualified almost 14 days ago: the hold ends in ten minutes, so a refund a second either side
    # of its end is a real (not a future) event, and the referral is still held.
    held = qualify(api, referral["id"], at=datetime.now(UTC) - timedelta(days=14, minutes=-10))
    hold_until = datetime.fromisoformat(held["hold_until"])
    response = api.post(f"/v1/referrals/{referral['id']}/reverse", {"reason": "refund", "event": {
        "id": "re_1", "occurred_at": iso(hold_until + timedelta(seconds=offset))}})
    body = response.get_json()
    assert body["status"] == status
    history = api.get(f"/v1/referrals/{referral['id']}").get_json()["history"]
    if code:
        assert body["reasons"][-1]["code"] == code
    else:
        assert history[-1]["action"] == "reversal_declined"
        assert history[-1]["reasons"][0]["code"] == "refund_after_hold"


def test_refund_after_reward_records_the_loss_and_flags_the_advocate(client, app):
    api = _program(client)
    created = link(api)
    referral = claim(api, created["code"])
    qualify(api, referral["id"])
    expire_hold(app, referral["id"])
    cards = api.post("/v1/gift-cards", {"referral_id": referral["id"]}).get_json()["cards"]
    api.post(f"/v1/gift-cards/{cards[0]['code']}/redeem", {"amount": 500, "currency": "EUR"})
    body = api.post(f"/v1/referrals/{referral['id']}/reverse", {"reason": "refund"}).get_json()
    assert body["reasons"][-1]["code"] == "refunded_after_reward"
    reversal = api.get(f"/v1/referrals/{referral['id']}").get_json()["history"][-1]["data"]
    assert (reversal["loss_amount"], reversal["voided_amount"]) == (500, 2500 + 1000 - 500)
    advocate = api.get(f"/v1/advocates/{created['advocate_id']}").get_json()
    assert advocate["flagged"] is True
    assert advocate["events"][-1]["action"] == "flagged"


# -- monthly caps in the program's timezone ---------------------------------------------------

def _held(api, app, advocate_code, hold_until):
    referral = claim(api, advocate_code)
    qualify(api, referral["id"])
    with _db(app) as s:
        s.execute(update(Referral).where(Referral.id == referral["id"]).values(hold_until=hold_until))
        s.commit()
    return referral["id"]


def _approved_at(app, referral_id, when):
    with _db(app) as s:
        s.execute(update(Referral).where(Referral.id == referral_id).values(
            status="approved", approved_at=when, advocate_reward=2500, friend_reward=1000))
        s.commit()


def _release(app, now):
    with _db(app) as s:
        release_due_holds(s, "test-secret-key", now=now)


def _status(app, referral_id):
    with _db(app) as s:
        row = s.get(Referral, referral_id)
        return row.status, row.hold_until, row.reasons


# Stockholm is UTC+1 in winter: 2026-01-31T23:00Z is 2026-02-01 00:00 local.
@pytest.mark.parametrize(("now", "expected"), [
    (datetime(2026, 1, 31, 22, 59, 59, tzinfo=UTC), "held"),      # still January in Stockholm
    (datetime(2026, 1, 31, 23, 0, 0, tzinfo=UTC), "approved"),    # February in Stockholm
])
def test_advocate_cap_at_the_month_boundary_in_the_program_timezone(client, app, now, expected):
    api = _program(client, timezone="Europe/Stockholm",
                   caps={"advocate_rewards_per_month": 1, "on_cap": "defer"})
    code = link(api)["code"]
    first = _held(api, app, code, now - timedelta(days=40))
    _approved_at(app, first, datetime(2026, 1, 31, 22, 30, tzinfo=UTC))  # Jan 31 23:30 local
    second = _held(api, app, code, now - timedelta(days=1))
    _release(app, now)
    status, hold_until, reasons = _status(app, second)
    assert status == expected
    if expected == "held":
        assert hold_until == datetime(2026, 1, 31, 23, 0, tzinfo=UTC)  # Feb 1 00:00 local
        assert reasons == []  # deferral is history, not a rejection reason
        with _db(app) as s:  # read the stored history: a GET would release at today's clock
            last = s.scalars(select(ReferralHistory).where(ReferralHistory.referral_id == second)
                             .order_by(ReferralHistory.id.desc())).first()
        assert last.action == "cap_deferred"
        assert last.reasons[0]["code"] == "advocate_cap_reached"


def test_cap_with_reject_rejects(client, app):
    api = _program(client, caps={"advocate_rewards_per_month": 1, "on_cap": "reject"}, hold_days=0)
    code = link(api)["code"]
    assert qualify(api, claim(api, code)["id"])["status"] == "approved"
    second = qualify(api, claim(api, code)["id"])
    assert second["status"] == "rejected"
    assert second["reasons"][-1]["code"] == "advocate_cap_reached"


def test_program_budget_is_exhausted_by_committed_rewards(client):
    api = _program(client, caps={"program_spend_per_month": 7000, "on_cap": "reject"}, hold_days=0)
    results = [qualify(api, claim(api, link(api)["code"])["id"]) for _ in range(3)]
    assert [r["status"] for r in results] == ["approved", "approved", "rejected"]  # 3500 each
    assert results[2]["reasons"][-1]["code"] == "budget_exhausted"
    assert results[0]["rewards"] == {"advocate": 2500, "friend": 1000}


# -- tiers ------------------------------------------------------------------------------------

def test_tiers_change_by_approved_referrals_and_raise_the_reward(client):
    api = _program(client, hold_days=0, tiers=[
        {"name": "advocate", "min_approved": 0},
        {"name": "ambassador", "min_approved": 2, "perks": ["early access"],
         "advocate_reward": {"type": "gift_card", "amount": 5000}}])
    created = link(api)
    rewards = [qualify(api, claim(api, created["code"])["id"])["rewards"]["advocate"]
               for _ in range(3)]
    assert rewards == [2500, 2500, 5000]  # the tier held at approval time pays
    advocate = api.get(f"/v1/advocates/{created['advocate_id']}").get_json()
    assert advocate["tier"] == "ambassador"
    changes = [e["data"] for e in advocate["events"] if e["action"] == "tier_changed"]
    assert [(c["from"], c["to"]) for c in changes] == [(None, "advocate"), ("advocate", "ambassador")]
    assert changes[-1]["perks"] == ["early access"]


# -- review queue -----------------------------------------------------------------------------

def _in_review(api, n=1):
    code = link(api, context={"device_id": "shared"})["code"]
    return [claim(api, code, context={"device_id": "shared"}) for _ in range(n)]


def test_review_queue_lists_pages_and_approves_with_the_reviewer(client):
    api = _program(client)
    waiting = _in_review(api, 3)
    assert all(r["status"] == "in_review" for r in waiting)
    first = api.get("/v1/reviews?limit=2").get_json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = api.get(f"/v1/reviews?limit=2&after={first['next_cursor']}").get_json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert first["items"][0]["reasons"][0]["code"] == "same_household"
    target = waiting[0]["id"]
    qualify(api, target)  # qualified while in review: remembered, decided by the reviewer
    approved = api.post(f"/v1/referrals/{target}/approve", {"reviewer": "ops@shop.test",
                                                            "note": "known family"}).get_json()
    assert approved["status"] == "held" and approved["review_deadline"] is None
    last = api.get(f"/v1/referrals/{target}").get_json()["history"][-1]
    assert last["action"] == "review_approved"
    assert last["actor"]["type"] == "reviewer" and last["actor"]["id"].startswith("ops@shop.test")
    unqualified = api.post(f"/v1/referrals/{waiting[1]['id']}/approve", {"reviewer": "ops"})
    assert unqualified.get_json()["status"] == "pending"


def test_decline_records_a_polite_reason(client):
    api = _program(client)
    referral = _in_review(api)[0]
    default = api.post(f"/v1/referrals/{referral['id']}/decline", {"reviewer": "ops"}).get_json()
    assert default["status"] == "rejected"
    assert default["reasons"][-1]["code"] == "declined_in_review"
    assert "Thanks" in default["reasons"][-1]["message"]
    again = api.post(f"/v1/referrals/{referral['id']}/decline", {"reviewer": "ops"})
    assert again.status_code == 409 and again.get_json()["code"] == "not_in_review"


def test_custom_decline_message(client):
    api = _program(client)
    referral = _in_review(api)[0]
    body = api.post(f"/v1/referrals/{referral['id']}/decline",
                    {"reviewer": "ops", "message": "Referrals within one household do not count."})
    assert body.get_json()["reasons"][-1]["message"] == "Referrals within one household do not count."


@pytest.mark.parametrize(("rule", "status"), [("decline", "rejected"), ("approve", "pending")])
def test_expired_reviews_follow_the_deadline_rule(client, app, rule, status):
    api = _program(client, review={"deadline_hours": 24, "on_deadline": rule})
    referral = _in_review(api)[0]
    with _db(app) as s:
        assert resolve_expired_reviews(s, "test-secret-key") == 0
        later = datetime.now(UTC) + timedelta(hours=24, seconds=1)
        assert resolve_expired_reviews(s, "test-secret-key", now=later) == 1
        assert resolve_expired_reviews(s, "test-secret-key", now=later) == 0
    got = api.get(f"/v1/referrals/{referral['id']}").get_json()
    assert got["status"] == status
    assert got["history"][-1]["actor"] == {"type": "system", "id": "scheduler"}


# -- audit export -----------------------------------------------------------------------------

def test_audit_export_as_json_lines_and_csv(client):
    api = _program(client)
    referral = claim(api, link(api)["code"], context={"ip": "198.51.100.4"})
    qualify(api, referral["id"])
    lines = api.get("/v1/audit/export?format=jsonl")
    assert lines.mimetype == "application/x-ndjson"
    rows = [json.loads(line) for line in lines.get_data(as_text=True).splitlines()]
    assert [r["action"] for r in rows] == ["claimed", "qualified"]
    assert rows[0]["data"]["rules"][0] == {"rule": "self_referral", "outcome": "pass"}
    assert rows[0]["config_version"] == 1
    assert "198.51.100.4" not in lines.get_data(as_text=True)
    table = list(csv.DictReader(io.StringIO(api.get("/v1/audit/export?format=csv")
                                            .get_data(as_text=True))))
    assert [r["action"] for r in table] == ["claimed", "qualified"]
    assert table[1]["to_status"] == "held" and table[0]["referral_id"] == referral["id"]
    future = api.get("/v1/audit/export?since=2999-01-01T00:00:00Z").get_data(as_text=True)
    assert future == ""
    assert api.get("/v1/audit/export?format=xml").get_json()["code"] == "invalid_query"
    assert api.get("/v1/audit/export?since=yesterday").status_code == 400


# -- privacy ----------------------------------------------------------------------------------

def test_export_and_erase_a_person_keeps_the_money_facts(client, app):
    api = _program(client, hold_days=0)
    created = link(api, external_id="cus_ann", email="ann@mail.test",
                    context={"ip": "192.0.2.77"})
    referral = claim(api, created["code"], friend_id="cus_bob", email="bob@mail.test",
                     context={"ip": "192.0.2.78"})
    qualify(api, referral["id"])
    cards = api.post("/v1/gift-cards", {"referral_id": referral["id"]}).get_json()["cards"]
    exported = api.get("/v1/people/cus_bob").get_json()
    assert exported["referred_as_friend"][0]["email"] == "bob@mail.test"
    assert [c["amount"] for c in exported["gift_cards"]] == [1000]
    erased = api.client.delete("/v1/people/cus_bob", headers=api.headers()).get_json()
    assert erased == {"erased": True, "advocate": False, "referrals": 1}
    api.client.delete("/v1/people/cus_ann", headers=api.headers())
    assert api.get("/v1/people/cus_bob").status_code == 404
    got = api.get(f"/v1/referrals/{referral['id']}").get_json()
    assert got["friend"] == {"external_id": f"erased:{referral['id']}", "email": None}
    assert got["status"] == "rewarded"
    assert api.get(f"/v1/gift-cards/{cards[0]['code']}").get_json()["amount"] == 2500
    _assert_nowhere(app, ["ann@mail.test", "bob@mail.test", "cus_bob", "cus_ann",
                          "192.0.2.77", "192.0.2.78"])


def _assert_nowhere(app, needles):
    """No table holds any of these strings (raw IPs are never stored; erased people are gone)."""
    with _db(app) as s:
        engine = s.get_bind()
        for table in inspect(engine).get_table_names():
            for row in s.execute(text(f'SELECT * FROM "{table}"')):
                blob = " ".join(str(v) for v in row)
                for needle in needles:
                    assert needle not in blob, (table, needle)


def test_unknown_person_is_404(api):
    assert api.get("/v1/people/nobody").get_json()["code"] == "person_not_found"


def test_imported_customers_are_counted(api):
    body = {"customers": [{"external_id": "c1"}, {"email": "x@mail.test"}, {"external_id": "c1"}]}
    assert api.post("/v1/customers", body).get_json() == {"received": 3, "imported": 2}
    assert api.post("/v1/customers", {"customers": [{}]}).status_code == 422


def test_lookups_use_indexes(app):
    with _db(app) as s:
        if s.get_bind().dialect.name != "sqlite":
            pytest.skip("EXPLAIN QUERY PLAN is SQLite's")
        plan = " ".join(str(r) for r in s.execute(text(
            "EXPLAIN QUERY PLAN SELECT kind FROM identity_marks WHERE advocate_id='a' AND "
            "kind='ip' AND key='k'")))
        assert "SEARCH identity_marks USING COVERING INDEX" in plan
        plan = " ".join(str(r) for r in s.execute(text(
            "EXPLAIN QUERY PLAN SELECT count(*) FROM referrals WHERE advocate_id='a' AND "
            "created_at >= '2026-01-01'")))
        assert "SEARCH referrals USING" in plan and "INDEX" in plan
