"""Validly signed provider events of the wrong shape: refused at receipt (422) or settled with a reason.

Each case starts from a fixture that follows the provider's API reference and changes one field.
Whatever happens: no 5xx, no job that crashes for ever, nothing truncated, nothing dated 1970.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from referflow.actions import inbound as ingress
from referflow.actions.mappings import HANDLERS
from referflow.app import create_app
from referflow.errors import RetryableProviderError
from referflow.storage.models import InboundEvent, Referral
from tests.api.test_ingress import (
    HUBSPOT_SECRET,
    KLAVIYO_SECRET,
    SHOPIFY_SECRET,
    STRIPE_SECRET,
    fixture,
    hubspot_headers,
    klaviyo_headers,
    raw,
    run_jobs,
    send,
    shopify_headers,
    stripe_headers,
)
from tests.conftest import PROGRAM_CONFIG, make_program
from tests.helpers import link

LONG = "x" * 300
HUBSPOT_URL = "https://refer.example.test/v1/ingress/{}/hubspot"


@pytest.fixture()
def programs(settings):
    """Return a factory of programs (any currency) with every provider's secret configured."""
    apps = []

    def make(currency="EUR"):
        app = create_app(settings)
        apps.append(app)
        api = make_program(app.test_client(), {**PROGRAM_CONFIG, "currency": currency, "hold_days": 14},
                           name=f"Hostile {currency} {len(apps)}")
        api.app = app
        api.put("/v1/providers/stripe", {"webhook_secrets": [STRIPE_SECRET]})
        api.put("/v1/providers/shopify", {"webhook_secrets": [SHOPIFY_SECRET]})
        api.put("/v1/providers/hubspot", {"webhook_secrets": [HUBSPOT_SECRET],
                                          "credentials": {"access_token": "unused"}})
        api.put("/v1/providers/klaviyo", {"webhook_secrets": [KLAVIYO_SECRET]})
        return api

    yield make
    for app in apps:
        app.extensions["referflow"].db.dispose()


@pytest.fixture()
def shop(programs):
    return programs()


def post(api, provider, body, headers):
    response = send(api, provider, body, headers)
    assert response.status_code < 500, response.get_data(as_text=True)
    return response


def post_stripe(api, body):
    return post(api, "stripe", body, stripe_headers(body))


def events(api):
    return api.get("/v1/inbound-events").get_json()["items"]


def settled(api):
    """Run the jobs; return the events, asserting each settled (none left to crash again)."""
    run_jobs(api)
    items = events(api)
    assert all(i["status"] in ("processed", "ignored", "expired") for i in items), items
    with api.app.extensions["referflow"].db.session() as s:
        early = s.scalars(select(Referral).where(Referral.qualified_at < datetime(2000, 1, 1, tzinfo=UTC)))
        assert list(early) == []  # nothing qualifies at 1970
    return items


def assert_invalid(item, path):
    assert item["status"] == "ignored" and item["outcome"]["ignored"] == "invalid_event", item
    assert path in {e["path"] for e in item["outcome"]["errors"]}, item["outcome"]


def claimed_friend(api):
    """Claim cus_FriendBob through Stripe, so that a wrongly accepted payment would qualify him."""
    code = link(api)["code"]
    post_stripe(api, fixture("stripe_customer_created.json", code))
    run_jobs(api)
    referral = api.get("/v1/inbound-events").get_json()["items"][0]["outcome"]["referral_id"]
    assert api.get(f"/v1/referrals/{referral}").get_json()["status"] == "pending"
    return referral


# -- At receipt: the top-level shape, after the signature --------------------------------------------

def _stripe_top(change):
    body = fixture("stripe_invoice_paid.json")
    return change(body) if callable(change) else change


STRIPE_TOP = [
    ("data_list", lambda b: {**b, "data": [b["data"]["object"]]}, "/data/object"),
    ("data_string", lambda b: {**b, "data": "in_1QinvFirst0001"}, "/data/object"),
    ("data_null", lambda b: {**b, "data": None}, "/data/object"),
    ("data_missing", lambda b: {k: v for k, v in b.items() if k != "data"}, "/data/object"),
    ("object_list", lambda b: {**b, "data": {"object": [1]}}, "/data/object"),
    ("id_missing", lambda b: {k: v for k, v in b.items() if k != "id"}, "/id"),
    ("id_empty", lambda b: {**b, "id": ""}, "/id"),
    ("id_number", lambda b: {**b, "id": 12345}, "/id"),
    ("id_oversized", lambda b: {**b, "id": "evt_" + LONG}, "/id"),
    ("body_list", [{"id": "evt_1"}], "/"),
    ("body_string", "evt_1", "/"),
    ("body_null", None, "/"),
]


