"""The referral lifecycle over HTTP: claim, qualify, hold, approve, reverse, history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.conftest import make_program, unique
from tests.helpers import approved_referral, claim, event, expire_hold, link, qualify


def test_claim_creates_a_pending_referral_attributed_to_the_advocate(api):
    created = link(api)
    referral = claim(api, created["code"].lower())  # codes are case-insensitive
    assert referral["status"] == "pending"
    assert referral["advocate_id"] == created["advocate_id"]
    assert referral["code"] == created["code"]
    assert referral["created"] is True
    assert referral["reasons"] == []


def test_second_claim_for_the_same_friend_returns_the_first_referral(api):
    first, second = link(api)["code"], link(api)["code"]
    referral = claim(api, first, friend_id="friend-1")
    again = claim(api, second, friend_id="friend-1", expect=200)
    assert again["id"] == referral["id"]
    assert again["code"] == first
    assert again["created"] is False


def test_claim_with_an_unknown_code_is_a_404_and_stores_nothing(api):
    response = api.post("/v1/referrals/claim",
                        {"code": "NOPE2345", "friend": {"external_id": "f", "email": "f@x.test"}})
    assert response.status_code == 404
    assert response.get_json()["code"] == "unknown_code"
    assert api.post("/v1/referrals/qualify", {"friend_external_id": "f", "event": event()}
                    ).status_code == 404


def test_claim_by_click_id_attributes_the_click(api, client):
    code = link(api)["code"]
    location = client.get(f"/r/{code}?ch=email").headers["Location"]
    click_id = location.split("click_id=")[1]
    response = api.post("/v1/referrals/claim",
                        {"click_id": click_id, "friend": {"external_id": "f1", "email": "f1@x.test"}})
    assert response.status_code == 201
    assert response.get_json()["click_id"] == click_id
    assert response.get_json()["code"] == code


def test_unknown_click_id_is_a_404(api):
    response = api.post("/v1/referrals/claim",
                        {"click_id": "clk_missing", "friend": {"external_id": "f", "email": "f@x.test"}})
    assert response.status_code == 404
    assert response.get_json()["code"] == "unknown_click"


def test_self_referral_by_normalised_email_is_rejected_with_a_reason(api):
    code = link(api, email="Jane.Doe+shop@googlemail.com")["code"]
    referral = claim(api, code, email=" janedoe@GMAIL.com")
    assert referral["status"] == "rejected"
    assert [r["code"] for r in referral["reasons"]] == ["self_referral"]
    assert referral["reasons"][0]["message"]


def test_self_referral_by_customer_id_is_rejected(api):
    code = link(api, external_id="cus_same")["code"]
    assert claim(api, code, friend_id="cus_same")["status"] == "rejected"


def test_existing_customer_flag_rejects_the_claim(api):
    code = link(api)["code"]
    referral = claim(api, code, context={"existing_customer": True})
    assert referral["status"] == "rejected"
    assert referral["reasons"][0]["code"] == "existing_customer"


def test_qualify_moves_to_held_until_the_hold_period_ends(api):
    referral = claim(api, link(api)["code"])
    at = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)
    held = qualify(api, referral["id"], at=at, amount=4900)
    assert held["status"] == "held"
    assert held["hold_until"] == (at + timedelta(days=14)).isoformat().replace("+00:00", "Z")
    assert held["qualification"]["amount"] == 4900
    assert held["qualification"]["currency"] == "EUR"


def test_qualify_with_zero_hold_days_approves_at_once(client):
    api = make_program(client, {"landing_url": "https://x.test", "currency": "EUR", "hold_days": 0})
    referral = claim(api, link(api)["code"])
    assert qualify(api, referral["id"])["status"] == "approved"


def test_the_same_qualifying_event_twice_does_nothing_the_second_time(api):
    referral = claim(api, link(api)["code"])
    first = qualify(api, referral["id"], event_id="in_1")
    second = qualify(api, referral["id"], event_id="in_1", amount=99999)
    assert (first.pop("outcome"), first.pop("changed")) == ("qualified", True)
    assert (second.pop("outcome"), second.pop("changed")) == ("duplicate", False)
    assert first == second
    history = api.get(f"/v1/referrals/{referral['id']}").get_json()["history"]
    assert [h["action"] for h in history] == ["claimed", "qualified"]


def test_qualify_by_friend_external_id(api):
    referral = claim(api, link(api)["code"], friend_id="shopify-42")
    response = api.post("/v1/referrals/qualify",
                        {"friend_external_id": "shopify-42", "event": event()})
    assert response.status_code == 200
    assert response.get_json()["id"] == referral["id"]
    assert response.get_json()["status"] == "held"


def test_non_qualifying_events_leave_the_referral_pending_and_say_why(client):
    api = make_program(client, {"landing_url": "https://x.test", "currency": "EUR",
                                "min_qualifying_amount": 1000,
                                "qualifying_event_types": ["first_paid_invoice"]})
    referral = claim(api, link(api)["code"])
    assert qualify(api, referral["id"], type_="first_order")["status"] == "pending"
    assert qualify(api, referral["id"], type_="first_paid_invoice", amount=999)["status"] == "pending"
    assert qualify(api, referral["id"], type_="first_paid_invoice", currency="USD")["status"] == "pending"
    assert qualify(api, referral["id"], type_="first_paid_invoice", amount=1000)["status"] == "held"
    history = api.get(f"/v1/referrals/{referral['id']}").get_json()["history"]
    ignored = [h["reasons"][0]["code"] for h in history if h["action"] == "qualify_ignored"]
    assert ignored == ["event_type_not_qualifying", "below_minimum_amount", "currency_mismatch"]


def test_a_rejected_referral_cannot_qualify(api):
    referral = claim(api, link(api, external_id="same")["code"], friend_id="same")
    assert qualify(api, referral["id"])["status"] == "rejected"


def test_an_event_older_than_the_hold_approves_at_once(api):
    referral = claim(api, link(api)["code"])
    got = qualify(api, referral["id"], at=datetime.now(UTC) - timedelta(days=14, seconds=1))
    assert got["status"] == "approved"


def test_held_referral_is_approved_once_the_hold_has_passed(api, app):
    referral = claim(api, link(api)["code"])
    qualify(api, referral["id"])
    expire_hold(app, referral["id"])
    got = api.get(f"/v1/referrals/{referral['id']}").get_json()
    assert got["status"] == "approved"
    assert got["history"][-1]["action"] == "hold_released"
    assert got["history"][-1]["actor"] == {"type": "system", "id": "scheduler"}


def test_held_referral_inside_the_hold_stays_held(api):
    referral = claim(api, link(api)["code"])
    qualify(api, referral["id"], at=datetime.now(UTC) - timedelta(days=13, hours=23))
    assert api.get(f"/v1/referrals/{referral['id']}").get_json()["status"] == "held"


def test_the_sweep_releases_due_holds(api, app):
    from referflow.jobs.runner import sweep

    due = claim(api, link(api)["code"])
    qualify(api, due["id"])
    expire_hold(app, due["id"])
    not_due = claim(api, link(api)["code"])
    qualify(api, not_due["id"])
    assert sweep(app.extensions["referflow"]) == 1
    assert sweep(app.extensions["referflow"]) == 0
    with app.extensions["referflow"].db.session() as session:
        from referflow.storage.models import Referral

        assert session.get(Referral, due["id"]).status == "approved"
        assert session.get(Referral, not_due["id"]).status == "held"


def test_refund_inside_the_hold_reverses(api):
    referral = claim(api, link(api)["code"])
    qualify(api, referral["id"])
    response = api.post(f"/v1/referrals/{referral['id']}/reverse",
                        {"reason": "refund", "event": {"id": "re_1"}})
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "reversed"
    assert body["reasons"][-1]["code"] == "refunded_in_hold"


def test_reversal_after_the_reward_voids_the_unredeemed_balance_and_records_the_loss(api):
    referral = approved_referral(api)
    cards = api.post("/v1/gift-cards", {"referral_id": referral["id"]}).get_json()["cards"]
    advocate_card = next(c for c in cards if c["side"] == "advocate")
    api.post(f"/v1/gift-cards/{advocate_card['code']}/redeem", {"amount": 1000, "currency": "EUR"})
    response = api.post(f"/v1/referrals/{referral['id']}/reverse", {"reason": "chargeback"})
    assert response.get_json()["status"] == "reversed"
    assert response.get_json()["reasons"][-1]["code"] == "chargeback"
    history = api.get(f"/v1/referrals/{referral['id']}").get_json()["history"]
    reversal = history[-1]["data"]
    assert reversal["voided_amount"] == 1500 + 1000  # advocate rest + untouched friend card
    assert reversal["loss_amount"] == 1000
    voided = api.get(f"/v1/gift-cards/{advocate_card['code']}").get_json()
    assert voided["status"] == "voided" and voided["balance"] == 0
    assert [e["kind"] for e in voided["entries"]] == ["issue", "redeem", "void"]


def test_the_same_refund_event_twice_reverses_once(api):
    referral = claim(api, link(api)["code"])
    for _ in range(2):
        api.post(f"/v1/referrals/{referral['id']}/reverse", {"reason": "refund", "event": {"id": "re_9"}})
    history = api.get(f"/v1/referrals/{referral['id']}").get_json()["history"]
    assert [h["action"] for h in history] == ["claimed", "reversed"]


def test_a_rejected_referral_cannot_be_reversed(api):
    referral = claim(api, link(api, external_id="me")["code"], friend_id="me")
    response = api.post(f"/v1/referrals/{referral['id']}/reverse", {"reason": "refund"})
    assert response.status_code == 409
    assert response.get_json()["code"] == "invalid_transition"


def test_history_tells_every_change_with_actor_and_config_version(api):
    referral = approved_referral(api)
    api.post("/v1/gift-cards", {"referral_id": referral["id"]})
    history = api.get(f"/v1/referrals/{referral['id']}").get_json()["history"]
    assert [(h["action"], h["from_status"], h["to_status"]) for h in history] == [
        ("claimed", None, "pending"), ("qualified", "pending", "approved"),
        ("rewarded", "approved", "rewarded")]
    assert history[0]["actor"]["type"] == "api_key"
    assert all(h["config_version"] == 1 for h in history)
    assert [h["at"] for h in history] == sorted(h["at"] for h in history)


def test_another_programs_referral_is_not_found(api, client):
    referral = claim(api, link(api)["code"])
    other = make_program(client, name="Other")
    assert other.get(f"/v1/referrals/{referral['id']}").status_code == 404
    assert other.post(f"/v1/referrals/{referral['id']}/reverse", {"reason": "refund"}).status_code == 404
    response = other.post("/v1/referrals/claim",
                          {"code": referral["code"], "friend": {"external_id": unique("f"),
                                                                "email": "z@z.test"}})
    assert response.status_code == 404
    assert response.get_json()["code"] == "unknown_code"


def test_reverse_by_friend_external_id(api):
    referral = claim(api, link(api)["code"], friend_id="cus_42")
    qualify(api, referral["id"])
    response = api.post("/v1/referrals/reverse", {"friend_external_id": "cus_42", "reason": "refund",
                                                  "event": {"id": "re_42"}})
    assert response.status_code == 200 and response.get_json()["status"] == "reversed"
    missing = api.post("/v1/referrals/reverse", {"friend_external_id": "nobody", "reason": "refund"})
    assert missing.status_code == 404 and missing.get_json()["code"] == "referral_not_found"
