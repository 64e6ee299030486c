"""The friend's offer: a discount in the store per referral code, made once, switched off on
deactivation, refused visibly, retried on outages; checkouts that used it claim the referral."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from referflow.actions import offers
from referflow.actions.events import public_payload
from referflow.app import create_app
from referflow.jobs.runner import tick
from referflow.storage.models import InboundEvent, OutboxEvent, StoreDiscount
from tests.api.test_ingress import (
    FIXTURES,
    SHOPIFY_SECRET,
    STRIPE_SECRET,
    fixture,
    send,
    shopify_headers,
    stripe_headers,
)
from tests.conftest import ADMIN_TOKEN, PROGRAM_CONFIG, make_program
from tests.fakes.shopify import SHOP, TOKEN, FakeShopify
from tests.fakes.stripe import API_KEY, FakeStripe
from tests.helpers import link

SHOPIFY_OFFER = {"type": "percent", "value": 15, "provider": "shopify", "minimum_order": 5000,
                 "expiry_days": 30}
STRIPE_OFFER = {"type": "percent", "value": 20, "provider": "stripe", "minimum_order": 2000}
OFFERS = {"shopify": SHOPIFY_OFFER, "stripe": STRIPE_OFFER}
BOB_SHOPIFY = "706405506930370084"  # the fixtures' Shopify customer


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


def program(app, offer: dict[str, Any] | None, credentials: bool = True, **config: Any):
    api = make_program(app.test_client(), {**PROGRAM_CONFIG, "friend_offer": offer, **config})
    api.put("/v1/providers/stripe", {"webhook_secrets": [STRIPE_SECRET],
                                     **({"credentials": {"api_key": API_KEY}} if credentials else {})})
    api.put("/v1/providers/shopify", {"webhook_secrets": [SHOPIFY_SECRET], **(
        {"credentials": {"shop": SHOP, "access_token": TOKEN}} if credentials else {})})
    api.app = app
    return api


def run_jobs(app) -> None:
    services = app.extensions["referflow"]
    tick(services, services.queue)


def rows(app) -> list[StoreDiscount]:
    with app.extensions["referflow"].db.session() as s:
        return list(s.scalars(select(StoreDiscount).order_by(StoreDiscount.created_at)))


def make_due(app) -> None:
    """As if the backoff had passed (or, with a lease, as if its worker had died)."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    with app.extensions["referflow"].db.session() as s:
        s.execute(update(StoreDiscount).values(next_attempt_at=past, lease_until=past))
        s.commit()


def events(app, kind: str) -> list[dict[str, Any]]:
    with app.extensions["referflow"].db.session() as s:
        return [public_payload(e.payload) for e in s.scalars(
            select(OutboxEvent).where(OutboxEvent.type == kind).order_by(OutboxEvent.id))]


def offer_of(api, advocate_id: str, code: str) -> dict[str, Any] | None:
    found = api.get(f"/v1/advocates/{advocate_id}").get_json()
    return next(c["friend_offer"] for c in found["codes"] if c["code"] == code)


def creates(fake) -> int:
    """How many times the store was asked to create something."""
    if isinstance(fake, FakeShopify):
        return sum(b"discountCodeBasicCreate" in c["body"] for c in fake.calls)
    return sum(c["method"] == "POST" and c["path"] == "/v1/promotion_codes" for c in fake.calls)


# -- made once ----------------------------------------------------------------------------------

def test_a_link_gets_its_shopify_discount_once(app, shopify):
    api = program(app, SHOPIFY_OFFER)
    made = link(api, external_id="adv-ann")
    assert made["friend_offer"] == {"status": "pending", "reason": None, "provider": "shopify",
                                    "code": made["code"]}
    run_jobs(app)
    (discount,) = shopify.discounts.values()
    sent = discount["input"]
    assert sent["code"] == made["code"] and sent["appliesOncePerCustomer"] is True
    assert sent["customerGets"] == {"value": {"percentage": 0.15}, "items": {"all": True}}
    assert sent["minimumRequirement"] == {"subtotal": {"greaterThanOrEqualToSubtotal": "50.00"}}
    assert sent["customerSelection"] == {"all": True} and "usageLimit" not in sent
    ends = datetime.fromisoformat(sent["endsAt"].replace("Z", "+00:00"))
    assert timedelta(days=29) < ends - datetime.now(UTC) <= timedelta(days=30)
    assert offer_of(api, made["advocate_id"], made["code"])["status"] == "active"
    again = link(api, external_id="adv-ann")  # createLink is idempotent, so is its offer
    assert again["friend_offer"]["status"] == "active"
    run_jobs(app)
    assert creates(shopify) == 1 and len(rows(app)) == 1


