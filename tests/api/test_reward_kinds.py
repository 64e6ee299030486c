"""Every reward kind reaches ``rewarded``: perks (sides and tiers), discount codes and coupons,
a free period on the Stripe subscription; each exactly once, each with its expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from referflow.actions import rewards as reward_actions
from referflow.actions import stats as stats_actions
from referflow.app import create_app
from referflow.jobs.runner import sweep
from referflow.storage.models import OutboxEvent, Referral, ReferralHistory, Reward
from tests.api.test_friend_offers import events, run_jobs
from tests.conftest import ADMIN_TOKEN, PROGRAM_CONFIG, make_program
from tests.fakes.shopify import SHOP, TOKEN, FakeShopify
from tests.fakes.stripe import API_KEY, FakeStripe
from tests.helpers import claim, link, qualify

VIP = {"type": "non_cash", "perk": "VIP support for a year"}
SHIPPING = {"type": "non_cash", "perk": "Free shipping on the first order"}


@pytest.fixture()
def stripe():
    with FakeStripe() as fake:
        yield fake


@pytest.fixture()
def shopify():
    with FakeShopify() as fake:
        yield fake


@pytest.fixture()
def app(settings, stripe, shopify):
    application = create_app(settings.with_overrides(stripe_api_base=stripe.base,
                                                     shopify_api_base=shopify.base))
    yield application
    application.extensions["referflow"].db.dispose()


def program(app, advocate: dict[str, Any], friend: dict[str, Any] | None = None, **config: Any):
    api = make_program(app.test_client(), {
        **PROGRAM_CONFIG, "hold_days": 0, **config,
        "rewards": {"advocate": advocate, "friend": friend or {"type": "none"}}})
    api.put("/v1/providers/stripe", {"credentials": {"api_key": API_KEY}})
    api.put("/v1/providers/shopify", {"credentials": {"shop": SHOP, "access_token": TOKEN}})
    return api


def approve(api, advocate: str = "cus_AdvocateAnn", friend: str = "cus_FriendBob") -> dict[str, Any]:
    code = link(api, external_id=advocate)["code"]
    referral = claim(api, code, friend_id=friend)
    return qualify(api, referral["id"])


def status(api, referral_id: str) -> str:
    return api.get(f"/v1/referrals/{referral_id}").get_json()["status"]


def reward_rows(app) -> list[Reward]:
    with app.extensions["referflow"].db.session() as s:
        return list(s.scalars(select(Reward).order_by(Reward.side, Reward.created_at)))


def make_pending(app) -> None:
    """As if the issuer's answer had been lost: the reward is due again."""
    with app.extensions["referflow"].db.session() as s:
        s.execute(update(Reward).where(Reward.kind != "non_cash").values(
            status="pending", next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
        s.commit()


# -- perks ----------------------------------------------------------------------------------------

def test_non_cash_perks_are_fulfilled_and_the_referral_is_rewarded(app):
    api = program(app, VIP, SHIPPING)
    approved = approve(api)
    assert approved["status"] == "rewarded"  # nothing to wait for: announcing a perk fulfils it
    rows = reward_rows(app)
    assert [(r.side, r.kind, r.issuer, r.status, r.details) for r in rows] == [
        ("advocate", "non_cash", "perk", "issued", {"perk": VIP["perk"]}),
        ("friend", "non_cash", "perk", "issued", {"perk": SHIPPING["perk"]})]
    issued = events(app, "reward.issued")
    schemas = app.extensions["referflow"].schemas
    for event in issued:
        schemas.validate("event.reward.issued", event)
    assert [(e["data"]["perk"], e["data"]["recipient"]["side"], e["data"]["recipient"]["external_id"])
            for e in issued] == [(VIP["perk"], "advocate", "cus_AdvocateAnn"),
                                 (SHIPPING["perk"], "friend", "cus_FriendBob")]
    (rewarded,) = events(app, "referral.rewarded")
    history = api.get(f"/v1/referrals/{approved['id']}").get_json()["history"]
    assert [h["action"] for h in history][-2:] == ["qualified", "rewarded"]
    assert rewarded["data"]["referral"]["status"] == "rewarded"


def test_a_perk_beside_a_manual_gift_card_waits_for_the_card(app):
    api = program(app, {"type": "gift_card", "amount": 2500}, SHIPPING)
    approved = approve(api)
    assert approved["status"] == "approved"
    assert [(r.side, r.status) for r in reward_rows(app)] == [("friend", "issued")]
    card = api.post("/v1/gift-cards", {"referral_id": approved["id"]})
    assert card.status_code == 201, card.get_json()
    assert [c["side"] for c in card.get_json()["cards"]] == ["advocate"]
    assert status(api, approved["id"]) == "rewarded"


def test_a_referral_that_earns_nothing_stays_approved(app):
    api = program(app, {"type": "none"})
    assert approve(api)["status"] == "approved" and reward_rows(app) == []


def test_perk_referrals_approved_before_fulfilment_are_rewarded_by_the_sweep(app):
    api = program(app, VIP, {"type": "none"})
    other = approve(api, friend="cus_FriendCid")
    none = program(app, {"type": "none"})  # earns nothing: the sweep leaves it approved
    nothing = approve(none, advocate="cus_AdvocateDee", friend="cus_FriendEve")
    services = app.extensions["referflow"]
    with services.db.session() as s:  # as it was before perks were fulfilled: approved, no rows
        s.execute(Reward.__table__.delete())
        s.execute(OutboxEvent.__table__.delete())
        s.execute(ReferralHistory.__table__.delete().where(ReferralHistory.action == "rewarded"))
        s.execute(update(Referral).where(Referral.id == other["id"]).values(status="approved"))
        s.commit()
    assert status(api, other["id"]) == "approved"
    assert sweep(services) == 1
    assert status(api, other["id"]) == "rewarded" and status(none, nothing["id"]) == "approved"
    assert [(r.side, r.kind, r.status, r.details) for r in reward_rows(app)] == [
        ("advocate", "non_cash", "issued", {"perk": VIP["perk"]})]
    (issued,) = events(app, "reward.issued")
    assert issued["data"]["recipient"]["external_id"] == "cus_AdvocateAnn"
    assert len(events(app, "referral.rewarded")) == 1
    assert sweep(services) == 0 and len(reward_rows(app)) == 1  # once


def test_a_tiers_perks_are_granted_once_when_it_is_reached(app):
    api = program(app, {"type": "gift_card", "amount": 1000}, tiers=[
        {"name": "silver", "min_approved": 1, "perks": ["Early access", "Swag box"]},
        {"name": "gold", "min_approved": 3, "perks": []}])
    code = link(api, external_id="cus_AdvocateAnn")["code"]
    for friend in ("cus_F1", "cus_F2"):
        qualify(api, claim(api, code, friend_id=friend)["id"])
    tier_rows = [r for r in reward_rows(app) if r.side == "tier"]
    assert [(r.referral_id, r.kind, r.details) for r in tier_rows] == [
        (None, "non_cash", {"tier": "silver", "perks": ["Early access", "Swag box"]})]
    (issued,) = [e for e in events(app, "reward.issued") if e["data"].get("tier")]
    app.extensions["referflow"].schemas.validate("event.reward.issued", issued)
    assert issued["data"]["perks"] == ["Early access", "Swag box"]
    assert issued["data"]["recipient"]["external_id"] == "cus_AdvocateAnn"
    assert tier_rows[0].advocate_id == api.get("/v1/advocates/by-external-id/cus_AdvocateAnn") \
        .get_json()["id"]


# -- discounts ------------------------------------------------------------------------------------

def test_a_percent_reward_is_a_single_use_shopify_code_with_its_expiry(app, shopify):
    api = program(app, {"type": "percent", "percent": 10, "provider": "shopify",
                        "expiry_days": 60})
    approved = approve(api)
    assert approved["status"] == "approved"
    run_jobs(app)
    (row,) = reward_rows(app)
    (discount,) = shopify.discounts.values()
    sent = discount["input"]
    assert (sent["code"], sent["usageLimit"]) == (row.code, 1)
    assert sent["customerGets"]["value"] == {"percentage": 0.1}
    ends = datetime.fromisoformat(sent["endsAt"].replace("Z", "+00:00"))
    assert ends == row.expires_at and timedelta(days=59) < ends - datetime.now(UTC) <= timedelta(days=60)
    assert (row.status, row.external_id) == ("issued", discount["id"])
    assert status(api, approved["id"]) == "rewarded"
    (issued,) = events(app, "reward.issued")
    app.extensions["referflow"].schemas.validate("event.reward.issued", issued)
    stored = issued["data"]["reward"]  # the code's tail only: sent with the code (test_discount_codes_at_rest)
    assert stored["kind"] == "percent" and "code" not in stored and stored["code_last4"] == row.code[-4:]
    make_pending(app)  # the answer was lost: the lookup finds the code, nothing is made twice
    run_jobs(app)
    assert len(shopify.discounts) == 1 and reward_rows(app)[0].external_id == discount["id"]


def test_an_amount_reward_is_a_single_use_stripe_promotion_code(app, stripe):
    api = program(app, {"type": "amount", "amount": 1500, "provider": "stripe"},
                  {"type": "percent", "percent": 25, "provider": "stripe", "expiry_days": 14})
    approved = approve(api)
    run_jobs(app)
    rows = {r.side: r for r in reward_rows(app)}
    advocate = stripe.promotion_codes[rows["advocate"].external_id]
    assert (advocate["coupon"]["amount_off"], advocate["coupon"]["currency"]) == (1500, "eur")
    assert advocate["max_redemptions"] == 1 and advocate["coupon"]["max_redemptions"] == 1
    assert advocate["code"] == rows["advocate"].code
    assert advocate["expires_at"] == int(rows["advocate"].expires_at.timestamp())
    friend = stripe.promotion_codes[rows["friend"].external_id]
    assert friend["coupon"]["percent_off"] == 25
    assert friend["expires_at"] == int(rows["friend"].expires_at.timestamp())
    assert status(api, approved["id"]) == "rewarded"


def test_a_free_period_is_applied_to_the_subscription_once(app, stripe):
    stripe.coupons["LOYAL5"] = {"id": "LOYAL5", "object": "coupon", "percent_off": 5.0}
    loyal = stripe.discount_on("LOYAL5")
    stripe.subscriptions["sub_AnnPro"] = {"id": "sub_AnnPro", "object": "subscription",
                                          "customer": "cus_AdvocateAnn", "status": "active",
                                          "discounts": [loyal]}
    api = program(app, {"type": "free_period", "provider": "stripe", "expiry_days": 90})
    approved = approve(api)
    run_jobs(app)
    (row,) = reward_rows(app)
    discounts = stripe.subscriptions["sub_AnnPro"]["discounts"]
    assert [d["id"] for d in discounts][0] == loyal["id"]  # the customer's own discount stays
    assert [(d["coupon"]["percent_off"], d["coupon"]["duration"]) for d in discounts[1:]] == [
        (100, "once")]
    assert discounts[1]["coupon"]["redeem_by"] == int(row.expires_at.timestamp())
    assert (row.status, row.external_id) == ("issued", "sub_AnnPro")
    assert row.details["coupon"] == discounts[1]["coupon"]["id"]
    assert status(api, approved["id"]) == "rewarded"
    make_pending(app)  # as if the answer had been lost after Stripe applied it
    run_jobs(app)
    assert len(stripe.subscriptions["sub_AnnPro"]["discounts"]) == 2
    updates = [c for c in stripe.calls if c["path"] == "/v1/subscriptions/sub_AnnPro"]
    assert len(updates) == 1 and updates[0]["headers"]["Idempotency-Key"] == f"{row.id}-apply"


def test_a_free_period_without_a_subscription_fails_with_the_reason(app, stripe):
    api = program(app, {"type": "free_period", "provider": "stripe"})
    approved = approve(api)
    run_jobs(app)
    (row,) = reward_rows(app)
    assert row.status == "failed" and "has no active subscription" in row.last_error
    (failed,) = events(app, "reward.failed")
    assert "has no active subscription" in failed["data"]["reason"]
    assert status(api, approved["id"]) == "approved"


def test_a_crash_after_the_store_made_a_discount_reward_makes_it_once(app, shopify, monkeypatch):
    api = program(app, {"type": "amount", "amount": 500, "provider": "shopify"})
    approve(api)
    services = app.extensions["referflow"]
    (row,) = reward_rows(app)

    def crash(*args, **kwargs):
        raise RuntimeError("the worker died before it committed")

    with monkeypatch.context() as patched:
        patched.setattr(reward_actions, "_issued", crash)
        with services.db.session() as s, pytest.raises(RuntimeError):
            reward_actions.issue_reward(s, services, row.id)
    with services.db.session() as s:  # the lease ran out
        s.execute(update(Reward).values(lease_until=datetime.now(UTC) - timedelta(seconds=1)))
        s.commit()
    run_jobs(app)
    assert len(shopify.discounts) == 1 and reward_rows(app)[0].status == "issued"
    creates = sum(b"discountCodeBasicCreate" in c["body"] for c in shopify.calls)
    assert creates == 1
    sent = next(iter(shopify.discounts.values()))["input"]
    assert sent["customerGets"]["value"] == {"discountAmount": {"amount": "5.00",
                                                                "appliesOnEachItem": False}}


@pytest.mark.parametrize("reward, message", [
    ({"type": "percent", "provider": "stripe"}, "percentage from 1 to 100"),
    ({"type": "percent", "percent": 10}, "needs a provider"),
    ({"type": "amount", "provider": "shopify"}, "amount in minor units"),
    ({"type": "free_period", "provider": "shopify"}, "free_period is a Stripe"),
])
def test_a_discount_reward_the_store_cannot_make_is_refused_at_configuration(app, reward, message):
    response = app.test_client().post(
        "/v1/admin/programs", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        json={"name": "x", "config": {**PROGRAM_CONFIG, "rewards": {"advocate": reward}}})
    assert response.status_code == 422 and message in response.get_json()["message"]


# -- reversal takes discount rewards back -----------------------------------------------------------

def reverse(api, referral_id: str) -> None:
    response = api.post(f"/v1/referrals/{referral_id}/reverse", {"reason": "chargeback"})
    assert response.status_code == 200 and response.get_json()["status"] == "reversed"


def voided_history(api, referral_id: str) -> list[dict[str, Any]]:
    history = api.get(f"/v1/referrals/{referral_id}").get_json()["history"]
    return [h for h in history if h["action"] == "reward_voided"]


def test_an_unused_shopify_code_is_switched_off_once_after_a_reversal(app, shopify):
    api = program(app, {"type": "percent", "percent": 10, "provider": "shopify"})
    approved = approve(api)
    run_jobs(app)
    (discount,) = shopify.discounts.values()
    reverse(api, approved["id"])
    assert reward_rows(app)[0].status == "pending"  # queued: the store is asked in the background
    run_jobs(app)
    (row,) = reward_rows(app)
    assert row.status == "voided" and discount["status"] == "EXPIRED"
    assert row.details["void"]["outcome"] == "disabled"
    (voided,) = events(app, "reward.voided")
    app.extensions["referflow"].schemas.validate("event.reward.voided", voided)
    assert (voided["data"]["outcome"], voided["data"]["loss_amount"]) == ("disabled", 0)
    assert voided["data"]["recipient"]["external_id"] == "cus_AdvocateAnn"
    (entry,) = voided_history(api, approved["id"])
    assert entry["data"]["outcome"] == "disabled"
    make_pending(app)  # nothing is switched off twice
    run_jobs(app)
    assert sum(b"discountCodeDeactivate" in c["body"] for c in shopify.calls) == 1
    assert len(events(app, "reward.voided")) == 1


def test_a_used_stripe_code_is_recorded_as_the_loss_and_left_alone(app, stripe):
    api = program(app, {"type": "amount", "amount": 1500, "provider": "stripe"},
                  {"type": "percent", "percent": 20, "provider": "stripe"})
    approved = approve(api)
    run_jobs(app)
    rows = {r.side: r for r in reward_rows(app)}
    stripe.promotion_codes[rows["advocate"].external_id]["times_redeemed"] = 1  # used
    reverse(api, approved["id"])
    run_jobs(app)
    rows = {r.side: r for r in reward_rows(app)}
    advocate, friend = (stripe.promotion_codes[rows[s].external_id] for s in ("advocate", "friend"))
    assert advocate["active"] is True and friend["active"] is False
    assert [rows[s].status for s in ("advocate", "friend")] == ["voided", "voided"]
    by_side = {e["data"]["reward"]["side"]: e["data"] for e in events(app, "reward.voided")}
    assert (by_side["advocate"]["outcome"], by_side["advocate"]["loss_amount"]) == ("used", 1500)
    assert (by_side["friend"]["outcome"], by_side["friend"]["loss_amount"],
            by_side["friend"]["loss_known"]) == ("disabled", 0, True)
    offs = [c for c in stripe.calls if c["path"].startswith("/v1/promotion_codes/")
            and c["method"] == "POST"]
    assert len(offs) == 1 and offs[0]["headers"]["Idempotency-Key"] == f"{rows['friend'].id}-off"
    # the used code is part of the loss after reversal, live and after a rebuild
    stats = api.get("/v1/stats").get_json()["totals"]["rewards"]
    assert stats["EUR"]["loss_after_reversal"] == 1500, stats
    with app.extensions["referflow"].db.session() as session:
        stats_actions.rebuild(session)
        session.commit()
    assert api.get("/v1/stats").get_json()["totals"]["rewards"] == stats


def test_an_applied_free_period_is_the_loss_and_the_subscription_is_not_touched(app, stripe):
    stripe.subscriptions["sub_AnnPro"] = {"id": "sub_AnnPro", "object": "subscription",
                                          "customer": "cus_AdvocateAnn", "status": "active",
                                          "discounts": []}
    api = program(app, {"type": "free_period", "provider": "stripe"})
    approved = approve(api)
    run_jobs(app)
    calls = len(stripe.calls)
    reverse(api, approved["id"])
    (row,) = reward_rows(app)
    assert row.status == "voided" and row.details["void"]["outcome"] == "used"
    run_jobs(app)
    assert len(stripe.calls) == calls and len(stripe.subscriptions["sub_AnnPro"]["discounts"]) == 1
    (voided,) = events(app, "reward.voided")
    assert voided["data"]["loss_known"] is False


def test_a_discount_reward_never_sent_is_voided_at_once(app, shopify):
    api = program(app, {"type": "amount", "amount": 500, "provider": "shopify"})
    approved = approve(api)
    reverse(api, approved["id"])  # before any job ran
    (row,) = reward_rows(app)
    assert row.status == "voided" and row.details["void"]["outcome"] == "not_issued"
    run_jobs(app)
    assert shopify.discounts == {} and reward_rows(app)[0].status == "voided"


def test_a_reward_issued_while_its_referral_is_reversed_is_taken_back(app, shopify):
    api = program(app, {"type": "percent", "percent": 10, "provider": "shopify"})
    approved = approve(api)
    services = app.extensions["referflow"]
    (row,) = reward_rows(app)
    with services.db.session() as s:  # a worker holds it (issuing) when the reversal comes
        s.execute(update(Reward).values(status="issuing",
                                        lease_until=datetime.now(UTC) + timedelta(minutes=5)))
        s.commit()
    reverse(api, approved["id"])
    assert reward_rows(app)[0].status == "issuing"
    with services.db.session() as s:  # the worker finishes: it sees the reversal
        s.execute(update(Reward).values(status="pending", lease_until=None,
                                        next_attempt_at=datetime.now(UTC)))
        s.commit()
    run_jobs(app)  # issues, then (queued by the issuer) ...
    run_jobs(app)  # ... takes it back
    (row,) = reward_rows(app)
    (discount,) = shopify.discounts.values()
    assert row.status == "voided" and discount["status"] == "EXPIRED"
    assert status(api, approved["id"]) == "reversed"