@pytest.mark.parametrize(("name", "change", "path"), STRIPE_TOP, ids=[c[0] for c in STRIPE_TOP])
def test_a_signed_stripe_delivery_of_the_wrong_shape_is_a_422(shop, name, change, path):
    body = _stripe_top(change)
    response = post_stripe(shop, body)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["code"] == "malformed_event"
    assert path in {e["path"] for e in response.get_json()["errors"]}
    assert events(shop) == []


def test_a_number_beyond_a_double_is_a_422_not_a_row_postgresql_refuses(shop):
    claimed_friend(shop)
    body = raw(fixture("stripe_invoice_paid.json")).replace(b'"amount_paid": 4900', b'"amount_paid": 1e400')
    response = post(shop, "stripe", body, stripe_headers(body))
    assert (response.status_code, response.get_json()["code"]) == (422, "number_out_of_range")
    order = raw(fixture("shopify_orders_paid.json", "CODE")).replace(b'"199.00"', b"-1e999")
    response = post(shop, "shopify", order, shopify_headers(order, "orders/paid", "evt-o-9"))
    assert (response.status_code, response.get_json()["code"]) == (422, "number_out_of_range")
    assert [i["type"] for i in events(shop)] == ["customer.created"]


def test_an_event_id_at_the_limit_goes_all_the_way_and_one_more_character_is_a_422(shop):
    code = link(shop)["code"]
    at_limit = {**fixture("stripe_customer_created.json", code), "id": "evt_" + "x" * 186}
    assert post_stripe(shop, at_limit).status_code == 200
    item = settled(shop)[0]
    history = shop.get(f"/v1/referrals/{item['outcome']['referral_id']}").get_json()["history"]
    assert history[0]["actor"]["id"] == "stripe:" + at_limit["id"]  # fits the audit's 200 characters
    over = {**at_limit, "id": at_limit["id"] + "x"}
    assert post_stripe(shop, over).status_code == 422


@pytest.mark.parametrize("body", [b"[1, 2]", b'"junk"', b'{"data": []}', b"not json"])
def test_unsigned_junk_is_still_a_401(shop, body):
    response = post(shop, "stripe", body, stripe_headers(body, secret="whsec_not_ours"))
    assert (response.status_code, response.get_json()["code"]) == (401, "invalid_signature")


def test_other_providers_refuse_oversized_or_missing_ids_at_receipt(shop):
    customer = fixture("shopify_customers_create.json", "CODE")
    long_id = post(shop, "shopify", customer, shopify_headers(customer, "customers/create", LONG))
    assert (long_id.status_code, long_id.get_json()["code"]) == (422, "malformed_event")
    missing = post(shop, "shopify", customer, shopify_headers(customer, "customers/create", ""))
    assert (missing.status_code, missing.get_json()["code"]) == (422, "missing_event_id")
    not_object = post(shop, "shopify", [customer], shopify_headers([customer], "customers/create", "e-1"))
    assert (not_object.status_code, not_object.get_json()["code"]) == (422, "malformed_event")
    url = HUBSPOT_URL.format(shop.program_id)
    for deal in ([{**fixture("hubspot_deal_closed_won.json")[0], "eventId": LONG}],
                 [{**fixture("hubspot_deal_closed_won.json")[0], "eventId": None}], [1], {"eventId": 1}):
        response = post(shop, "hubspot", deal, hubspot_headers(deal, url))
        assert response.status_code == 422, (deal, response.get_json())
    klaviyo = fixture("klaviyo_unsubscribed.json")
    for item in ({"external_id": LONG}, {"topic": "event:" + LONG}, {"topic": ["unsubscribe"]}):
        body = {**klaviyo, "data": [{**klaviyo["data"][0], **item}]}
        response = post(shop, "klaviyo", body, klaviyo_headers(body))
        assert (response.status_code, response.get_json()["code"]) == (422, "malformed_event"), item
    body = {**klaviyo, "meta": ["not", "an", "object"]}
    assert post(shop, "klaviyo", body, klaviyo_headers(body)).get_json()["code"] == "webhook_id_mismatch"
    assert events(shop) == []


