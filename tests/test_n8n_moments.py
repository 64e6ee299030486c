"""The pack's moment workflows, and the send rules in every send path, in a real n8n.

Stripe (the Nth paid invoice -> first_win, a renewal's invoice -> renewal), Shopify (the customer's
second order -> first_win) and HubSpot (NPS -> nps_response, a renewed deal -> renewal, a closed
escalated ticket -> support_resolved) are driven by provider-shaped payloads (tests/fixtures, see its
README) for the cases a store sees: an ask, a skip for each main reason, a deferral in quiet hours,
ordinary traffic (no customer, a first invoice that is no renewal, an NPS of 6, another deal or
ticket) and a redelivered event. Each case asserts the execution's status, the node it ended at (an
ask reaches the senders; a skip a ``Skipped: <reason>`` node; ordinary traffic ``Not a moment``),
referflow's decision and what the fake Klaviyo and HubSpot received: nothing, unless referflow said
send. The new-customer workflow is run for a person who withdrew consent, and the reward workflow
(under ``n8n start``) for a withdrawn, an erased and a quiet-hours recipient: nothing reaches them.

One n8n per flavour runs every manual-trigger case in one ``n8n executeBatch`` (redeliveries in a
second); each case has its own program, API key and provider fakes, so cases cannot see each other.
Both flavours of the pack run (``http`` and ``native``, the Referflow node of the community package).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import sqlite3
import time
from collections.abc import Callable
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from referflow import workflows as pack
from referflow.native_flavour import to_native
from tests.conftest import PROGRAM_CONFIG
from tests.fakes.hubspot import TOKEN as HUBSPOT_TOKEN
from tests.fakes.hubspot import FakeHubSpot, _crm_object
from tests.fakes.klaviyo import API_KEY as KLAVIYO_KEY
from tests.fakes.klaviyo import FakeKlaviyo
from tests.fakes.server import FakeServer
from tests.live import free_port, live_program, live_server
from tests.n8n_harness import MISSING_REASON, N8n, _unflatten, n8n_missing, with_recorded_trigger
from tests.n8n_package import install_community_package, package_built

pytestmark = [pytest.mark.slow, pytest.mark.n8n, pytest.mark.skipif(n8n_missing(), reason=MISSING_REASON)]
FIXTURES = pack.pack_dir().parent / "tests" / "fixtures"
STRIPE, SHOPIFY, HUBSPOT = "moment-stripe.json", "moment-shopify.json", "moment-hubspot.json"
CUSTOMER = "new-customer-to-advocate.json"
STRIPE_KEY = "sk_test_fake_moments_0123456789"
SHOPIFY_TOKEN = "shpat_fake_moments_0123456789"
HUBSPOT_SECRET = "hubspot-test-client-secret"
HUBSPOT_URL = "https://n8n.example.test/webhook/referflow-hubspot-moments"
BOB, BOB_EMAIL, CAROL = "cus_FriendBob", "bob@example.com", "123"  # the fixtures' cast
SHOPIFY_BOB = "7012345678901"  # a Shopify id JavaScript holds exactly (tests/test_n8n_traffic.py)
SENDERS = ("Send the ask to Klaviyo", "Write the ask to HubSpot")
NOT_A_MOMENT = "Not a moment (ordinary traffic)"


def fixture(name: str, **replace: str) -> Any:
    text = (FIXTURES / name).read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    return json.loads(text)


# ---- provider payloads -------------------------------------------------------------------------

def invoice(name: str, **changes: Any) -> dict[str, Any]:
    """A Stripe invoice.paid event as the n8n Stripe Trigger hands it on (its name for the event)."""
    event = fixture(name)
    event["type"] = "invoice.payment_succeeded"
    event["data"]["object"].update(changes)
    return event


FIRST, RENEWAL = "stripe_invoice_paid.json", "stripe_invoice_paid_renewal.json"


def paid_invoices(*names: str) -> list[dict[str, Any]]:
    """The customer's paid invoices as Stripe lists them (newest first)."""
    return sorted((fixture(n)["data"]["object"] for n in names), key=lambda i: -i["created"])


def shopify_order(name: str) -> dict[str, Any]:
    ids = {"820982911946154508": "5912345678901", "820982911946154601": "5912345678902",
           "706405506930370084": SHOPIFY_BOB}
    return fixture(name, __CODE__="", **ids)


def shopify_customer(orders: int) -> dict[str, Any]:
    customer = fixture("shopify_customer.json", **{"706405506930370084": SHOPIFY_BOB})["customer"]
    return {**customer, "orders_count": orders}


def hubspot_request(events: list[dict[str, Any]], *, age: float = 0, secret: str = HUBSPOT_SECRET) -> dict[str, Any]:
    """What the Webhook node hands on for a HubSpot webhook request, signed as HubSpot signs (v3)."""
    body = json.dumps(events, separators=(",", ":"))
    stamp = str(int((time.time() - age) * 1000))
    digest = hmac.new(secret.encode(), f"POST{HUBSPOT_URL}{body}{stamp}".encode(), hashlib.sha256).digest()
    headers = {"content-type": "application/json", "user-agent": "HubSpot Connect 2.0 (http://dev.hubspot.com/)",
               "x-hubspot-request-timestamp": stamp, "x-hubspot-signature-v3": base64.b64encode(digest).decode(),
               "x-hubspot-signature-version": "v1"}
    return {"headers": headers, "params": {}, "query": {}, "body": events}


def nps(score: str, attempt: int = 0) -> list[dict[str, Any]]:
    events = fixture("hubspot_contact_nps_change.json")
    events[0].update(propertyValue=score, attemptNumber=attempt)
    return events


