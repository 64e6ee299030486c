"""Workflows of the pack run end to end in a real n8n against a running referflow."""

from __future__ import annotations

import json
import time

import pytest
import requests

from referflow import workflows as pack
from tests.conftest import ADMIN_TOKEN, PROGRAM_CONFIG
from tests.live import live_server
from tests.n8n_harness import N8n, n8n_binary, with_recorded_trigger

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(n8n_binary() is None, reason="n8n is not installed in "
                                 "~/.cache/referflow-n8n: the n8n end-to-end tests did NOT run")]
FIXTURES = pack.pack_dir().parent / "tests" / "fixtures"


def _fixture(name, code=None):
    text = (FIXTURES / name).read_text()
    return json.loads(text.replace("__CODE__", code) if code else text)


@pytest.fixture()
def stack(database_url, settings, tmp_path):
    with live_server(database_url, tmp_path) as base:
        created = requests.post(f"{base}/v1/admin/programs", timeout=10,
                                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                                json={"name": "n8n", "config": PROGRAM_CONFIG}).json()
        key = created["api_key"]["key"]
        n8n = N8n(tmp_path / "n8n")
        n8n.import_credentials([{"id": "referflowApiCredential", "name": "referflow API",
                                 "type": "httpHeaderAuth",
                                 "data": {"name": "Authorization", "value": f"Bearer {key}"}}])
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        yield base, session, n8n


def _run(n8n, base, file, payload, workflow_id):
    workflow = json.loads((pack.pack_dir() / file).read_text())
    n8n.import_workflow(with_recorded_trigger(workflow, payload, base), workflow_id)
    result = n8n.execute(workflow_id)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    return result


def _friend_status(session, base, friend):
    person = session.get(f"{base}/v1/people/{friend}", timeout=10).json()
    return person["referred_as_friend"][0]["status"] if person.get("referred_as_friend") else None


def test_stripe_workflow_claims_qualifies_and_reverses(stack):
    base, session, n8n = stack
    code = session.post(f"{base}/v1/links", timeout=10, json={
        "advocate": {"external_id": "cus_AdvocateAnn", "email": "ann@example.com"}}).json()["code"]
    _run(n8n, base, "stripe-to-referral.json",
         _fixture("stripe_checkout_session_completed.json", code), "stripeWorkflow0001")
    assert _friend_status(session, base, "cus_FriendBob") == "pending"
    invoice = _fixture("stripe_invoice_paid.json")
    invoice["type"] = "invoice.payment_succeeded"  # the n8n Stripe Trigger's name for it
    invoice["data"]["object"]["status_transitions"]["paid_at"] = int(time.time())
    _run(n8n, base, "stripe-to-referral.json", invoice, "stripeWorkflow0002")
    assert _friend_status(session, base, "cus_FriendBob") == "held"
    refund = _fixture("stripe_charge_refunded.json")
    refund["created"] = int(time.time())
    _run(n8n, base, "stripe-to-referral.json", refund, "stripeWorkflow0003")
    assert _friend_status(session, base, "cus_FriendBob") == "reversed"
    # The same Stripe event again (n8n retried): the Idempotency-Key replays, nothing changes.
    _run(n8n, base, "stripe-to-referral.json", refund, "stripeWorkflow0004")
    history = session.get(f"{base}/v1/people/cus_FriendBob", timeout=10).json()
    assert history["referred_as_friend"][0]["status"] == "reversed"


def test_review_digest_lists_waiting_referrals(stack):
    base, session, n8n = stack
    code = session.post(f"{base}/v1/links", timeout=10, json={
        "advocate": {"external_id": "a1", "email": "a1@example.com"}}).json()["code"]
    session.post(f"{base}/v1/referrals/claim", timeout=10, json={
        "code": code, "friend": {"external_id": "f1", "email": "f1@mailinator.com"}})
    result = _run(n8n, base, "review-digest.json", {}, "digestWorkflow0001")
    assert "1 referral(s) waiting for review" in result.stdout