# -- After receipt: each mapping's shape, amounts and times -------------------------------------------

def _invoice(change):
    def apply(body):
        change(body["data"]["object"], body)
        return body
    return apply


def _set(field, value):
    return _invoice(lambda obj, body: obj.update({field: value}))


INVOICES = [
    ("amount_2_70", _set("amount_paid", 2**70), "/data/object/amount_paid"),
    ("amount_12_5", _set("amount_paid", 12.5), "/data/object/amount_paid"),
    ("amount_4900_0", _set("amount_paid", 4900.0), "/data/object/amount_paid"),
    ("amount_negative", _set("amount_paid", -4900), "/data/object/amount_paid"),
    ("amount_string", _set("amount_paid", "4900"), "/data/object/amount_paid"),
    ("isk_fraction", _invoice(lambda o, b: o.update(currency="isk", amount_paid=4950)), "/data/object/amount_paid"),
    ("customer_list", _set("customer", ["cus_FriendBob"]), "/data/object/customer"),
    ("customer_object", _set("customer", {"id": "cus_FriendBob"}), "/data/object/customer"),
    ("customer_empty", _set("customer", ""), "/data/object/customer"),
    ("customer_oversized", _set("customer", "cus_" + LONG), "/data/object/customer"),
    ("invoice_id_oversized", _set("id", "in_" + LONG), "/data/object/id"),
    ("currency_missing", _invoice(lambda o, b: o.pop("currency")), "/data/object"),
    ("currency_list", _set("currency", ["eur"]), "/data/object/currency"),
    ("currency_not_a_code", _set("currency", "euro"), "/data/object/currency"),
    ("status_transitions_string", _set("status_transitions", "paid"), "/data/object/status_transitions"),
    ("paid_at_1970", _invoice(lambda o, b: o["status_transitions"].update(paid_at=0)),
     "/data/object/status_transitions/paid_at"),
    ("paid_at_next_year", _invoice(lambda o, b: o["status_transitions"].update(paid_at=int(time.time()) + 365 * 86400)),
     "/data/object/status_transitions/paid_at"),
    ("no_paid_at_no_created", _invoice(lambda o, b: (o["status_transitions"].update(paid_at=None), b.pop("created"))),
     "/"),
    ("no_paid_at_created_0", _invoice(lambda o, b: (o["status_transitions"].update(paid_at=None), b.update(created=0))),
     "/created"),
    ("created_string", _invoice(lambda o, b: b.update(created="2026-11-20")), "/created"),
]


@pytest.mark.parametrize(("name", "change", "path"), INVOICES, ids=[c[0] for c in INVOICES])
def test_a_garbled_paid_invoice_settles_with_the_reason_and_qualifies_nobody(shop, name, change, path):
    referral = claimed_friend(shop)
    body = change(fixture("stripe_invoice_paid.json"))
    assert post_stripe(shop, body).status_code == 200
    invoice = next(i for i in settled(shop) if i["type"] == "invoice.paid")
    assert_invalid(invoice, path)
    got = shop.get(f"/v1/referrals/{referral}").get_json()
    assert got["status"] == "pending" and got["qualification"] is None


def test_stripe_isk_is_two_decimal_in_stripe_and_whole_kronur_in_referflow(programs):
    api = programs("ISK")
    referral = claimed_friend(api)
    body = fixture("stripe_invoice_paid.json")
    body["data"]["object"].update(currency="isk", amount_paid=490000)  # 4 900 kr in Stripe's units
    body["data"]["object"]["status_transitions"]["paid_at"] = int(time.time())
    post_stripe(api, body)
    settled(api)
    got = api.get(f"/v1/referrals/{referral}").get_json()
    assert got["status"] == "held" and got["qualification"]["amount"] == 4900


OTHER_STRIPE = [
    ("stripe_checkout_session_completed.json", "customer_details", "bob@example.com", "/data/object/customer_details"),
    ("stripe_checkout_session_completed.json", "metadata", ["referral_code"], "/data/object/metadata"),
    ("stripe_customer_created.json", "id", None, "/data/object/id"),
    ("stripe_customer_created.json", "email", {"address": "bob@example.com"}, "/data/object/email"),
    ("stripe_charge_succeeded.json", "payment_method_details", [], "/data/object/payment_method_details"),
    ("stripe_charge_refunded.json", "customer", 42, "/data/object/customer"),
    ("stripe_refund_created.json", "created", None, "/data/object/created"),
    ("stripe_refund_created.json", "charge", {"id": "ch_1"}, "/data/object/charge"),
    ("stripe_charge_dispute_created.json", "created", -1, "/data/object/created"),
]