def test_a_link_gets_a_stripe_coupon_and_first_time_promotion_code(app, stripe):
    api = program(app, STRIPE_OFFER)
    made = link(api, external_id="adv-ann")
    run_jobs(app)
    (promo,) = stripe.promotion_codes.values()
    (row,) = rows(app)
    assert promo["code"] == made["code"] and promo["id"] == row.external_id
    assert promo["restrictions"] == {"first_time_transaction": True, "minimum_amount": 2000,
                                     "minimum_amount_currency": "eur"}
    assert promo["max_redemptions"] is None and promo["expires_at"] is None
    assert promo["coupon"]["percent_off"] == 20 and promo["coupon"]["duration"] == "once"
    assert promo["coupon"]["id"] == row.coupon_id == f"referflow_{row.id}"
    keys = [c["headers"].get("Idempotency-Key") for c in stripe.calls]
    assert keys == [f"{row.id}-coupon", f"{row.id}-promo"]
    assert all(c["headers"]["Stripe-Version"] == "2025-04-30.basil" for c in stripe.calls)
    assert offer_of(api, made["advocate_id"], made["code"]) == {
        "status": "active", "reason": None, "provider": "stripe", "code": made["code"]}


def test_amount_and_free_period_offers_on_stripe(app, stripe):
    api = program(app, {"type": "amount", "value": 1000, "provider": "stripe", "expiry_days": 10})
    link(api, external_id="adv-ann")
    free = program(app, {"type": "free_period", "provider": "stripe"})
    link(free, external_id="adv-bea")
    run_jobs(app)
    coupons = sorted(stripe.coupons.values(), key=lambda c: c["percent_off"] or 0)
    assert (coupons[0]["amount_off"], coupons[0]["currency"]) == (1000, "eur")
    assert coupons[0]["redeem_by"] is not None
    assert (coupons[1]["percent_off"], coupons[1]["duration"]) == (100, "once")


def test_a_program_without_an_offer_makes_nothing(app, shopify, stripe):
    api = program(app, None)
    assert link(api)["friend_offer"] is None
    run_jobs(app)
    assert rows(app) == [] and shopify.calls == [] and stripe.calls == []