# ---- fakes of the provider reads (Klaviyo and HubSpot writes: tests/fakes) ---------------------------

class FakeStripeInvoices(FakeServer):
    """Stripe's List invoices (GET /v1/invoices?customer=&status=): a list object, newest first."""

    def __init__(self, invoices: list[dict[str, Any]]):
        super().__init__()
        self.invoices = invoices

    def handle(self, method, path, headers, body):
        if headers.get("Authorization") != f"Bearer {STRIPE_KEY}":
            return 401, {}, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}
        url = urlsplit(path)
        if method != "GET" or url.path != "/v1/invoices":
            return 404, {}, {"error": {"type": "invalid_request_error",
                                       "message": f"Unrecognized request URL ({method}: {url.path})"}}
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        found = [i for i in self.invoices if i["customer"] == query.get("customer")
                 and i["status"] == query.get("status", i["status"])][:int(query.get("limit", 10))]
        return 200, {}, {"object": "list", "data": found, "has_more": False, "url": "/v1/invoices"}


class FakeShopifyCustomers(FakeServer):
    """Shopify's REST GET customers/{id}.json (2024-10), limited to the ``fields`` asked for."""

    def __init__(self, customers: dict[str, dict[str, Any]]):
        super().__init__()
        self.customers = customers

    def handle(self, method, path, headers, body):
        if headers.get("X-Shopify-Access-Token") != SHOPIFY_TOKEN:
            return 401, {}, {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
        url = urlsplit(path)
        found = re.fullmatch(r"/admin/api/2024-10/customers/(\d+)\.json", url.path)
        customer = self.customers.get(found[1]) if found and method == "GET" else None
        if customer is None:
            return 404, {}, {"errors": "Not Found"}
        fields = [f for f in parse_qs(url.query).get("fields", [""])[0].split(",") if f]
        return 200, {}, {"customer": {k: v for k, v in customer.items() if not fields or k in fields}}


class FakeHubSpotCrm(FakeHubSpot):
    """The HubSpot fake, with tickets read as CRM v3 answers them (with their contacts)."""

    def __init__(self) -> None:
        super().__init__()
        self.properties |= {"referral_code", "referral_link", "referral_asked_at"}
        self.tickets: dict[str, dict[str, Any]] = {}

    def handle(self, method, path, headers, body):
        found = re.fullmatch(r"/crm/v3/objects/tickets/(\d+)", urlsplit(path).path)
        if found and headers.get("Authorization") == f"Bearer {HUBSPOT_TOKEN}":
            ticket = self.tickets.get(found[1])
            if ticket is None:
                return 404, {}, {"status": "error", "message": "Object not found.", "category": "OBJECT_NOT_FOUND"}
            return 200, {}, {**_crm_object(found[1], ticket["properties"], path, "hs_lastmodifieddate"),
                             "associations": ticket["associations"]}
        return super().handle(method, path, headers, body)

    def writes(self) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["method"] != "GET"]


# ---- referflow, per case -----------------------------------------------------------------------

class Referflow:
    def __init__(self, base: str, key: str, session: requests.Session, program_id: str):
        self.base, self.key, self.session, self.program_id = base, key, session, program_id

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.session.post(f"{self.base}{path}", json=body, timeout=10)
        assert response.status_code in (200, 201), response.text
        return response.json()

    def asks(self, external_id: str) -> list[dict[str, Any]]:
        profile = self.session.get(f"{self.base}/v1/people/{external_id}/profile", timeout=10)
        return profile.json()["asks"] if profile.status_code == 200 else []

    def withdraw(self, external_id: str, email: str) -> None:
        self.post("/v1/consents", {"person": {"external_id": external_id, "email": email}, "channel": "email",
                                   "status": "withdrawn", "source": "preference_center"})

    def asked(self, external_id: str, email: str, **attributes: Any) -> dict[str, Any]:
        person = {"external_id": external_id, "email": email, **({"attributes": attributes} if attributes else {})}
        return self.post("/v1/moments", {"person": person, "moment": "first_win"})

    def erase(self, external_id: str, email: str) -> None:
        self.post("/v1/consents", {"person": {"external_id": external_id, "email": email}, "channel": "email",
                                   "status": "granted", "source": "signup_form"})
        assert self.session.delete(f"{self.base}/v1/people/{external_id}", timeout=10).status_code in (200, 204)

    def unsubscribe(self, email: str) -> None:
        """Klaviyo reports an unsubscribe (its system webhook, signed) to referflow's ingress."""
        secret = "klaviyo-moments-signing-secret"
        self.session.put(f"{self.base}/v1/providers/klaviyo", json={"webhook_secrets": [secret]}, timeout=10)
        body = json.dumps(fixture("klaviyo_unsubscribed.json", **{"ann@example.com": email})).encode()
        stamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "Klaviyo-Webhook-Id": "01JWEBHOOK", "Klaviyo-Timestamp": stamp,
                   "Klaviyo-Signature": hmac.new(secret.encode(), body + stamp.encode(), hashlib.sha256).hexdigest()}
        sent = requests.post(f"{self.base}/v1/ingress/{self.program_id}/klaviyo", data=body, headers=headers,
                             timeout=10)
        assert sent.status_code == 200, sent.text
        deadline = time.monotonic() + 30  # the ingress records the event; a job withdraws the consent
        while time.monotonic() < deadline:
            check = self.post("/v1/messages/check", {"person": {"external_id": "probe", "email": email},
                                                      "channel": "email", "purpose": "ask"})
            if check["reason"] == "no_consent":
                return
            time.sleep(0.5)
        raise AssertionError(f"the unsubscribe of {email} was not applied")