@pytest.mark.parametrize(("name", "field", "value", "path"), OTHER_STRIPE,
                         ids=[f"{c[0][7:-5]}-{c[1]}" for c in OTHER_STRIPE])
def test_other_garbled_stripe_events_settle_with_the_reason(shop, name, field, value, path):
    body = fixture(name, "CODE")
    body["data"]["object"][field] = value
    assert post_stripe(shop, body).status_code == 200
    assert_invalid(settled(shop)[0], path)


def test_a_stripe_event_without_created_is_invalid_not_1970(shop):
    claimed_friend(shop)
    body = fixture("stripe_charge_refunded.json")
    del body["created"]
    post_stripe(shop, body)
    assert_invalid(next(i for i in settled(shop) if i["type"] == "charge.refunded"), "/")


def test_a_refund_naming_no_charge_is_ignored_not_stuck(shop):
    body = fixture("stripe_refund_created.json")
    body["data"]["object"].update(charge=None, payment_intent=None)
    post_stripe(shop, body)
    assert settled(shop)[0]["outcome"] == {"ignored": "no_charge"}


# -- Shopify orders: exact amounts per currency ---------------------------------------------------

def _order(api, change, event_id="evt-o-1"):
    code = link(api)["code"]
    order = fixture("shopify_orders_paid.json", code)
    change(order)
    assert post(api, "shopify", order, shopify_headers(order, "orders/paid", event_id)).status_code == 200
    return settled(api)[0]


def _qualification(api, item):
    assert item["status"] == "processed", item
    return api.get(f"/v1/referrals/{item['outcome']['referral_id']}").get_json()["qualification"]


@pytest.mark.parametrize(("currency", "total", "minor"), [
    ("KWD", "12.345", 12345), ("USD", "12.5", 1250), ("USD", "12.50", 1250), ("JPY", "1234", 1234),
    ("EUR", "199.00", 19900), ("CLF", "1.2345", 12345), ("BHD", "12.3", 12300),
])
def test_shopify_totals_are_exact_minor_units(programs, currency, total, minor):
    api = programs(currency)
    item = _order(api, lambda o: o.update(currency=currency, total_price=total))
    assert _qualification(api, item)["amount"] == minor


ORDERS = [
    ("usd_12_505", lambda o: o.update(currency="USD", total_price="12.505"), "/total_price"),
    ("jpy_12_5", lambda o: o.update(currency="JPY", total_price="12.5"), "/total_price"),
    ("total_float", lambda o: o.update(total_price=12.5), "/total_price"),
    ("total_exponent", lambda o: o.update(total_price="1e3"), "/total_price"),
    ("total_spaces", lambda o: o.update(total_price=" 12"), "/total_price"),
    ("total_negative", lambda o: o.update(total_price="-199.00"), "/total_price"),
    ("total_huge", lambda o: o.update(total_price="9" * 30), "/total_price"),
    ("total_missing", lambda o: o.pop("total_price"), "/"),
    ("currency_missing", lambda o: o.pop("currency"), "/"),
    ("no_times", lambda o: (o.pop("processed_at"), o.pop("created_at")), "/processed_at"),
    ("processed_at_garbage", lambda o: o.update(processed_at="last tuesday"), "/processed_at"),
    ("processed_at_1970", lambda o: o.update(processed_at="1970-01-01T00:00:00Z"), "/processed_at"),
    ("processed_at_no_offset", lambda o: o.update(processed_at="2026-11-20T10:05:00"), "/processed_at"),
    ("order_id_2_70", lambda o: o.update(id=2**70), "/id"),
    ("order_id_list", lambda o: o.update(id=[1]), "/id"),
    ("customer_id_list", lambda o: o["customer"].update(id=[706405506930370084]), "/customer/id"),
    ("customer_id_oversized", lambda o: o["customer"].update(id=LONG), "/customer/id"),
    ("customer_string", lambda o: o.update(customer="706405506930370084"), "/customer"),
    ("orders_count_string", lambda o: o["customer"].update(orders_count="1"), "/customer/orders_count"),
    ("discount_codes_object", lambda o: o.update(discount_codes={"code": "X"}), "/discount_codes"),
    ("note_attributes_strings", lambda o: o.update(note_attributes=["referral_code"]), "/note_attributes/0"),
]


