"""Provider webhooks in: signed with the published algorithms, deduplicated, reordered, mapped."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from referflow.app import create_app
from referflow.jobs.runner import tick
from referflow.storage.models import Suppression
from tests.conftest import PROGRAM_CONFIG, make_program
from tests.fakes.hubspot import TOKEN as HUBSPOT_TOKEN
from tests.fakes.hubspot import FakeHubSpot
from tests.helpers import link

FIXTURES = Path(__file__).parents[1] / "fixtures"
STRIPE_SECRET, STRIPE_OLD = "whsec_live_rotated_new", "whsec_live_rotated_old"
SHOPIFY_SECRET, HUBSPOT_SECRET, KLAVIYO_SECRET = "shpss_secret", "hs-client-secret", "klaviyo-secret-0123"


def fixture(name, code=None):
    text = (FIXTURES / name).read_text()
    return json.loads(text.replace("__CODE__", code) if code else text)


def raw(body):
    return json.dumps(body).encode() if not isinstance(body, bytes) else body


def stripe_headers(body, secret=STRIPE_SECRET, t=None):
    t = int(time.time()) if t is None else t
    sig = hmac.new(secret.encode(), f"{t}.".encode() + raw(body), hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={t},v1={sig}"}


def shopify_headers(body, topic, event_id, secret=SHOPIFY_SECRET):
    sig = base64.b64encode(hmac.new(secret.encode(), raw(body), hashlib.sha256).digest()).decode()
    return {"X-Shopify-Hmac-Sha256": sig, "X-Shopify-Topic": topic, "X-Shopify-Event-Id": event_id,
            "X-Shopify-Shop-Domain": "referflow-test.myshopify.com", "X-Shopify-API-Version": "2025-01"}


def hubspot_headers(body, url, ts=None):
    ts = str(int(time.time() * 1000) if ts is None else ts)
    message = f"POST{url}".encode() + raw(body) + ts.encode()
    sig = base64.b64encode(hmac.new(HUBSPOT_SECRET.encode(), message, hashlib.sha256).digest())
    return {"X-HubSpot-Signature-v3": sig.decode(), "X-HubSpot-Request-Timestamp": ts}


def klaviyo_headers(body, webhook_id="01JWEBHOOK"):
    ts = str(int(time.time()))
    sig = hmac.new(KLAVIYO_SECRET.encode(), raw(body) + ts.encode(), hashlib.sha256).hexdigest()
    return {"Klaviyo-Signature": sig, "Klaviyo-Timestamp": ts, "Klaviyo-Webhook-Id": webhook_id}


@pytest.fixture()
def hubspot():
    with FakeHubSpot() as fake:
        yield fake


@pytest.fixture()
def shop(settings, hubspot):
    app = create_app(settings.with_overrides(hubspot_api_base=hubspot.base))
    client = app.test_client()
    api = make_program(client, {**PROGRAM_CONFIG, "hold_days": 14})
    api.put("/v1/providers/stripe", {"webhook_secrets": [STRIPE_OLD, STRIPE_SECRET]})
    api.put("/v1/providers/shopify", {"webhook_secrets": [SHOPIFY_SECRET]})
    api.put("/v1/providers/hubspot", {"webhook_secrets": [HUBSPOT_SECRET],
                                      "credentials": {"access_token": HUBSPOT_TOKEN}})
    api.put("/v1/providers/klaviyo", {"webhook_secrets": [KLAVIYO_SECRET]})
    api.app = app
    yield api
    app.extensions["referflow"].db.dispose()


def send(api, provider, body, headers, content_type="application/json"):
    return api.client.post(f"/v1/ingress/{api.program_id}/{provider}", data=raw(body),
                           content_type=content_type, headers=headers)


def stripe(api, body, **kw):
    response = send(api, "stripe", body, stripe_headers(body, **kw))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def run_jobs(api):
    services = api.app.extensions["referflow"]
    tick(services, services.queue)


def referral_of(api, friend):
    items = [i for i in api.get("/v1/inbound-events").get_json()["items"]
             if i["outcome"].get("referral_id")]
    ids = {i["outcome"]["referral_id"] for i in items}
    for rid in ids:
        got = api.get(f"/v1/referrals/{rid}").get_json()
        if got["friend"]["external_id"] == friend:
            return got
    return None


def test_stripe_journey_claim_qualify_refund_with_duplicates(shop):
    code = link(shop, external_id="cus_AdvocateAnn")["code"]
    created = fixture("stripe_customer_created.json", code)
    assert stripe(shop, created) == {"received": 1, "duplicates": 0}
    assert stripe(shop, created) == {"received": 1, "duplicates": 1}  # Stripe retried
    run_jobs(shop)
    referral = referral_of(shop, "cus_FriendBob")
    assert referral["status"] == "pending"
    paid = fixture("stripe_invoice_paid.json")
    paid["data"]["object"]["status_transitions"]["paid_at"] = int(time.time())
    stripe(shop, paid)
    stripe(shop, paid)
    run_jobs(shop)
    got = shop.get(f"/v1/referrals/{referral['id']}").get_json()
    assert got["status"] == "held" and got["qualification"]["amount"] == 4900
    assert got["qualification"]["event_id"] == "in_1QinvFirst0001"
    refunded = fixture("stripe_charge_refunded.json")
    refunded["created"] = int(time.time())
    stripe(shop, refunded)
    run_jobs(shop)
    got = shop.get(f"/v1/referrals/{referral['id']}").get_json()
    assert got["status"] == "reversed" and got["reasons"][-1]["code"] == "refunded_in_hold"
    actors = {h["actor"]["id"] for h in got["history"]}
    assert {"stripe:evt_1QcusCreated0001", "stripe:evt_1QinvoicePaid01",
            "stripe:evt_3QchargeRefunded"} <= actors


def test_qualify_before_claim_waits_and_applies_when_the_claim_arrives(shop):
    code = link(shop)["code"]
    paid = fixture("stripe_invoice_paid.json")
    paid["data"]["object"]["status_transitions"]["paid_at"] = int(time.time())
    stripe(shop, paid)
    run_jobs(shop)
    waiting = shop.get("/v1/inbound-events").get_json()["items"][0]
    assert waiting["status"] == "waiting" and "cus_FriendBob" in waiting["outcome"]["waiting_for"]
    stripe(shop, fixture("stripe_checkout_session_completed.json", code))
    run_jobs(shop)
    run_jobs(shop)
    assert referral_of(shop, "cus_FriendBob")["status"] == "held"


def test_refund_before_its_payment_waits_for_the_charge_then_reverses(shop):
    code = link(shop)["code"]
    stripe(shop, fixture("stripe_customer_created.json", code))
    refund = fixture("stripe_refund_created.json")
    refund["data"]["object"]["created"] = int(time.time())
    stripe(shop, refund)
    run_jobs(shop)
    statuses = {i["type"]: i["status"] for i in shop.get("/v1/inbound-events").get_json()["items"]}
    assert statuses["refund.created"] == "waiting"
    paid = fixture("stripe_invoice_paid.json")
    paid["data"]["object"]["status_transitions"]["paid_at"] = int(time.time())
    stripe(shop, paid)  # carries the charge id: the refund can now find its customer
    run_jobs(shop)
    run_jobs(shop)
    assert referral_of(shop, "cus_FriendBob")["status"] == "reversed"


def test_waiting_event_expires_after_the_grace(shop):
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from referflow.storage.models import InboundEvent

    paid = fixture("stripe_invoice_paid.json")
    stripe(shop, paid)
    run_jobs(shop)
    with shop.app.extensions["referflow"].db.session() as s:
        s.execute(update(InboundEvent).values(
            wait_until=datetime.now(UTC) - timedelta(seconds=1), next_attempt_at=datetime.now(UTC)))
        s.commit()
    run_jobs(shop)
    event = shop.get("/v1/inbound-events").get_json()["items"][0]
    assert event["status"] == "expired" and "expired" in event["outcome"]


def test_dispute_reverses_and_flags_the_advocate(shop):
    created = link(shop)
    stripe(shop, fixture("stripe_customer_created.json", created["code"]))
    stripe(shop, fixture("stripe_charge_succeeded.json"))
    stripe(shop, fixture("stripe_charge_dispute_created.json"))
    run_jobs(shop)
    run_jobs(shop)
    referral = referral_of(shop, "cus_FriendBob")
    assert referral["status"] == "reversed" and referral["reasons"][-1]["code"] == "chargeback"
    assert shop.get(f"/v1/advocates/{created['advocate_id']}").get_json()["flagged"] is True


def test_card_fingerprint_of_the_advocate_sends_the_referral_to_review(shop):
    code = link(shop, context={"payment_fingerprint": "Xt5EWLLDS7FJjR1c"})["code"]
    stripe(shop, fixture("stripe_customer_created.json", code))
    run_jobs(shop)
    stripe(shop, fixture("stripe_charge_succeeded.json"))
    run_jobs(shop)
    referral = referral_of(shop, "cus_FriendBob")
    assert referral["status"] == "in_review"
    assert referral["reasons"][-1]["code"] == "same_payment_method"


def test_stripe_journey_to_reward_with_no_other_calls(settings, hubspot):
    app = create_app(settings)
    api = make_program(app.test_client(), {**PROGRAM_CONFIG, "hold_days": 0,
                                           "fulfilment": {"issuer": "ledger", "auto_issue": True}})
    api.app = app
    api.put("/v1/providers/stripe", {"webhook_secrets": [STRIPE_SECRET]})
    code = link(api)["code"]
    stripe(api, fixture("stripe_checkout_session_completed.json", code))
    stripe(api, fixture("stripe_invoice_paid.json"))
    for _ in range(3):
        run_jobs(api)
    referral = referral_of(api, "cus_FriendBob")
    assert referral["status"] == "rewarded"
    app.extensions["referflow"].db.dispose()


def test_shopify_journey_claim_qualify_refund(shop):
    code = link(shop)["code"]
    customer = fixture("shopify_customers_create.json", code)
    headers = shopify_headers(customer, "customers/create", "evt-c-1")
    assert send(shop, "shopify", customer, headers).get_json() == {"received": 1, "duplicates": 0}
    assert send(shop, "shopify", customer, headers).get_json()["duplicates"] == 1
    order = fixture("shopify_orders_paid.json", code)
    send(shop, "shopify", order, shopify_headers(order, "orders/paid", "evt-o-1"))
    send(shop, "shopify", order, shopify_headers(order, "orders/paid", "evt-o-1-second-sub"))
    run_jobs(shop)
    referral = referral_of(shop, "706405506930370084")
    assert referral["status"] == "held"
    assert referral["qualification"] == {"event_id": "order:820982911946154508", "amount": 19900,
                                         "currency": "EUR", "occurred_at": "2026-11-20T15:05:00Z"}
    history = shop.get(f"/v1/referrals/{referral['id']}").get_json()["history"]
    assert [h["action"] for h in history].count("qualified") == 1  # same order, two subscriptions
    refund = fixture("shopify_refunds_create.json")
    send(shop, "shopify", refund, shopify_headers(refund, "refunds/create", "evt-r-1"))
    run_jobs(shop)
    assert referral_of(shop, "706405506930370084")["status"] == "reversed"


def test_shopify_order_with_a_discount_code_claims_and_qualifies_at_once(shop):
    code = link(shop)["code"]
    order = fixture("shopify_orders_paid.json", code)
    send(shop, "shopify", order, shopify_headers(order, "orders/paid", "evt-o-2"))
    run_jobs(shop)
    assert referral_of(shop, "706405506930370084")["status"] == "held"


def test_shopify_returning_customer_is_not_eligible(shop):
    """A customer whose earlier order was seen is not new (2024-10 orders carry no order count)."""
    code = link(shop)["code"]
    first = fixture("shopify_orders_paid_no_code.json")
    first["id"], first["admin_graphql_api_id"] = 820982911946150001, "gid://shopify/Order/820982911946150001"
    send(shop, "shopify", first, shopify_headers(first, "orders/paid", "evt-o-earlier"))
    run_jobs(shop)
    assert referral_of(shop, "706405506930370084") is None
    order = fixture("shopify_orders_paid.json", code)
    assert "orders_count" not in order["customer"]
    send(shop, "shopify", order, shopify_headers(order, "orders/paid", "evt-o-3"))
    run_jobs(shop)
    referral = referral_of(shop, "706405506930370084")
    assert referral["status"] == "rejected"
    assert referral["reasons"][0]["code"] == "existing_customer"


def test_hubspot_contact_then_closed_won_deal(shop, hubspot):
    code = link(shop)["code"]
    hubspot.contacts["123"] = {"email": "carol@example.com", "referred_by_code": code}
    hubspot.deals["987"] = {"properties": {"amount": "1500.50", "deal_currency_code": "EUR",
                                           "closedate": "2026-11-22T12:00:00Z", "dealstage": "closedwon"},
                            "contacts": ["123", "456"]}
    url = f"https://refer.example.test/v1/ingress/{shop.program_id}/hubspot"  # the public URL
    contact = fixture("hubspot_contact_creation.json")
    assert send(shop, "hubspot", contact, hubspot_headers(contact, url)).status_code == 200
    deal = fixture("hubspot_deal_closed_won.json")
    receipt = send(shop, "hubspot", deal, hubspot_headers(deal, url)).get_json()
    assert receipt == {"received": 1, "duplicates": 0}  # the company event is not ours
    run_jobs(shop)
    run_jobs(shop)
    referral = referral_of(shop, "123")
    assert referral["status"] == "held"  # closed 2026-11-22, inside the 14-day hold
    assert referral["qualification"]["amount"] == 150050
    assert referral_of(shop, "456") is None  # an unreferred contact of the deal is not ours
    wrong_url = hubspot_headers(deal, "https://elsewhere.test/hook")
    assert send(shop, "hubspot", deal, wrong_url).get_json()["code"] == "invalid_signature"


def test_klaviyo_unsubscribe_suppresses_messaging(shop):
    body = fixture("klaviyo_unsubscribed.json")
    assert send(shop, "klaviyo", body, klaviyo_headers(body)).status_code == 200
    run_jobs(shop)
    with shop.app.extensions["referflow"].db.session() as s:
        assert len(s.scalars(select(Suppression)).all()) == 1
    mismatched = send(shop, "klaviyo", body, klaviyo_headers(body, webhook_id="01JOTHER"))
    assert mismatched.status_code == 400 and mismatched.get_json()["code"] == "webhook_id_mismatch"


def test_klaviyo_spam_complaint_names_only_the_profile_which_is_looked_up(settings, hubspot):
    from tests.fakes.klaviyo import API_KEY, FakeKlaviyo

    body = fixture("klaviyo_marked_email_as_spam.json")
    profile_id = body["data"][0]["payload"]["data"]["relationships"]["profile"]["data"]["id"]
    with FakeKlaviyo() as klaviyo:
        klaviyo.profile_ids[profile_id] = "Spam.Reporter@example.com"
        app = create_app(settings.with_overrides(klaviyo_api_base=klaviyo.base))
        api = make_program(app.test_client())
        api.app = app
        api.put("/v1/providers/klaviyo", {"webhook_secrets": [KLAVIYO_SECRET]})
        assert send(api, "klaviyo", body, klaviyo_headers(body)).status_code == 200
        run_jobs(api)  # no API key yet: nothing to look the profile up with, nothing suppressed
        events = api.get("/v1/inbound-events").get_json()["items"]
        assert events[0]["outcome"] == {"ignored": "no_email"}
        api.put("/v1/providers/klaviyo", {"webhook_secrets": [KLAVIYO_SECRET],
                                          "credentials": {"api_key": API_KEY}})
        body["data"][0]["external_id"] += "-again"
        assert send(api, "klaviyo", body, klaviyo_headers(body)).status_code == 200
        run_jobs(api)
        with app.extensions["referflow"].db.session() as s:
            assert len(s.scalars(select(Suppression)).all()) == 1
        app.extensions["referflow"].db.dispose()


def test_klaviyo_unsuppression_never_suppresses(shop):
    body = fixture("klaviyo_unsubscribed.json")
    body["data"][0]["topic"] = "event:klaviyo.manually_unsuppressed_from_email_marketing"
    send(shop, "klaviyo", body, klaviyo_headers(body))
    run_jobs(shop)
    with shop.app.extensions["referflow"].db.session() as s:
        assert s.scalars(select(Suppression)).all() == []


def _stripe_bad(shop):
    body = fixture("stripe_invoice_paid.json")
    good = stripe_headers(body)
    now = int(time.time())
    return [
        ("missing", body, {}, 401, "missing_signature"),
        ("wrong", body, stripe_headers(body, secret="whsec_wrong"), 401, "invalid_signature"),
        # A minute past the 300 s tolerance: a busy CI may take seconds between here and the check
        # (the exact boundary is tested with a fixed clock in tests/test_signature_vectors.py).
        ("old", body, stripe_headers(body, t=now - 360), 401, "stale_timestamp"),
        ("future", body, stripe_headers(body, t=now + 360), 401, "stale_timestamp"),
        ("non_ascii", body, {"Stripe-Signature": f"t={now},v1=ñ{'0' * 63}"}, 401, "invalid_signature"),
        ("tampered", raw(body).replace(b"4900", b"9900"), good, 401, "invalid_signature"),
        ("malformed_json", b'{"id": ', stripe_headers(b'{"id": '), 400, "invalid_json"),
        ("deep", b"[" * 40 + b"]" * 40, stripe_headers(b"[" * 40 + b"]" * 40), 400, "too_deep"),
        ("not_an_event", b'{"hello": 1}', stripe_headers(b'{"hello": 1}'), 422, "malformed_event"),
    ]


@pytest.mark.parametrize("case", range(9))
def test_stripe_bad_input_matrix(shop, case):
    name, body, headers, status, code = _stripe_bad(shop)[case]
    response = send(shop, "stripe", body, headers)
    assert (response.status_code, response.get_json()["code"]) == (status, code), name
    assert shop.get("/v1/inbound-events").get_json()["items"] == []


def test_rotated_secrets_both_verify(shop):
    body = fixture("stripe_invoice_paid.json")
    assert send(shop, "stripe", body, stripe_headers(body, secret=STRIPE_OLD)).status_code == 200


def test_unknown_topic_wrong_type_oversize_unknown_program(shop):
    event = {**fixture("stripe_invoice_paid.json"), "type": "payout.paid"}
    response = send(shop, "stripe", event, stripe_headers(event))
    assert (response.status_code, response.get_json()["code"]) == (422, "unknown_topic")
    body = fixture("stripe_invoice_paid.json")
    wrong_type = send(shop, "stripe", body, stripe_headers(body), content_type="text/plain")
    assert wrong_type.status_code == 415
    big = b'{"pad": "' + b"x" * 70000 + b'"}'
    assert send(shop, "stripe", big, stripe_headers(big)).status_code == 413
    missing = shop.client.post("/v1/ingress/prg_nope/stripe", data=raw(body),
                               content_type="application/json", headers=stripe_headers(body))
    assert missing.get_json()["code"] == "program_not_found"
    shopify = fixture("shopify_customers_create.json", "X")
    unknown = send(shop, "shopify", shopify, shopify_headers(shopify, "products/create", "e-9"))
    assert unknown.get_json()["code"] == "unknown_topic"
    no_id = shopify_headers(shopify, "customers/create", "")
    assert send(shop, "shopify", shopify, no_id).get_json()["code"] == "missing_event_id"


def test_unconfigured_provider_is_refused(client):
    api = make_program(client)
    body = fixture("stripe_invoice_paid.json")
    response = send(api, "stripe", body, stripe_headers(body))
    assert (response.status_code, response.get_json()["code"]) == (409, "provider_not_configured")


@pytest.mark.parametrize(("policy", "status"), [("allow", "pending"), ("review", "in_review"),
                                                ("reject", "rejected")])
def test_a_card_signal_after_the_claim_follows_the_programs_policy(shop, policy, status):
    config = {**PROGRAM_CONFIG, "hold_days": 14, "review": {"policy": {"same_payment_method": policy}}}
    updated = shop.put("/v1/program/config", {"config": config})
    assert updated.status_code == 200, updated.get_json()
    code = link(shop, context={"payment_fingerprint": "Xt5EWLLDS7FJjR1c"})["code"]
    stripe(shop, fixture("stripe_customer_created.json", code))
    run_jobs(shop)
    assert referral_of(shop, "cus_FriendBob")["status"] == "pending"
    stripe(shop, fixture("stripe_charge_succeeded.json"))
    run_jobs(shop)
    referral = referral_of(shop, "cus_FriendBob")
    assert referral["status"] == status
    assert referral["reasons"][-1]["code"] == "same_payment_method"
    signal = [h for h in referral["history"] if h["action"] == "signal_after_claim"]
    assert len(signal) == 1 and signal[0]["data"]["verdict"] == policy
    if status == "in_review":
        assert referral["review_deadline"]


def test_a_card_signal_on_a_held_referral_asks_for_review_and_keeps_the_hold(shop):
    code = link(shop, context={"payment_fingerprint": "Xt5EWLLDS7FJjR1c"})["code"]
    stripe(shop, fixture("stripe_customer_created.json", code))
    run_jobs(shop)
    referral_id = referral_of(shop, "cus_FriendBob")["id"]
    held = shop.post("/v1/referrals/qualify", {"referral_id": referral_id, "event": {
        "id": "in_held", "type": "first_paid_invoice", "amount": 4900, "currency": "EUR",
        "occurred_at": datetime.now(UTC).isoformat()}}).get_json()
    assert held["status"] == "held"
    stripe(shop, fixture("stripe_charge_succeeded.json"))
    run_jobs(shop)
    referral = shop.get(f"/v1/referrals/{referral_id}").get_json()
    assert referral["status"] == "in_review"
    approved = shop.post(f"/v1/referrals/{referral_id}/approve",
                         {"reviewer": "cs@shop.test", "note": "same card, real friend"})
    assert approved.get_json()["status"] == "held"  # back into its hold, not past it


# -- Partial refunds: the program's `refunds` rule, in the ingress as in the workflows ----------

def _stripe_qualified(shop):
    code = link(shop)["code"]
    stripe(shop, fixture("stripe_checkout_session_completed.json", code))
    paid = fixture("stripe_invoice_paid.json")
    paid["data"]["object"]["status_transitions"]["paid_at"] = int(time.time())
    stripe(shop, paid)
    run_jobs(shop)
    run_jobs(shop)
    assert referral_of(shop, "cus_FriendBob")["status"] == "held"


def test_a_partial_stripe_refund_keeps_the_referral_and_its_full_refund_reverses_it(shop):
    _stripe_qualified(shop)
    partial = fixture("stripe_charge_refunded_partial.json")  # amount_refunded 1500 of 4900
    partial["created"] = int(time.time())
    stripe(shop, partial)
    stripe(shop, fixture("stripe_refund_created_partial.json"))  # the same refund, as a refund object
    run_jobs(shop)
    referral = referral_of(shop, "cus_FriendBob")
    assert referral["status"] == "held"
    history = shop.get(f"/v1/referrals/{referral['id']}").get_json()["history"]
    kept = [h for h in history if h["action"] == "refund_kept"]
    assert [h["data"]["refund"]["returned"] for h in kept] == [1500, 1500]  # counted once
    full = fixture("stripe_charge_refunded.json")
    full["created"] = int(time.time())
    stripe(shop, full)
    run_jobs(shop)
    assert referral_of(shop, "cus_FriendBob")["status"] == "reversed"


def test_a_partial_stripe_refund_reverses_under_refunds_any(shop):
    assert shop.put("/v1/program/config", {"config": {**PROGRAM_CONFIG, "refunds": "any"}}).status_code == 200
    _stripe_qualified(shop)
    partial = fixture("stripe_charge_refunded_partial.json")
    partial["created"] = int(time.time())
    stripe(shop, partial)
    run_jobs(shop)
    assert referral_of(shop, "cus_FriendBob")["status"] == "reversed"


def test_a_partial_shopify_refund_is_sized_by_its_refund_transactions(shop):
    code = link(shop)["code"]
    order = fixture("shopify_orders_paid.json", code)
    send(shop, "shopify", order, shopify_headers(order, "orders/paid", "evt-o-partial"))
    run_jobs(shop)
    refund = fixture("shopify_refunds_create_partial.json")
    refund["order_id"] = order["id"]
    send(shop, "shopify", refund, shopify_headers(refund, "refunds/create", "evt-r-partial"))
    run_jobs(shop)
    referral = referral_of(shop, "706405506930370084")
    assert referral["status"] == "held"
    history = shop.get(f"/v1/referrals/{referral['id']}").get_json()["history"]
    assert history[-1]["action"] == "refund_kept"
    assert history[-1]["data"]["refund"] == {"code": "partial_refund", "returned": 2500}