def _quiet_now() -> dict[str, str]:
    """Quiet hours (UTC, the program's timezone) from an hour ago to three hours from now."""
    now = datetime.now(UTC)
    return {"start": (now - timedelta(hours=1)).strftime("%H:%M"), "end": (now + timedelta(hours=3)).strftime("%H:%M")}


# ---- the cases ---------------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    workflow: str
    payload: Callable[[], Any]
    ends: str  # "sent", a "Skipped: <reason>" node, NOT_A_MOMENT, "waiting" or "error"
    person: str | None = None  # the external id referflow decides for (None: no decision expected)
    moment: str | None = None
    setup: Callable[[Referflow], Any] = lambda rf: None
    config: dict[str, Any] = field(default_factory=dict)  # the program's moments config
    settings: dict[str, Any] = field(default_factory=dict)  # the workflow's Settings
    invoices: list[dict[str, Any]] = field(default_factory=list)  # Stripe: the customer's paid invoices
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)  # Shopify: customers by id
    crm: Callable[[FakeHubSpotCrm], None] = lambda hubspot: None  # HubSpot: contacts, deals, tickets
    trigger: str | None = None
    replay: Callable[[], Any] | None = None  # the provider delivers the event again (second batch)
    reachable: bool = True
    email: str = BOB_EMAIL


def _carol(hubspot: FakeHubSpotCrm) -> None:
    hubspot.contacts[CAROL] = {"email": "carol@example.com"}


def _deal(deal_type: str) -> Callable[[FakeHubSpotCrm], None]:
    def crm(hubspot: FakeHubSpotCrm) -> None:
        _carol(hubspot)
        hubspot.deals["987"] = {"properties": {"dealtype": deal_type, "dealstage": "closedwon"}, "contacts": [CAROL]}
    return crm


def _ticket(priority: str) -> Callable[[FakeHubSpotCrm], None]:
    def crm(hubspot: FakeHubSpotCrm) -> None:
        _carol(hubspot)
        ticket = fixture("hubspot_crm_ticket_with_associations.json")
        ticket["properties"]["hs_ticket_priority"] = priority
        hubspot.tickets["5501"] = ticket
    return crm