def test_reward_workflow_verifies_referflow_webhooks_and_calls_klaviyo(database_url, settings,
                                                                        tmp_path):
    import subprocess

    from tests.fakes.klaviyo import API_KEY, FakeKlaviyo
    from tests.live import free_port

    port = free_port()
    with FakeKlaviyo() as klaviyo, live_server(database_url, tmp_path,
                                               REFERFLOW_ALLOW_PRIVATE_WEBHOOK_URLS="true") as base:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        key = requests.post(f"{base}/v1/admin/programs", headers=admin, timeout=10, json={
            "name": "n8n", "config": {**PROGRAM_CONFIG, "hold_days": 0}}).json()["api_key"]["key"]
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        hook = f"http://127.0.0.1:{port}/webhook/referflow-rewards"
        sub = session.post(f"{base}/v1/webhooks", timeout=10, json={
            "url": hook, "events": ["referral.approved", "reward.issued"]}).json()
        n8n = N8n(tmp_path / "n8n")
        n8n.import_credentials([{"id": "klaviyoCredential", "name": "Klaviyo API",
                                 "type": "httpHeaderAuth",
                                 "data": {"name": "Authorization",
                                          "value": f"Klaviyo-API-Key {API_KEY}"}}])
        workflow = json.loads((pack.pack_dir() / "reward-fulfilment.json").read_text())
        for node in workflow["nodes"]:
            if node["name"] == "Settings":
                for item in node["parameters"]["assignments"]["assignments"]:
                    if item["name"] == "signing_key":
                        item["value"] = sub["signing_key"]
            if node["name"] == "Send the event to Klaviyo":
                node["parameters"]["url"] = f"{klaviyo.base}/api/events"
        n8n.import_workflow(workflow, "rewardWorkflow0001")
        activated = n8n.run("update:workflow", "--id=rewardWorkflow0001", "--active=true")
        assert activated.returncode == 0, activated.stderr[-2000:]
        env = {**n8n.env, "N8N_PORT": str(port), "N8N_LISTEN_ADDRESS": "127.0.0.1"}
        log = (tmp_path / "n8n-start.log").open("w")
        server = subprocess.Popen([str(n8n.binary), "start"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok:
                        break
                except requests.RequestException:
                    time.sleep(1)
            # The production webhook is registered a little after /healthz answers: poll it with
            # the forged delivery (which must never reach Klaviyo) until it is there.
            forged_headers = {"webhook-id": "msg_x", "webhook-timestamp": str(int(time.time())),
                              "webhook-signature": "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}
            for _ in range(90):
                forged = requests.post(hook, timeout=10, headers=forged_headers,
                                       json={"id": "evt_forged", "type": "reward.issued"})
                if forged.status_code != 404:
                    break
                time.sleep(1)
            assert forged.status_code == 200  # n8n acknowledges, then the run stops on the check
            code = session.post(f"{base}/v1/links", timeout=10, json={
                "advocate": {"external_id": "a1", "email": "a1@example.com"}}).json()["code"]
            referral = session.post(f"{base}/v1/referrals/claim", timeout=10, json={
                "code": code, "friend": {"external_id": "f1", "email": "f1@example.com"}}).json()
            session.post(f"{base}/v1/referrals/qualify", timeout=10, json={
                "referral_id": referral["id"], "event": {"id": "in_1", "type": "first_order",
                "amount": 100, "currency": "EUR", "occurred_at": "2026-11-20T10:00:00Z"}})
            session.post(f"{base}/v1/gift-cards", timeout=10, json={"referral_id": referral["id"]})
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(klaviyo.events) < 3:
                time.sleep(1)
            metrics = sorted(e["metric"] for e in klaviyo.events)
            assert metrics == ["Referral Approved", "Reward Issued", "Reward Issued"], (
                metrics, (tmp_path / "n8n-start.log").read_text()[-3000:])
            assert "evt_forged" not in {e["unique_id"] for e in klaviyo.events}
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()


def test_shopify_workflow_claims_and_qualifies_from_a_paid_order(stack):
    base, session, n8n = stack
    code = session.post(f"{base}/v1/links", timeout=10, json={
        "advocate": {"external_id": "adv-1", "email": "ann@example.com"}}).json()["code"]
    order = _fixture("shopify_orders_paid.json", code)
    workflow = json.loads((pack.pack_dir() / "shopify-to-referral.json").read_text())
    # Only the order trigger fires in this run: the other two triggers are left out.
    workflow["nodes"] = [n for n in workflow["nodes"] if n["name"] not in (
        "When a Shopify customer is created", "When a Shopify refund is created",
        "Claim from the customer tag", "Reverse after the refund")]
    for name in ("When a Shopify customer is created", "When a Shopify refund is created",
                 "Claim from the customer tag", "Reverse after the refund"):
        workflow["connections"].pop(name, None)
    workflow["connections"]["Settings"] = {"main": [[{"node": "Claim from the discount code",
                                                      "type": "main", "index": 0}]]}
    n8n.import_workflow(with_recorded_trigger(workflow, order, base), "shopifyWorkflow0001")
    result = n8n.execute("shopifyWorkflow0001")
    assert result.returncode == 0, result.stdout[-3000:]
    assert _friend_status(session, base, "706405506930370084") == "held"


def test_new_customer_workflow_creates_the_link(stack):
    base, session, n8n = stack
    customer = _fixture("stripe_customer_created.json", "UNUSED")
    workflow = json.loads((pack.pack_dir() / "new-customer-to-advocate.json").read_text())
    workflow["nodes"] = [n for n in workflow["nodes"]
                         if n["name"] not in ("Send the link to Klaviyo", "Write the link to HubSpot")]
    workflow["connections"]["Create the advocate's referral link"]["main"][0] = []
    workflow["connections"].pop("Send the link to Klaviyo")
    workflow["connections"].pop("Write the link to HubSpot")
    n8n.import_workflow(with_recorded_trigger(workflow, customer, base), "advocateWorkflow0001")
    result = n8n.execute("advocateWorkflow0001")
    assert result.returncode == 0, result.stdout[-3000:]
    advocate = session.get(f"{base}/v1/advocates/by-external-id/cus_FriendBob", timeout=10).json()
    assert advocate["email"] == "bob@example.com" and len(advocate["codes"]) == 1


def test_hubspot_workflow_claims_a_new_contact_and_qualifies_the_won_deal(stack):
    from tests.fakes.hubspot import TOKEN, FakeHubSpot

    base, session, n8n = stack
    code = session.post(f"{base}/v1/links", timeout=10, json={
        "advocate": {"external_id": "adv-h", "email": "ann@example.com"}}).json()["code"]
    n8n.import_credentials([{"id": "hubspotTokenCredential", "name": "HubSpot private app",
                             "type": "httpHeaderAuth",
                             "data": {"name": "Authorization", "value": f"Bearer {TOKEN}"}}])
    with FakeHubSpot() as hubspot:
        hubspot.contacts["123"] = {"email": "carol@example.com", "referral_code": code}
        hubspot.deals["987"] = {"properties": {"amount": "1500.50", "deal_currency_code": "EUR",
                                               "closedate": "2026-11-22T12:00:00Z"},
                                "contacts": ["123"]}
        text = (pack.pack_dir() / "hubspot-to-referral.json").read_text()
        workflow = json.loads(text.replace("https://api.hubapi.com", hubspot.base))
        contact, deal = (_fixture("hubspot_contact_creation.json")[0],
                         _fixture("hubspot_deal_closed_won.json")[0])
        for number, event in enumerate((contact, deal)):
            n8n.import_workflow(with_recorded_trigger(workflow, event, base), f"hubspotWorkflow000{number}")
            result = n8n.execute(f"hubspotWorkflow000{number}")
            assert result.returncode == 0, result.stdout[-3000:]
    person = session.get(f"{base}/v1/people/123", timeout=10).json()
    assert person["referred_as_friend"][0]["status"] == "held"