@pytest.mark.parametrize(("name", "change", "path"), ORDERS, ids=[c[0] for c in ORDERS])
def test_a_garbled_shopify_order_settles_with_the_reason_and_claims_nothing(shop, name, change, path):
    item = _order(shop, change)
    assert_invalid(item, path)
    assert shop.get("/v1/people/706405506930370084").get_json().get("referred_as_friend") in (None, [])


def test_an_order_without_processed_at_qualifies_when_it_was_created(shop):
    item = _order(shop, lambda o: o.pop("processed_at"))
    assert _qualification(shop, item)["occurred_at"] == "2026-11-20T15:05:00Z"


def test_a_refund_without_created_at_is_invalid(shop):
    refund = fixture("shopify_refunds_create.json")
    del refund["created_at"]
    post(shop, "shopify", refund, shopify_headers(refund, "refunds/create", "evt-r-1"))
    assert_invalid(settled(shop)[0], "/")


def test_a_customer_with_an_oversized_referral_code_is_refused_like_the_api_would(shop):
    customer = fixture("shopify_customers_create.json", "CODE" * 20)
    post(shop, "shopify", customer, shopify_headers(customer, "customers/create", "evt-c-1"))
    assert_invalid(settled(shop)[0], "/code")


# -- A mapping that fails unexpectedly settles after its attempts -------------------------------------

def test_an_event_whose_mapping_keeps_failing_expires_with_the_error(shop, monkeypatch):
    def broken(*args):
        raise TypeError("unsupported operand type(s)")

    monkeypatch.setitem(HANDLERS, ("stripe", "invoice.paid"), broken)
    post_stripe(shop, fixture("stripe_invoice_paid.json"))
    db = shop.app.extensions["referflow"].db
    for failure in range(1, ingress.MAX_FAILURES + 1):
        run_jobs(shop)
        item = events(shop)[0]
        assert item["outcome"]["failures"] == failure, item
        if failure < ingress.MAX_FAILURES:
            assert item["status"] == "pending" and "TypeError" in item["outcome"]["error"]
            with db.session() as s:  # the backoff has passed
                s.execute(update(InboundEvent).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
                s.commit()
    assert item["status"] == "expired" and item["outcome"]["error"].startswith("TypeError")
    assert item["processed_at"] is not None
    with db.session() as s:
        s.execute(update(InboundEvent).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
        s.commit()
    run_jobs(shop)
    assert events(shop)[0] == item  # settled: never tried again


def test_a_provider_outage_is_retried_as_asked_then_expires_after_days(shop, monkeypatch):
    def hubspot_down(*args):
        raise RetryableProviderError("hubspot: HTTP 503", retry_after=120)

    monkeypatch.setitem(HANDLERS, ("stripe", "invoice.paid"), hubspot_down)
    post_stripe(shop, fixture("stripe_invoice_paid.json"))
    db = shop.app.extensions["referflow"].db
    for _ in range(ingress.MAX_FAILURES + 2):  # more tries than a bug gets: an outage is no bug
        run_jobs(shop)
        item = events(shop)[0]
        assert item["status"] == "pending" and item["outcome"]["retrying"] == "hubspot: HTTP 503", item
        with db.session() as s:
            due = s.scalar(select(InboundEvent.next_attempt_at))
            assert timedelta(seconds=100) < due - datetime.now(UTC) < timedelta(seconds=140)  # Retry-After
            s.execute(update(InboundEvent).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
            s.commit()
    with db.session() as s:  # three days of outage later
        s.execute(update(InboundEvent).values(received_at=datetime.now(UTC) - timedelta(days=3, seconds=1)))
        s.commit()
    run_jobs(shop)
    item = events(shop)[0]
    assert item["status"] == "expired" and "provider unavailable" in item["outcome"]["expired"]


def test_the_outcome_of_an_invalid_event_is_short_even_for_huge_values(shop):
    body = fixture("stripe_invoice_paid.json")
    body["data"]["object"]["customer"] = "cus_" + "x" * 50000
    post_stripe(shop, body)
    item = settled(shop)[0]
    assert_invalid(item, "/data/object/customer")
    assert len(json.dumps(item["outcome"])) < 5000