TWO_PAID = paid_invoices(FIRST, RENEWAL)
EMAIL_ONLY = {"channels": ["email"]}
SECOND_ORDER = "shopify_orders_paid_second_order.json"
CASES = [
    # -- Stripe: the Nth paid invoice -> first_win; a renewal's invoice -> renewal
    Case("stripe-renewal-asks", STRIPE, lambda: invoice(RENEWAL), "sent", BOB, "renewal", invoices=TWO_PAID,
         replay=lambda: invoice(RENEWAL)),
    Case("stripe-nth-paid-invoice-is-a-first-win", STRIPE, lambda: invoice(RENEWAL), "sent", BOB, "first_win",
         invoices=TWO_PAID, settings={"first_win_paid_invoice": 2}),
    Case("stripe-first-invoice-is-no-moment", STRIPE, lambda: invoice(FIRST), NOT_A_MOMENT,
         invoices=paid_invoices(FIRST)),
    Case("stripe-free-trial-invoice-is-no-moment", STRIPE, lambda: invoice(RENEWAL, amount_paid=0), NOT_A_MOMENT,
         invoices=TWO_PAID),
    # Email consent withdrawn: referflow asks in the app instead (the default channels: email, in_app), and
    # this workflow, which asks by email, sends nothing; with email the only channel there is no ask at all.
    Case("stripe-consent-withdrawn", STRIPE, lambda: invoice(RENEWAL), "Skipped: not_email", BOB, "renewal",
         invoices=TWO_PAID, setup=lambda rf: rf.withdraw(BOB, BOB_EMAIL)),
    Case("stripe-consent-withdrawn-email-only", STRIPE, lambda: invoice(RENEWAL), "Skipped: no_consent", BOB,
         "renewal", invoices=TWO_PAID, config=EMAIL_ONLY, setup=lambda rf: rf.withdraw(BOB, BOB_EMAIL)),
    Case("stripe-unsubscribed-in-klaviyo", STRIPE, lambda: invoice(RENEWAL), "Skipped: no_consent", BOB, "renewal",
         invoices=TWO_PAID, config=EMAIL_ONLY, setup=lambda rf: rf.unsubscribe(BOB_EMAIL)),
    Case("stripe-open-support-ticket", STRIPE, lambda: invoice(RENEWAL), "Skipped: suppressed", BOB, "renewal",
         invoices=TWO_PAID, config={"rules": {"first_win": {"ask": False}}},
         setup=lambda rf: rf.asked(BOB, BOB_EMAIL, open_support_ticket=True)),
    Case("stripe-asked-this-week", STRIPE, lambda: invoice(RENEWAL), "Skipped: frequency_capped", BOB, "renewal",
         invoices=TWO_PAID, setup=lambda rf: rf.asked(BOB, BOB_EMAIL)),
    Case("stripe-cooling-down", STRIPE, lambda: invoice(RENEWAL), "Skipped: cooling_down", BOB, "renewal",
         invoices=TWO_PAID, config={"caps": {"asks_per_week": 5}}, setup=lambda rf: rf.asked(BOB, BOB_EMAIL)),
    Case("stripe-renewals-do-not-ask", STRIPE, lambda: invoice(RENEWAL), "Skipped: moment_not_asking", BOB, "renewal",
         invoices=TWO_PAID, config={"rules": {"renewal": {"ask": False}}}),
    Case("stripe-not-a-fit", STRIPE, lambda: invoice(RENEWAL), "Skipped: not_a_fit", BOB, "renewal",
         invoices=TWO_PAID, config={"fit": [{"attribute": "plan", "op": "in", "value": ["enterprise"]}]}),
    Case("stripe-erased", STRIPE, lambda: invoice(RENEWAL), "Skipped: erased", BOB, "renewal", invoices=TWO_PAID,
         setup=lambda rf: rf.erase(BOB, BOB_EMAIL)),
    Case("stripe-no-email", STRIPE, lambda: invoice(RENEWAL, customer_email=None), "Skipped: no_email", BOB,
         "renewal", invoices=TWO_PAID),
    Case("stripe-quiet-hours", STRIPE, lambda: invoice(RENEWAL), "waiting", BOB, "renewal", invoices=TWO_PAID,
         config={"quiet_hours": _quiet_now()}),
    Case("stripe-referflow-unreachable", STRIPE, lambda: invoice(RENEWAL), "error", invoices=TWO_PAID,
         reachable=False),
    # -- Shopify: the customer's second order -> first_win
    Case("shopify-second-order-asks", SHOPIFY, lambda: shopify_order(SECOND_ORDER), "sent", SHOPIFY_BOB, "first_win",
         customers={SHOPIFY_BOB: shopify_customer(2)}, replay=lambda: shopify_order(SECOND_ORDER)),
    Case("shopify-first-order-is-no-moment", SHOPIFY, lambda: shopify_order("shopify_orders_paid_no_code.json"),
         NOT_A_MOMENT, customers={SHOPIFY_BOB: shopify_customer(1)}),
    Case("shopify-guest-checkout", SHOPIFY, lambda: shopify_order("shopify_orders_paid_guest.json"), NOT_A_MOMENT),
    Case("shopify-consent-withdrawn", SHOPIFY, lambda: shopify_order(SECOND_ORDER), "Skipped: no_consent",
         SHOPIFY_BOB, "first_win", customers={SHOPIFY_BOB: shopify_customer(2)}, config=EMAIL_ONLY,
         setup=lambda rf: rf.withdraw(SHOPIFY_BOB, BOB_EMAIL)),
    # -- HubSpot: NPS -> nps_response; a renewed deal -> renewal; a closed escalated ticket -> support_resolved
    Case("hubspot-nps-10-asks", HUBSPOT, lambda: hubspot_request(nps("10")), "sent", CAROL, "nps_response",
         crm=_carol, replay=lambda: hubspot_request(nps("10", attempt=1)), email="carol@example.com"),
    Case("hubspot-nps-6", HUBSPOT, lambda: hubspot_request(nps("6")), "Skipped: moment_rule_failed", CAROL,
         "nps_response", crm=_carol, email="carol@example.com"),
    Case("hubspot-nps-consent-withdrawn", HUBSPOT, lambda: hubspot_request(nps("10")), "Skipped: not_email", CAROL,
         "nps_response", crm=_carol, setup=lambda rf: rf.withdraw(CAROL, "carol@example.com"),
         email="carol@example.com"),
    Case("hubspot-renewed-deal-asks", HUBSPOT, lambda: hubspot_request(fixture("hubspot_deal_closed_won.json")),
         "sent", CAROL, "renewal", crm=_deal("existingbusiness"), email="carol@example.com"),
    Case("hubspot-new-business-deal", HUBSPOT, lambda: hubspot_request(fixture("hubspot_deal_closed_won.json")),
         NOT_A_MOMENT, crm=_deal("newbusiness"), email="carol@example.com"),
    Case("hubspot-escalated-ticket-closed-asks", HUBSPOT,
         lambda: hubspot_request(fixture("hubspot_ticket_closed.json")), "sent", CAROL, "support_resolved",
         crm=_ticket("HIGH"), email="carol@example.com"),
    Case("hubspot-ordinary-ticket-closed", HUBSPOT, lambda: hubspot_request(fixture("hubspot_ticket_closed.json")),
         NOT_A_MOMENT, crm=_ticket("LOW"), email="carol@example.com"),
    Case("hubspot-forged-request", HUBSPOT, lambda: hubspot_request(nps("10"), secret="not-the-app-secret"), "error",
         crm=_carol, email="carol@example.com"),
    Case("hubspot-stale-request", HUBSPOT, lambda: hubspot_request(nps("10"), age=7200), "error", crm=_carol,
         email="carol@example.com"),
    # -- the new-customer workflow asks referflow before it sends the link
    Case("new-customer-consent-withdrawn", CUSTOMER, lambda: _stripe_customer(), "Skipped: no_consent",
         trigger="When a Stripe customer is created", setup=lambda rf: rf.withdraw("cus_Newbie", "newbie@example.com"),
         email="newbie@example.com"),
    Case("new-customer-sent", CUSTOMER, lambda: _stripe_customer(), "sent", trigger="When a Stripe customer is created",
         email="newbie@example.com"),
]


def _stripe_customer() -> dict[str, Any]:
    event = fixture("stripe_customer_created.json", __CODE__="UNUSED")
    event["id"] = "evt_1QcusNewbie"
    event["data"]["object"].update(id="cus_Newbie", email="newbie@example.com")
    return event


# ---- running them ------------------------------------------------------------------------------

