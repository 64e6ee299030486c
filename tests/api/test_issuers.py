"""Reward issuers: ledger, Stripe promotion code, Stripe balance, Shopify gift card; exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from referflow.actions.events import public_payload
from referflow.app import create_app
from referflow.jobs.runner import tick
from referflow.storage.models import OutboxEvent, Reward
from tests.conftest import PROGRAM_CONFIG, make_program
from tests.fakes.shopify import SHOP, TOKEN, FakeShopify
from tests.fakes.stripe import API_KEY, FakeStripe
from tests.helpers import claim, link, qualify


@pytest.fixture()
def stripe():
    with FakeStripe() as fake:
        yield fake


@pytest.fixture()
def shopify():
    with FakeShopify() as fake:
        yield fake


@pytest.fixture()
def wired(settings, stripe, shopify):
    app = create_app(settings.with_overrides(stripe_api_base=stripe.base,
                                             shopify_api_base=shopify.base))
    yield app
    app.extensions["referflow"].db.dispose()


def _program(app, issuer):
    api = make_program(app.test_client(), {**PROGRAM_CONFIG, "hold_days": 0,
                                           "fulfilment": {"issuer": issuer, "auto_issue": True}})
    api.put("/v1/providers/stripe", {"credentials": {"api_key": API_KEY}})
    api.put("/v1/providers/shopify", {"credentials": {"shop": SHOP, "access_token": TOKEN}})
    return api


def _approve(api, advocate="cus_AdvocateAnn", friend="cus_FriendBob"):
    code = link(api, external_id=advocate)["code"]
    referral = claim(api, code, friend_id=friend)
    assert qualify(api, referral["id"])["status"] == "approved"
    return referral["id"]


def _tick(app):
    services = app.extensions["referflow"]
    tick(services, services.queue)


def _rewards(app, referral_id):
    with app.extensions["referflow"].db.session() as s:
        return list(s.scalars(select(Reward).where(Reward.referral_id == referral_id)
                              .order_by(Reward.side)))


def _events(app, kind):
    with app.extensions["referflow"].db.session() as s:
        return [public_payload(e.payload) for e in s.scalars(select(OutboxEvent).where(OutboxEvent.type == kind))]


def test_ledger_issuer_pays_both_sides_in_the_background(wired):
    api = _program(wired, "ledger")
    referral_id = _approve(api)
    _tick(wired)
    _tick(wired)
    rewards = _rewards(wired, referral_id)
    assert [(r.side, r.status, r.amount) for r in rewards] == [("advocate", "issued", 2500),
                                                                ("friend", "issued", 1000)]
    assert api.get(f"/v1/referrals/{referral_id}").get_json()["status"] == "rewarded"
    card = api.get(f"/v1/gift-cards/{rewards[0].code}").get_json()
    assert card["balance"] == 2500 and card["side"] == "advocate"


def test_stripe_promotion_code_issued_once_with_idempotency_keys(wired, stripe):
    api = _program(wired, "stripe_promotion_code")
    referral_id = _approve(api)
    _tick(wired)
    _tick(wired)
    rewards = _rewards(wired, referral_id)
    assert {r.status for r in rewards} == {"issued"}
    assert len(stripe.promotion_codes) == 2 and len(stripe.coupons) == 2
    promo = stripe.promotion_codes[rewards[0].external_id]
    assert promo["code"] == rewards[0].code
    assert promo["coupon"]["amount_off"] == 2500 and promo["coupon"]["currency"] == "eur"
    assert promo["max_redemptions"] == 1 and promo["expires_at"] > datetime.now(UTC).timestamp()
    keys = {c["headers"]["Idempotency-Key"] for c in stripe.calls}
    assert keys == {f"{r.id}-{step}" for r in rewards for step in ("coupon", "promo")}
    assert all(c["headers"]["Stripe-Version"] == "2025-04-30.basil" for c in stripe.calls)
    issued = _events(wired, "reward.issued")
    assert {e["data"]["reward"]["external_id"] for e in issued} == {r.external_id for r in rewards}
    schemas = wired.extensions["referflow"].schemas
    for event in issued:
        schemas.validate("event.reward.issued", event)
    assert api.get(f"/v1/referrals/{referral_id}").get_json()["status"] == "rewarded"


def test_a_retry_after_a_lost_response_reuses_the_key_and_creates_nothing_new(wired, stripe):
    api = _program(wired, "stripe_promotion_code")
    referral_id = _approve(api)
    # Stripe created the objects but the answers were lost (a 500 after the fact looks the same).
    _tick(wired)
    created = dict(stripe.promotion_codes)
    with wired.extensions["referflow"].db.session() as s:
        s.execute(update(Reward).values(status="pending", next_attempt_at=datetime.now(UTC),
                                        external_id=None))
        s.commit()
    _tick(wired)
    assert stripe.promotion_codes == created
    replayed = [c for c in stripe.calls[-4:]]
    assert all(c["headers"]["Idempotency-Key"] for c in replayed)
    assert {r.external_id for r in _rewards(wired, referral_id)} == set(created)


def test_stripe_balance_credit(wired, stripe):
    api = _program(wired, "stripe_balance")
    _approve(api)
    _tick(wired)
    amounts = sorted((t["customer"], t["amount"]) for t in stripe.balance_transactions)
    assert amounts == [("cus_AdvocateAnn", -2500), ("cus_FriendBob", -1000)]


def test_rejected_issue_is_reward_failed_with_the_providers_reason(wired, stripe):
    api = _program(wired, "stripe_balance")
    referral_id = _approve(api, advocate="cus_Unknown", friend="not-a-stripe-id")
    _tick(wired)
    rewards = _rewards(wired, referral_id)
    assert {r.status for r in rewards} == {"failed"}
    reasons = sorted(e["data"]["reason"] for e in _events(wired, "reward.failed"))
    assert "No such customer" in reasons[0] and "not a Stripe customer id" in reasons[1]
    assert api.get(f"/v1/referrals/{referral_id}").get_json()["status"] == "approved"


def test_provider_outage_is_retried_honouring_retry_after(wired, stripe):
    api = _program(wired, "stripe_promotion_code")
    stripe.fail_next = [(503, {"error": {"type": "api_error", "message": "overloaded"}}, {}),
                        (429, {"error": {"type": "rate_limit_error", "message": "slow down"}},
                         {"Retry-After": "30"})]
    referral_id = _approve(api)
    before = datetime.now(UTC)
    _tick(wired)
    rewards = _rewards(wired, referral_id)
    assert {r.status for r in rewards} == {"pending"}
    waits = sorted(r.next_attempt_at - before for r in rewards)
    assert timedelta(seconds=8) < waits[0] < timedelta(seconds=12)  # 10 s backoff
    assert timedelta(seconds=26) < waits[1] < timedelta(seconds=34)  # Retry-After: 30
    with wired.extensions["referflow"].db.session() as s:
        s.execute(update(Reward).values(next_attempt_at=datetime.now(UTC)))
        s.commit()
    _tick(wired)
    assert {r.status for r in _rewards(wired, referral_id)} == {"issued"}
    assert len(stripe.promotion_codes) == 2


def test_missing_credentials_fail_permanently(settings, stripe, shopify):
    app = create_app(settings.with_overrides(stripe_api_base=stripe.base))
    api = make_program(app.test_client(), {**PROGRAM_CONFIG, "hold_days": 0, "fulfilment": {
        "issuer": "stripe_promotion_code", "auto_issue": True}})
    referral_id = _approve(api)
    _tick(app)
    assert {r.last_error for r in _rewards(app, referral_id)} == {
        "stripe: configure credentials api_key"}
    app.extensions["referflow"].db.dispose()


def test_shopify_gift_card_with_expiry(wired, shopify):
    api = _program(wired, "shopify_gift_card")
    referral_id = _approve(api)
    _tick(wired)
    rewards = _rewards(wired, referral_id)
    assert {r.status for r in rewards} == {"issued"}
    cards = {c["id"]: c for c in shopify.cards.values()}
    advocate = cards[rewards[0].external_id]
    assert advocate["initialValue"]["amount"] == "25.00"
    assert advocate["expiresOn"] == (datetime.now(UTC) + timedelta(days=365)).date().isoformat()
    assert rewards[0].id in advocate["note"]


def test_shopify_card_created_before_a_crash_is_found_not_duplicated(wired, shopify):
    api = _program(wired, "shopify_gift_card")
    referral_id = _approve(api)
    _tick(wired)
    first = {r.side: r.external_id for r in _rewards(wired, referral_id)}
    with wired.extensions["referflow"].db.session() as s:  # as if the answer had been lost
        s.execute(update(Reward).values(status="pending", next_attempt_at=datetime.now(UTC)))
        s.commit()
    _tick(wired)
    assert len(shopify.cards) == 2
    assert {r.side: r.external_id for r in _rewards(wired, referral_id)} == first


def test_provider_config_secrets_are_write_only(api):
    response = api.put("/v1/providers/stripe", {"webhook_secrets": ["whsec_a", "whsec_b"],
                                                "credentials": {"api_key": "sk_live_secret"},
                                                "settings": {"mode": "test"}})
    body = response.get_json()
    assert body == {"provider": "stripe", "webhook_secrets": 2, "credentials": ["api_key"],
                    "settings": {"mode": "test"}, "updated_at": body["updated_at"]}
    assert "sk_live_secret" not in response.get_data(as_text=True)
    assert api.put("/v1/providers/paypal", {}).get_json()["code"] == "unknown_provider"
