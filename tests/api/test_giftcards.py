"""The gift-card ledger: issue once per side, redeem without overdraw, expiry, tenancy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from referflow.storage.models import GiftCard
from tests.conftest import make_program
from tests.helpers import approved_referral, claim, link


def test_issue_for_an_approved_referral_pays_both_sides_once(api):
    referral = approved_referral(api)
    response = api.post("/v1/gift-cards", {"referral_id": referral["id"]})
    assert response.status_code == 201
    body = response.get_json()
    by_side = {c["side"]: c for c in body["cards"]}
    assert by_side["advocate"]["amount"] == 2500 and by_side["friend"]["amount"] == 1000
    assert all(c["currency"] == "EUR" and c["balance"] == c["amount"] for c in body["cards"])
    assert by_side["advocate"]["advocate_id"] == referral["advocate_id"]
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(days=364) < expires - datetime.now(UTC) <= timedelta(days=365)
    again = api.post("/v1/gift-cards", {"referral_id": referral["id"]}).get_json()
    assert {c["id"] for c in again["cards"]} == {c["id"] for c in body["cards"]}
    assert api.get(f"/v1/referrals/{referral['id']}").get_json()["status"] == "rewarded"


def test_issue_one_side_then_the_other(api):
    referral = approved_referral(api)
    advocate = api.post("/v1/gift-cards", {"referral_id": referral["id"], "side": "advocate"})
    assert advocate.get_json()["side"] == "advocate"
    assert api.get(f"/v1/referrals/{referral['id']}").get_json()["status"] == "approved"
    api.post("/v1/gift-cards", {"referral_id": referral["id"], "side": "friend"})
    assert api.get(f"/v1/referrals/{referral['id']}").get_json()["status"] == "rewarded"


def test_issue_for_a_referral_not_yet_approved_is_refused(api):
    referral = claim(api, link(api)["code"])
    response = api.post("/v1/gift-cards", {"referral_id": referral["id"]})
    assert response.status_code == 409
    assert response.get_json()["code"] == "referral_not_approved"


def test_referral_rewards_take_their_amount_from_the_program(api):
    referral = approved_referral(api)
    response = api.post("/v1/gift-cards", {"referral_id": referral["id"], "amount": 99})
    assert response.status_code == 422
    assert response.get_json()["code"] == "amount_not_allowed"


def test_one_sided_program_refuses_a_friend_card(client):
    api = make_program(client, {"landing_url": "https://x.test", "currency": "EUR", "hold_days": 0,
                                "rewards": {"advocate": {"type": "gift_card", "amount": 500},
                                            "friend": {"type": "non_cash", "perk": "VIP access"}}})
    referral = claim(api, link(api)["code"])
    api.post("/v1/referrals/qualify", {"referral_id": referral["id"], "event": {
        "id": "e1", "type": "first_order", "amount": 100, "currency": "EUR",
        "occurred_at": "2026-01-01T00:00:00Z"}})
    refused = api.post("/v1/gift-cards", {"referral_id": referral["id"], "side": "friend"})
    assert refused.status_code == 409 and refused.get_json()["code"] == "no_monetary_reward"
    issued = api.post("/v1/gift-cards", {"referral_id": referral["id"]}).get_json()
    assert [c["side"] for c in issued["cards"]] == ["advocate"]
    history = api.get(f"/v1/referrals/{referral['id']}").get_json()["history"]
    assert history[-1]["data"]["non_cash"] == {"friend": "VIP access"}


def test_goodwill_card_for_an_advocate(api):
    advocate = link(api)["advocate_id"]
    response = api.post("/v1/gift-cards", {"advocate_id": advocate, "amount": 750,
                                           "note": "sorry for the delay"})
    assert response.status_code == 201
    card = response.get_json()
    assert (card["side"], card["amount"], card["currency"], card["referral_id"]) == \
        ("goodwill", 750, "EUR", None)


def test_redeem_partial_then_rest_then_refuse_overdraw(api):
    card = api.post("/v1/gift-cards", {"advocate_id": link(api)["advocate_id"],
                                       "amount": 1000}).get_json()
    code = card["code"]
    first = api.post(f"/v1/gift-cards/{code.lower()}/redeem", {"amount": 400, "currency": "EUR",
                                                               "reference": "order-1"})
    assert first.status_code == 200 and first.get_json()["balance"] == 600
    over = api.post(f"/v1/gift-cards/{code}/redeem", {"amount": 601, "currency": "EUR"})
    assert over.status_code == 409 and over.get_json()["code"] == "insufficient_balance"
    rest = api.post(f"/v1/gift-cards/{code}/redeem", {"amount": 600, "currency": "EUR"})
    assert rest.get_json()["balance"] == 0 and rest.get_json()["status"] == "redeemed"
    entries = api.get(f"/v1/gift-cards/{code}").get_json()["entries"]
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in entries] == [
        ("issue", 1000, 1000), ("redeem", -400, 600), ("redeem", -600, 0)]
    assert entries[1]["reference"] == "order-1"


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"amount": 100, "currency": "USD"}, 422, "currency_mismatch"),
    ({"amount": 0, "currency": "EUR"}, 422, "validation_failed"),
    ({"amount": -5, "currency": "EUR"}, 422, "validation_failed"),
    ({"amount": 1.5, "currency": "EUR"}, 422, "validation_failed"),
    ({"amount": "100", "currency": "EUR"}, 422, "validation_failed"),
    ({"amount": 100}, 422, "validation_failed"),
])
def test_bad_redemptions_are_refused_and_change_nothing(api, body, status, code):
    card = api.post("/v1/gift-cards", {"advocate_id": link(api)["advocate_id"],
                                       "amount": 1000}).get_json()
    response = api.post(f"/v1/gift-cards/{card['code']}/redeem", body)
    assert (response.status_code, response.get_json()["code"]) == (status, code)
    assert api.get(f"/v1/gift-cards/{card['code']}").get_json()["balance"] == 1000


def test_expired_card_cannot_be_redeemed(api, app):
    card = api.post("/v1/gift-cards", {"advocate_id": link(api)["advocate_id"],
                                       "amount": 1000}).get_json()
    with app.extensions["referflow"].db.session() as session:
        session.execute(update(GiftCard).where(GiftCard.id == card["id"]).values(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        session.commit()
    assert api.get(f"/v1/gift-cards/{card['code']}").get_json()["status"] == "expired"
    response = api.post(f"/v1/gift-cards/{card['code']}/redeem", {"amount": 1, "currency": "EUR"})
    assert response.status_code == 409 and response.get_json()["code"] == "gift_card_expired"


def test_another_programs_card_is_not_found(api, client):
    card = api.post("/v1/gift-cards", {"advocate_id": link(api)["advocate_id"],
                                       "amount": 1000}).get_json()
    other = make_program(client, name="Other")
    response = other.post(f"/v1/gift-cards/{card['code']}/redeem", {"amount": 1, "currency": "EUR"})
    assert response.status_code == 404
    assert other.get(f"/v1/gift-cards/{card['code']}").status_code == 404