def _credentials(flavour: str, number: int, base: str, key: str) -> list[dict[str, Any]]:
    common = {"id": f"referflowMoment{number:03d}", "name": f"referflow API (moments {number})"}
    if flavour == "native":
        return [{**common, "type": "referflowApi", "data": {"baseUrl": base, "apiKey": key}}]
    return [{**common, "type": "httpHeaderAuth", "data": {"name": "Authorization", "value": f"Bearer {key}"}}]


SHARED_CREDENTIALS = [
    {"id": "klaviyoCredential", "name": "Klaviyo API", "type": "httpHeaderAuth",
     "data": {"name": "Authorization", "value": f"Klaviyo-API-Key {KLAVIYO_KEY}"}},
    {"id": "hubspotTokenCredential", "name": "HubSpot private app", "type": "httpHeaderAuth",
     "data": {"name": "Authorization", "value": f"Bearer {HUBSPOT_TOKEN}"}},
    {"id": "stripeApiCredential", "name": "Stripe account", "type": "stripeApi", "data": {"secretKey": STRIPE_KEY}},
    {"id": "shopifyCredential", "name": "Shopify store", "type": "shopifyAccessTokenApi",
     "data": {"shopSubdomain": "referflow-test", "accessToken": SHOPIFY_TOKEN, "appSecretKey": "shpss_fake"}},
]


def _workflow(case: Case, payload: Any, flavour: str, referflow_url: str, credential: dict[str, Any],
              fakes: dict[str, str]) -> dict[str, Any]:
    text = (pack.pack_dir() / case.workflow).read_text()
    for real, fake in fakes.items():
        if real.startswith("https://"):
            text = text.replace(real, fake)
    workflow = json.loads(text)
    if flavour == "native":
        workflow = to_native(workflow)
    settings = {"hubspot_webhook_url": HUBSPOT_URL, "hubspot_client_secret": HUBSPOT_SECRET,
                "shopify_admin_api": fakes["shopify"] + "/admin/api/2024-10", **case.settings}
    workflow = with_recorded_trigger(workflow, payload, referflow_url, case.trigger, settings)
    for node in workflow["nodes"]:
        for kind, auth in (node.get("credentials") or {}).items():
            if auth["id"] == "referflowApiCredential":
                node["credentials"][kind] = {"id": credential["id"], "name": credential["name"]}
    workflow["settings"] = {k: v for k, v in workflow["settings"].items() if k != "errorWorkflow"}
    return workflow


def execution(n8n: N8n, workflow_id: str) -> dict[str, Any]:
    """The workflow's (latest) execution from n8n's database: status, waitTill, nodes run, data."""
    with closing(sqlite3.connect(n8n.home / ".n8n" / "database.sqlite")) as db:
        row = db.execute("SELECT e.status, e.waitTill, d.data FROM execution_entity e JOIN execution_data d "
                         "ON d.executionId = e.id WHERE e.workflowId = ? ORDER BY e.id DESC LIMIT 1",
                         (workflow_id,)).fetchone()
    assert row is not None, f"no execution of {workflow_id}"
    data = _unflatten(json.loads(row[2]))
    return {"status": row[0], "wait_till": row[1], "runs": data["resultData"]["runData"],
            "error": data["resultData"].get("error")}


def output(run: dict[str, Any], node: str) -> list[dict[str, Any]]:
    """The items a node handed on (every run, every output)."""
    return [item["json"] for task in run["runs"].get(node, []) for out in (task.get("data") or {}).get("main", [])
            for item in out or []]


@pytest.fixture(scope="module", params=["http", "native"])
def moments(request: pytest.FixtureRequest, database_url: str, tmp_path_factory: pytest.TempPathFactory):
    """Run every case of one flavour (redeliveries in a second batch); yield what each did."""
    flavour = request.param
    if flavour == "native" and not package_built():
        pytest.skip("integrations/n8n-nodes-referflow is not built (npm ci && npm run build): the native "
                    "flavour of the moment workflows did NOT run")
    tmp = tmp_path_factory.mktemp(f"n8n-moments-{flavour}")
    with live_server(database_url, tmp) as base, ExitStack() as stack:
        n8n = N8n(tmp / "n8n")
        if flavour == "native":
            install_community_package(n8n.home)
        credentials = list(SHARED_CREDENTIALS)
        folder = tmp / "workflows"
        folder.mkdir()
        runs, batches = {}, [[], []]
        for number, case in enumerate(CASES):
            config = {**PROGRAM_CONFIG, "moments": case.config} if case.config else PROGRAM_CONFIG
            key, session = live_program(base, config, name=f"moments {flavour} {case.id}")
            program_id = session.get(f"{base}/v1/program", timeout=10).json()["id"]
            rf = Referflow(base, key, session, program_id)
            case.setup(rf)
            klaviyo, hubspot = stack.enter_context(FakeKlaviyo()), stack.enter_context(FakeHubSpotCrm())
            stripe = stack.enter_context(FakeStripeInvoices(case.invoices))
            shopify = stack.enter_context(FakeShopifyCustomers(case.customers))
            case.crm(hubspot)
            referflow_url = base if case.reachable else f"http://127.0.0.1:{free_port()}"
            credential = _credentials(flavour, number, referflow_url, key)[0]
            credentials.append(credential)
            fakes = {"https://a.klaviyo.com": klaviyo.base, "https://api.hubapi.com": hubspot.base,
                     "https://api.stripe.com": stripe.base, "shopify": shopify.base}
            ids = []
            for phase, payload in enumerate([case.payload, *([case.replay] if case.replay else [])]):
                workflow_id = f"moment{phase}{number:09d}"
                workflow = _workflow(case, payload(), flavour, referflow_url, credential, fakes)
                # Tags play no part in a run; n8n 1.123 fails importing one tag for many workflows.
                (folder / f"{workflow_id}.json").write_text(json.dumps({**workflow, "id": workflow_id, "tags": []}))
                batches[phase].append(workflow_id)
                ids.append(workflow_id)
            runs[case.id] = {"rf": rf, "ids": ids, "klaviyo": klaviyo, "hubspot": hubspot, "stripe": stripe,
                             "shopify": shopify}
        n8n.import_credentials(credentials)
        imported = n8n.run("import:workflow", "--separate", f"--input={folder}")
        assert imported.returncode == 0, imported.stderr[-2000:]
        reports: dict[str, dict[str, Any]] = {}
        for phase, ids in enumerate(batches):
            report = tmp / f"batch{phase}.json"
            batch = n8n.run("executeBatch", f"--ids={','.join(ids)}", f"--output={report}", "--retries=0",
                            timeout=900)
            assert report.exists(), (batch.stdout[-3000:], batch.stderr[-3000:])
            reports.update({e["workflowId"]: e for e in json.loads(report.read_text())["executions"]})
        for run in runs.values():
            run["executions"] = [{**reports[i], **execution(n8n, i)} for i in run["ids"]]
        yield {"runs": runs, "n8n": n8n, "base": base, "flavour": flavour, "tmp": tmp, "stack": stack}