def test_a_free_period_offer_on_shopify_is_refused_at_configuration(app):
    admin_client = app.test_client()
    response = admin_client.post("/v1/admin/programs", json={"name": "x", "config": {
        **PROGRAM_CONFIG, "friend_offer": {"type": "free_period", "provider": "shopify"}}},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 422
    assert "free_period" in response.get_json()["message"]


@pytest.mark.parametrize("provider", ["shopify", "stripe"])
def test_a_crash_between_the_store_call_and_the_commit_makes_one_discount(
        app, provider, shopify, stripe, monkeypatch):
    api = program(app, OFFERS[provider])
    made = link(api, external_id="adv-ann")
    fake = {"shopify": shopify, "stripe": stripe}[provider]
    (row,) = rows(app)
    services = app.extensions["referflow"]

    def crash(*args, **kwargs):
        raise RuntimeError("the worker died before it committed")

    with monkeypatch.context() as patched:
        patched.setattr(offers, "_settle", crash)
        with services.db.session() as s, pytest.raises(RuntimeError):
            offers.sync_offer(s, services, row.id)
    assert creates(fake) == 1
    assert rows(app)[0].status == "creating"  # leased: nobody else takes it until the lease ends
    run_jobs(app)
    assert creates(fake) == 1
    make_due(app)  # the lease ran out
    run_jobs(app)
    (row,) = rows(app)
    assert row.status == "active" and row.attempts == 1
    assert len(fake.discounts if provider == "shopify" else fake.promotion_codes) == 1
    if provider == "stripe":  # the same idempotency keys, answered from Stripe's store
        replayed = [c for c in stripe.calls if c["method"] == "POST"][-2:]
        assert [c["headers"]["Idempotency-Key"] for c in replayed] == [f"{row.id}-coupon",
                                                                      f"{row.id}-promo"]
    assert offer_of(api, made["advocate_id"], made["code"])["status"] == "active"


def test_a_stripe_retry_after_the_idempotency_keys_expired_adopts_what_it_made(app, stripe):
    api = program(app, STRIPE_OFFER)
    link(api, external_id="adv-ann")
    run_jobs(app)
    stripe.idempotent.clear()  # a day later: Stripe forgot the keys
    with app.extensions["referflow"].db.session() as s:
        s.execute(update(StoreDiscount).values(status="pending", external_id=None))
        s.commit()
    make_due(app)
    run_jobs(app)
    (row,) = rows(app)
    assert row.status == "active" and len(stripe.coupons) == 1 and len(stripe.promotion_codes) == 1
    assert row.external_id == next(iter(stripe.promotion_codes))


# -- refused, retried -----------------------------------------------------------------------------

REFUSALS = {
    "shopify-user-errors": ("shopify", None, "INVALID: Code is invalid"),
    "stripe-invalid-code": ("stripe", "SPRING-FRIENDS", "invalid_request_error/parameter_invalid_string"),
    "stripe-card-error": ("stripe", None, "card_error/card_declined: Your card was declined."),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_a_refusal_is_shown_on_the_link_and_announced(app, shopify, stripe, case):
    provider, vanity, reason = REFUSALS[case]
    api = program(app, OFFERS[provider])
    if case == "shopify-user-errors":
        shopify.refuse_discounts = [[{"field": ["basicCodeDiscount", "code"], "code": "INVALID",
                                      "message": "Code is invalid"}]]
    if case == "stripe-card-error":
        stripe.fail_next = [(402, {"error": {"type": "card_error", "code": "card_declined",
                                             "message": "Your card was declined."}}, {})]
    made = link(api, external_id="adv-ann", **({"vanity_code": vanity} if vanity else {}))
    run_jobs(app)
    shown = offer_of(api, made["advocate_id"], made["code"])
    assert shown["status"] == "failed" and reason in shown["reason"]
    assert link(api, external_id="adv-ann")["friend_offer"] == shown
    (failed,) = events(app, "friend_offer.failed")
    app.extensions["referflow"].schemas.validate("event.friend_offer.failed", failed)
    assert failed["data"]["friend_offer"] == shown and failed["data"]["action"] == "create"
    assert failed["data"]["advocate"] == {"id": made["advocate_id"], "external_id": "adv-ann"}
    calls = len(shopify.calls) + len(stripe.calls)
    make_due(app)
    run_jobs(app)  # a refusal is final: no second try
    assert len(shopify.calls) + len(stripe.calls) == calls


def test_an_outage_is_retried_on_the_backoff(app, stripe):
    api = program(app, STRIPE_OFFER)
    stripe.fail_next = [(503, {"error": {"type": "api_error", "message": "overloaded"}}, {})]
    made = link(api, external_id="adv-ann")
    before = datetime.now(UTC)
    run_jobs(app)
    (row,) = rows(app)
    assert row.status == "pending" and row.reason == "stripe: HTTP 503"
    assert timedelta(seconds=8) < row.next_attempt_at - before < timedelta(seconds=12)
    assert offer_of(api, made["advocate_id"], made["code"])["reason"] == "stripe: HTTP 503"
    stripe.fail_next = [(429, {"error": {"type": "rate_limit_error", "message": "slow"}},
                         {"Retry-After": "40"})]
    make_due(app)
    run_jobs(app)
    (row,) = rows(app)
    assert timedelta(seconds=35) < row.next_attempt_at - datetime.now(UTC) < timedelta(seconds=45)
    make_due(app)
    run_jobs(app)
    assert rows(app)[0].status == "active" and events(app, "friend_offer.failed") == []


def test_a_shopify_throttle_is_an_outage(app, shopify, monkeypatch):
    api = program(app, SHOPIFY_OFFER)
    link(api, external_id="adv-ann")
    answer = shopify.handle
    monkeypatch.setattr(shopify, "handle", lambda *a: (200, {}, {"errors": [
        {"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}))
    run_jobs(app)
    assert (rows(app)[0].status, rows(app)[0].reason) == ("pending", "shopify: throttled")
    monkeypatch.setattr(shopify, "handle", answer)
    make_due(app)
    run_jobs(app)
    assert rows(app)[0].status == "active"


def test_missing_credentials_are_waited_for(app, shopify):
    api = program(app, SHOPIFY_OFFER, credentials=False)
    made = link(api, external_id="adv-ann")
    run_jobs(app)
    shown = offer_of(api, made["advocate_id"], made["code"])
    assert shown["status"] == "pending"
    assert shown["reason"] == "shopify: configure credentials shop, access_token"
    api.put("/v1/providers/shopify", {"credentials": {"shop": SHOP, "access_token": TOKEN}})
    make_due(app)
    run_jobs(app)
    assert offer_of(api, made["advocate_id"], made["code"])["status"] == "active"


# -- switched off ----------------------------------------------------------------------------------

@pytest.mark.parametrize("provider", ["shopify", "stripe"])
def test_deactivating_a_code_disables_its_discount(app, provider, shopify, stripe):
    api = program(app, OFFERS[provider])
    made = link(api, external_id="adv-ann")
    run_jobs(app)
    assert api.post(f"/v1/codes/{made['code']}/deactivate").status_code == 200
    assert offer_of(api, made["advocate_id"], made["code"])["status"] == "pending"
    run_jobs(app)
    assert offer_of(api, made["advocate_id"], made["code"])["status"] == "disabled"
    if provider == "shopify":
        assert next(iter(shopify.discounts.values()))["status"] == "EXPIRED"
    else:
        (promo,) = stripe.promotion_codes.values()
        assert promo["active"] is False
        (off,) = [c for c in stripe.calls if c["path"] == f"/v1/promotion_codes/{promo['id']}"]
        assert off["headers"]["Idempotency-Key"] == f"{rows(app)[0].id}-off"
    calls = len(shopify.calls) + len(stripe.calls)
    api.post(f"/v1/codes/{made['code']}/deactivate")  # again: nothing more to do
    make_due(app)
    run_jobs(app)
    assert len(shopify.calls) + len(stripe.calls) == calls


def test_a_code_deactivated_before_its_discount_was_made_makes_none(app, shopify):
    api = program(app, SHOPIFY_OFFER)
    made = link(api, external_id="adv-ann")
    api.post(f"/v1/codes/{made['code']}/deactivate")
    run_jobs(app)
    assert offer_of(api, made["advocate_id"], made["code"])["status"] == "disabled"
    assert creates(shopify) == 0 and shopify.discounts == {}


def test_a_code_deactivated_while_its_discount_is_made_is_switched_off_after(app, shopify,
                                                                              monkeypatch):
    api = program(app, SHOPIFY_OFFER)
    made = link(api, external_id="adv-ann")
    store_create = offers.discounts.ShopifyDiscounts.create

    def create_then_deactivate(self, request):
        created = store_create(self, request)
        assert api.post(f"/v1/codes/{made['code']}/deactivate").status_code == 200
        return created

    monkeypatch.setattr(offers.discounts.ShopifyDiscounts, "create", create_then_deactivate)
    run_jobs(app)
    assert rows(app)[0].status == "pending"  # made, then queued to be switched off
    run_jobs(app)
    assert rows(app)[0].status == "disabled"
    assert next(iter(shopify.discounts.values()))["status"] == "EXPIRED"


# -- checkouts that used the code -----------------------------------------------------------------

def inbound(api) -> list[dict[str, Any]]:
    with api.app.extensions["referflow"].db.session() as s:
        return [{"type": e.type, "status": e.status, "outcome": e.outcome}
                for e in s.scalars(select(InboundEvent).order_by(InboundEvent.id))]


def referral_of(api, friend: str) -> dict[str, Any] | None:
    person = api.get(f"/v1/people/{friend}")
    found = person.get_json().get("referred_as_friend") if person.status_code == 200 else None
    return api.get(f"/v1/referrals/{found[0]['referral_id']}").get_json() if found else None


def shopify_order(api, order: dict[str, Any], event_id: str) -> None:
    send(api, "shopify", order, shopify_headers(order, "orders/paid", event_id))
    run_jobs(api.app)


def stripe_event(api, body: dict[str, Any]) -> None:
    assert send(api, "stripe", body, stripe_headers(body)).status_code == 200
    run_jobs(api.app)


def test_a_shopify_order_with_the_code_among_its_discount_codes_claims(app, shopify):
    api = program(app, SHOPIFY_OFFER)
    code = link(api, external_id="adv-ann")["code"]
    run_jobs(app)
    order = fixture("shopify_orders_paid.json", code)
    order["discount_codes"].insert(0, {"code": "WELCOME10", "amount": "5.00", "type": "fixed_amount"})
    shopify_order(api, order, "evt-offer-1")
    referral = referral_of(api, BOB_SHOPIFY)
    assert (referral["code"], referral["status"]) == (code, "held")
    assert referral["qualification"]["event_id"] == "order:820982911946154508"


def test_a_claim_with_a_checkouts_discount_codes_takes_the_referral_one(app, shopify):
    """What the Shopify workflow sends: every discount code of the order, the shop's own first."""
    api = program(app, SHOPIFY_OFFER)
    code = link(api, external_id="adv-ann")["code"]
    friend = {"external_id": BOB_SHOPIFY, "email": "bob@example.com"}
    nothing = api.post("/v1/referrals/claim", {"code": None, "codes": ["WELCOME5"], "friend": friend},
                       **{"Prefer": "outcome=explicit"})
    assert nothing.status_code == 200 and nothing.get_json()["outcome"] == "no_code"
    claimed = api.post("/v1/referrals/claim", {"code": None, "codes": ["WELCOME5", code.lower()],
                                               "friend": friend})
    assert claimed.status_code == 201, claimed.get_json()
    assert claimed.get_json()["code"] == code


def test_a_stripe_checkout_that_used_the_promotion_code_claims(app, stripe):
    """API 2024-06-20 checkout sessions name no discounts: the session is read again."""
    api = program(app, STRIPE_OFFER)
    code = link(api, external_id="cus_AdvocateAnn")["code"]
    run_jobs(app)
    (promo,) = stripe.promotion_codes.values()
    body = fixture("stripe_checkout_session_completed_promotion_code.json")
    session_id = body["data"]["object"]["id"]
    stripe.checkout_sessions[session_id] = {"id": session_id, "object": "checkout.session",
                                            "discounts": [{"coupon": promo["coupon"]["id"],
                                                           "promotion_code": promo["id"]}]}
    stripe_event(api, body)
    referral = referral_of(api, "cus_FriendBob")
    assert (referral["code"], referral["status"]) == (code, "pending")
    (read,) = [c for c in stripe.calls if c["method"] == "GET"]
    assert read["path"] == (f"/v1/checkout/sessions/{session_id}"
                            "?expand%5B%5D=discounts.promotion_code")


def test_a_stripe_checkout_naming_its_discounts_claims_without_a_call(app, stripe):
    api = program(app, STRIPE_OFFER)
    code = link(api, external_id="cus_AdvocateAnn")["code"]
    run_jobs(app)
    (promo,) = stripe.promotion_codes.values()
    body = fixture("stripe_checkout_session_completed_promotion_code.json")
    body["data"]["object"]["discounts"] = [{"coupon": promo["coupon"]["id"],
                                            "promotion_code": promo["id"]}]
    calls = len(stripe.calls)
    stripe_event(api, body)
    assert referral_of(api, "cus_FriendBob")["code"] == code and len(stripe.calls) == calls


def test_a_first_invoice_with_the_promotion_code_claims_and_qualifies(app, stripe):
    api = program(app, STRIPE_OFFER)
    code = link(api, external_id="cus_AdvocateAnn")["code"]
    run_jobs(app)
    (promo,) = stripe.promotion_codes.values()
    text = (FIXTURES / "stripe_invoice_paid_promotion_code.json").read_text()
    body = json.loads(text.replace("__PROMOTION_CODE__", promo["id"])
                      .replace("__COUPON__", promo["coupon"]["id"]))
    body["data"]["object"]["status_transitions"]["paid_at"] = int(datetime.now(UTC).timestamp())
    stripe_event(api, body)
    referral = referral_of(api, "cus_FriendBob")
    assert (referral["code"], referral["status"]) == (code, "held")
    assert referral["qualification"]["amount"] == 3920
    assert [c for c in stripe.calls if c["method"] == "GET"] == []


def test_a_basil_invoice_naming_only_discount_ids_is_read_again(app, stripe):
    api = program(app, STRIPE_OFFER)
    code = link(api, external_id="cus_AdvocateAnn")["code"]
    run_jobs(app)
    (promo,) = stripe.promotion_codes.values()
    body = fixture("stripe_invoice_paid_promotion_code.json")
    invoice = body["data"]["object"]
    invoice["discount"] = None  # basil: discounts are ids only
    invoice["status_transitions"]["paid_at"] = int(datetime.now(UTC).timestamp())
    stripe.invoices[invoice["id"]] = {"id": invoice["id"], "object": "invoice", "discounts": [
        stripe.discount_on(promo["coupon"]["id"], promo["id"])]}
    stripe_event(api, body)
    assert referral_of(api, "cus_FriendBob")["code"] == code
    (read,) = [c for c in stripe.calls if c["method"] == "GET"]
    assert read["path"].startswith(f"/v1/invoices/{invoice['id']}?expand")


def test_the_advocate_typing_their_own_code_is_a_self_referral(app, shopify):
    api = program(app, SHOPIFY_OFFER)
    code = link(api, external_id=BOB_SHOPIFY, email="bob@example.com")["code"]
    run_jobs(app)
    shopify_order(api, fixture("shopify_orders_paid.json", code), "evt-offer-self")
    referral = referral_of(api, BOB_SHOPIFY)
    assert referral["status"] == "rejected"
    assert referral["reasons"][0]["code"] == "self_referral"


def test_the_advocate_using_their_own_stripe_promotion_code_is_a_self_referral(app, stripe):
    api = program(app, STRIPE_OFFER)
    link(api, external_id="cus_FriendBob", email="bob@example.com")
    run_jobs(app)
    (promo,) = stripe.promotion_codes.values()
    body = fixture("stripe_checkout_session_completed_promotion_code.json")
    body["data"]["object"]["discounts"] = [{"coupon": promo["coupon"]["id"],
                                            "promotion_code": promo["id"]}]
    stripe_event(api, body)
    assert referral_of(api, "cus_FriendBob")["reasons"][0]["code"] == "self_referral"


def test_ordinary_shopify_orders_claim_nothing(app, shopify):
    api = program(app, SHOPIFY_OFFER)
    link(api, external_id="adv-ann")
    run_jobs(app)
    other = fixture("shopify_orders_paid.json", "WELCOME10")  # the shop's own discount code
    shopify_order(api, other, "evt-other-code")
    plain = fixture("shopify_orders_paid_no_code.json")
    plain["id"] = 820982911946150002
    shopify_order(api, plain, "evt-no-code")
    unknown = fixture("shopify_orders_paid.json", "NOSUCH99")
    unknown["id"] = 820982911946150003
    shopify_order(api, unknown, "evt-unknown-code")
    shopify_order(api, other, "evt-other-code")  # a replay
    assert referral_of(api, BOB_SHOPIFY) is None
    outcomes = [(e["status"], e["outcome"].get("ignored") or e["outcome"].get("waiting_for"))
                for e in inbound(api)]
    assert outcomes == [("ignored", "unknown_code"), ("waiting", f"a claim for customer {BOB_SHOPIFY}"),
                        ("ignored", "unknown_code")]
    assert creates(shopify) == 1  # only the advocate's own discount


def test_ordinary_stripe_checkouts_claim_nothing(app, stripe):
    api = program(app, STRIPE_OFFER)
    link(api, external_id="cus_AdvocateAnn")
    run_jobs(app)
    stripe.coupons["SUMMER"] = {"id": "SUMMER", "object": "coupon", "percent_off": 10.0}
    summer = {"id": "promo_summer", "object": "promotion_code", "code": "SUMMER24",
              "coupon": stripe.coupons["SUMMER"], "active": True}
    stripe.promotion_codes[summer["id"]] = summer
    body = fixture("stripe_checkout_session_completed_promotion_code.json")
    session_id = body["data"]["object"]["id"]
    stripe.checkout_sessions[session_id] = {"id": session_id, "discounts": [
        {"coupon": "SUMMER", "promotion_code": "promo_summer"}]}
    stripe_event(api, body)  # the shop's own promotion code
    plain = fixture("stripe_checkout_session_completed_no_referral.json")
    stripe_event(api, plain)  # no discount at all: Stripe is not asked
    stripe_event(api, plain)  # a replay
    assert referral_of(api, "cus_FriendBob") is None
    assert [c["path"].split("?")[0] for c in stripe.calls if c["method"] == "GET"] == [
        f"/v1/checkout/sessions/{session_id}"]
    assert [e["outcome"].get("ignored") for e in inbound(api)] == ["no_referral_code"] * 2


def test_a_discounted_checkout_without_a_stripe_key_claims_nothing(app, stripe):
    api = program(app, None, credentials=False)
    link(api, external_id="cus_AdvocateAnn")
    stripe_event(api, fixture("stripe_checkout_session_completed_promotion_code.json"))
    assert referral_of(api, "cus_FriendBob") is None and stripe.calls == []
    assert inbound(api)[0]["outcome"] == {"ignored": "no_referral_code"}