def _sent_asks(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in run["klaviyo"].events if e["metric"] == "Referral Ask"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_each_moment_case_ends_where_referflow_said(moments, case):
    run = moments["runs"][case.id]
    first = run["executions"][0]
    failed = first["executionStatus"] in ("error", "warning") or first["status"] == "error"
    assert failed is (case.ends == "error"), first
    if case.ends == "error":  # a forged or stale request, referflow unreachable: nothing sent, the run fails
        assert run["klaviyo"].calls == [] and run["hubspot"].writes() == []
        return
    if case.ends == "waiting":  # quiet hours: the run waits for referflow's send_at, nothing sent yet
        assert first["status"] == "waiting", first
        [check] = output(first, "May referflow send it now")
        assert (check["send"], check["reason"]) == (False, "quiet_hours"), check
        waits = datetime.fromisoformat(first["wait_till"]).replace(tzinfo=UTC)
        assert waits - datetime.fromisoformat(check["send_at"]) == timedelta(seconds=5), (first["wait_till"], check)
    else:
        assert first["status"] == "success", first
        assert case.ends == "sent" or case.ends in first["runs"], sorted(first["runs"])
    if case.person is not None:  # referflow's decision, as the workflow got it
        [decision] = output(first, "Record the moment")
        erased = case.ends == "Skipped: erased"  # referflow keeps no id of an erased person
        assert (decision["external_id"].startswith("erased:") if erased else decision["external_id"]) in (
            True, case.person), decision
        assert decision["moment"] == case.moment, decision
        skipped = case.ends.removeprefix("Skipped: ") if case.ends.startswith("Skipped: ") else None
        if skipped == "not_email":  # an ask, in another channel
            assert (decision["decision"], decision["channel"]) == ("ask", "in_app"), decision
        else:
            assert (decision["decision"], decision["skip_reason"]) == ("skip" if skipped else "ask", skipped), decision
    if case.ends == "sent":
        if case.workflow == CUSTOMER:
            assert [e["email"] for e in run["klaviyo"].events] == [case.email]
            return
        [ask] = output(first, "Record the moment")
        [event] = _sent_asks(run)
        assert (event["email"], event["unique_id"]) == (case.email, f"referral-ask-{ask['id']}")
        assert event["properties"] == {"moment": case.moment, "referral_code": ask["link"]["code"],
                                       "referral_link": ask["link"]["url"], "ask_id": ask["id"]}
        contact = run["hubspot"].by_email[case.email]
        assert (contact["referral_code"], contact["referral_link"]) == (ask["link"]["code"], ask["link"]["url"])
        assert contact["referral_asked_at"][:19] == ask["decided_at"][:19]
        # referflow was asked right before the send, about this ask (which does not count against itself)
        assert output(first, "May referflow send it now")[-1]["send"] is True
        assert [a["id"] for a in run["rf"].asks(case.person)] == [ask["id"]]
    else:  # the person gets nothing through this path
        assert run["klaviyo"].calls == [] and run["hubspot"].writes() == [], (run["klaviyo"].calls,
                                                                               run["hubspot"].writes())
        assert not any(node in first["runs"] for node in SENDERS)


def test_ordinary_traffic_records_nothing_in_referflow(moments):
    """Events that are no moment are not sent to referflow: no decision, no person."""
    runs = moments["runs"]
    for case in ("stripe-first-invoice-is-no-moment", "stripe-free-trial-invoice-is-no-moment",
                 "shopify-first-order-is-no-moment", "hubspot-new-business-deal", "hubspot-ordinary-ticket-closed"):
        person = BOB if case.startswith("stripe") else SHOPIFY_BOB if case.startswith("shopify") else CAROL
        assert runs[case]["rf"].asks(person) == [], case
        assert "Record the moment" not in runs[case]["executions"][0]["runs"], case
    # A guest checkout has no customer to read or decide for.
    assert runs["shopify-guest-checkout"]["shopify"].calls == []


def test_a_redelivered_event_is_decided_once_and_sent_once(moments):
    """The provider delivers the event again: referflow answers its first decision (the moment's id),
    the ask goes to Klaviyo again with the same unique_id, which Klaviyo dedupes."""
    for case, person in (("stripe-renewal-asks", BOB), ("shopify-second-order-asks", SHOPIFY_BOB),
                         ("hubspot-nps-10-asks", CAROL)):
        run = moments["runs"][case]
        assert all(e["status"] == "success" for e in run["executions"]), run["executions"]
        asks = run["rf"].asks(person)
        assert len(asks) == 1 and asks[0]["decision"] == "ask", asks
        assert len(_sent_asks(run)) == 1
        replayed = output(run["executions"][1], "Record the moment")
        assert [r["id"] for r in replayed] == [asks[0]["id"]]


def test_the_hubspot_batch_records_the_deal_and_ignores_the_company(moments):
    """hubspot_deal_closed_won.json batches the deal's stage change with a company creation."""
    run = moments["runs"]["hubspot-renewed-deal-asks"]
    assert NOT_A_MOMENT in run["executions"][0]["runs"]
    assert [a["moment"] for a in run["rf"].asks(CAROL)] == ["renewal"]


def test_the_nps_score_reaches_referflow_as_data(moments):
    run = moments["runs"]["hubspot-nps-6"]
    [ask] = run["rf"].asks(CAROL)
    assert ask["data"] == {"score": 6}
    assert [o for o in ask["outcomes"] if o["rule"] == "moment_rule"][0]["outcome"] == "moment_rule_failed"


def test_the_new_customer_link_is_created_but_not_sent_without_consent(moments):
    run = moments["runs"]["new-customer-consent-withdrawn"]
    advocate = run["rf"].session.get(f"{run['rf'].base}/v1/advocates/by-external-id/cus_Newbie", timeout=10)
    assert advocate.status_code == 200 and advocate.json()["codes"]  # enrolled: the link exists
    assert output(run["executions"][0], "May referflow send it now")[0]["reason"] == "no_consent"


def test_an_ask_in_quiet_hours_is_sent_when_they_end(moments):
    """Quiet hours that end within the minute: the run waits in n8n (under 65 s n8n waits in the
    process), asks referflow again and sends."""
    n8n, base, flavour = moments["n8n"], moments["base"], moments["flavour"]
    klaviyo, hubspot = moments["stack"].enter_context(FakeKlaviyo()), moments["stack"].enter_context(FakeHubSpotCrm())
    stripe = moments["stack"].enter_context(FakeStripeInvoices(TWO_PAID))
    key, session = live_program(base, PROGRAM_CONFIG, name=f"moments {flavour} quiet hours end")
    rf = Referflow(base, key, session, "")
    credential = _credentials(flavour, 999, base, key)[0]
    n8n.import_credentials([credential])
    case = Case("quiet-hours-end", STRIPE, lambda: invoice(RENEWAL), "sent")
    fakes = {"https://a.klaviyo.com": klaviyo.base, "https://api.hubapi.com": hubspot.base,
             "https://api.stripe.com": stripe.base, "shopify": "http://127.0.0.1:9"}
    n8n.import_workflow(_workflow(case, invoice(RENEWAL), flavour, base, credential, fakes), "momentQuietEnds1")
    while datetime.now(UTC).second > 15:  # the quiet hours end at the next minute, 45-60 s from now
        time.sleep(1)
    now = datetime.now(UTC)
    end = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    config = {**PROGRAM_CONFIG, "moments": {"quiet_hours": {"start": (now - timedelta(hours=1)).strftime("%H:%M"),
                                                            "end": end.strftime("%H:%M")}}}
    assert session.put(f"{base}/v1/program/config", json={"config": config}, timeout=10).status_code == 200
    time.sleep(6)  # the other server process's key cache holds the old config for up to 5 s
    result = n8n.execute("momentQuietEnds1")
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
    run = execution(n8n, "momentQuietEnds1")
    checks = output(run, "May referflow send it now")
    assert [c["reason"] for c in checks] == ["quiet_hours", None], checks
    assert datetime.fromisoformat(checks[0]["send_at"]) == end
    assert len(run["runs"]["Wait for the end of quiet hours"]) == 1
    [ask] = rf.asks(BOB)
    assert ask["send_at"] is not None and datetime.fromisoformat(ask["send_at"]) == end
    [event] = [e for e in klaviyo.events if e["metric"] == "Referral Ask"]
    assert event["unique_id"] == f"referral-ask-{ask['id']}" and datetime.now(UTC) >= end


# ---- reward fulfilment under `n8n start`: the send rules for rewards --------------------------------

SIGNING_KEY = "n8n-moments-signing-key-0123456789abcdefghij"


def _delivery(webhook_id: str, recipient: str, email: str) -> tuple[dict[str, str], bytes]:
    payload = {"id": f"evt_{webhook_id}", "type": "reward.issued", "created_at": "2026-11-29T10:00:00Z",
               "program_id": "prg_moments", "data": {"issuer": "manual", "external_id": None, "gift_card": None,
                                                     "recipient": {"side": "friend", "external_id": recipient,
                                                                   "email": email}}}
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    at = datetime.now(UTC)
    secret = "whsec_" + base64.b64encode(SIGNING_KEY.encode()).decode()
    return ({"content-type": "application/json; charset=utf-8", "webhook-id": webhook_id,
             "webhook-timestamp": str(int(at.timestamp())),
             "webhook-signature": Webhook(secret).sign(webhook_id, at, body)}, body.encode())


def test_rewards_reach_nobody_who_withdrew_was_erased_or_is_in_quiet_hours(database_url, tmp_path):
    """The reward workflow (http flavour) asks referflow (purpose reward) before it sends: a withdrawn
    or erased recipient gets nothing (200 not_sent, the Skipped node in the run); in quiet hours the
    delivery is answered 200 deferred and the run waits; anyone else gets their reward email."""
    with (live_server(database_url, tmp_path) as base, FakeKlaviyo() as klaviyo, FakeHubSpotCrm() as hubspot):
        hubspot.properties.add("referral_status")
        fakes = {"https://a.klaviyo.com": klaviyo.base, "https://api.hubapi.com": hubspot.base}
        credentials = list(SHARED_CREDENTIALS[:2])
        workflows, programs = {}, {}
        for name, config, path in (("rules", PROGRAM_CONFIG, "moments-rewards"),
                                   ("quiet", {**PROGRAM_CONFIG, "moments": {"quiet_hours": _quiet_now()}},
                                    "moments-rewards-quiet")):
            key, session = live_program(base, config, name=f"rewards {name}")
            programs[name] = Referflow(base, key, session, "")
            credential = _credentials("http", len(credentials), base, key)[0]
            credentials.append(credential)
            text = (pack.pack_dir() / "reward-fulfilment.json").read_text()
            for real, fake in fakes.items():
                text = text.replace(real, fake)
            workflow = json.loads(text)
            pack.set_settings(workflow, {"signing_key": SIGNING_KEY, "referflow_base_url": base})
            for node in workflow["nodes"]:
                if (node.get("credentials") or {}).get("httpHeaderAuth", {}).get("id") == "referflowApiCredential":
                    node["credentials"]["httpHeaderAuth"] = {"id": credential["id"], "name": credential["name"]}
                if node["type"] == "n8n-nodes-base.webhook":
                    node["parameters"]["path"] = path
                    node["webhookId"] = f"00000000-0000-4000-8000-00000000000{len(workflows)}"
            workflow["settings"] = {k: v for k, v in workflow["settings"].items() if k != "errorWorkflow"}
            workflows[f"momentRewards00{len(workflows) + 1}"] = (workflow, path)
        rules = programs["rules"]
        rules.withdraw("f-withdrawn", "withdrawn@example.com")
        rules.erase("f-erased", "erased@example.com")
        n8n = N8n(tmp_path / "n8n")
        n8n.import_credentials(credentials)
        for workflow_id, (workflow, _) in workflows.items():
            n8n.import_workflow({**workflow, "tags": []}, workflow_id)
            n8n.activate(workflow_id)
        port = free_port()
        answers = {}
        with n8n.serve(port, tmp_path / "n8n-start.log"):
            hook = f"http://127.0.0.1:{port}/webhook/moments-rewards"
            for _ in range(90):  # the production webhook is registered a little after /healthz answers
                if requests.post(hook, timeout=10, json={}).status_code != 404:
                    break
                time.sleep(1)
            for case, recipient, email, path in (
                    ("withdrawn", "f-withdrawn", "withdrawn@example.com", "moments-rewards"),
                    ("erased", "f-erased", "erased@example.com", "moments-rewards"),
                    ("no external id, withdrawn email", None, "withdrawn@example.com", "moments-rewards"),
                    ("quiet hours", "f-quiet", "quiet@example.com", "moments-rewards-quiet"),
                    ("allowed", "f-ok", "ok@example.com", "moments-rewards")):
                headers, body = _delivery(f"msg_{len(answers)}", recipient, email)
                answer = requests.post(f"http://127.0.0.1:{port}/webhook/{path}", data=body, headers=headers,
                                       timeout=60)
                answers[case] = (answer.status_code, answer.json())
            time.sleep(2)
            sent = sorted(e["email"] for e in klaviyo.events)
            contacts = sorted(hubspot.by_email)
        assert answers["withdrawn"] == (200, {"outcome": "not_sent", "reason": "no_consent", "changed": False})
        assert answers["no external id, withdrawn email"][1]["reason"] == "no_consent"
        assert answers["erased"] == (200, {"outcome": "not_sent", "reason": "erased", "changed": False})
        status, quiet = answers["quiet hours"]
        assert (status, quiet["outcome"]) == (200, "deferred") and quiet["send_at"]
        assert answers["allowed"] == (200, {"outcome": "fulfilled", "changed": True})
        assert sent == ["ok@example.com"] and contacts == ["ok@example.com"]
        assert execution(n8n, "momentRewards002")["status"] == "waiting"  # until referflow's send_at
        for case, node in (("withdrawn", "Skipped: no_consent"), ("erased", "Skipped: erased")):
            assert answers[case][0] == 200 and node  # (the Skipped node of each run, below)
        with closing(sqlite3.connect(n8n.home / ".n8n" / "database.sqlite")) as db:
            ids = [row[0] for row in db.execute("SELECT workflowId FROM execution_entity ORDER BY id")]
        skipped = [name for name in ("Skipped: no_consent", "Skipped: erased")
                   if any(name in _runs_of(n8n, i) for i in ids)]
        assert skipped == ["Skipped: no_consent", "Skipped: erased"]


def _runs_of(n8n: N8n, workflow_id: str) -> set[str]:
    """The nodes every execution of a workflow ran."""
    with closing(sqlite3.connect(n8n.home / ".n8n" / "database.sqlite")) as db:
        rows = db.execute("SELECT d.data FROM execution_entity e JOIN execution_data d ON d.executionId = e.id "
                          "WHERE e.workflowId = ?", (workflow_id,)).fetchall()
    return {node for (data,) in rows for node in _unflatten(json.loads(data))["resultData"]["runData"]}
