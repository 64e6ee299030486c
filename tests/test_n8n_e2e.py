"""Workflows of the pack run end to end in a real n8n against a running referflow."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest
import requests

from referflow import workflows as pack
from tests.conftest import PROGRAM_CONFIG
from tests.live import live_program, live_server
from tests.n8n_harness import MISSING_REASON, N8n, n8n_missing, with_recorded_trigger

pytestmark = [pytest.mark.slow, pytest.mark.n8n, pytest.mark.skipif(n8n_missing(), reason=MISSING_REASON)]
FIXTURES = pack.pack_dir().parent / "tests" / "fixtures"


def _fixture(name, code=None):
    text = (FIXTURES / name).read_text()
    return json.loads(text.replace("__CODE__", code) if code else text)


@pytest.fixture()
def stack(database_url, settings, tmp_path):
    with live_server(database_url, tmp_path) as base:
        key, session = live_program(base, name="n8n")
        n8n = N8n(tmp_path / "n8n")
        n8n.import_credentials([{"id": "referflowApiCredential", "name": "referflow API",
                                 "type": "httpHeaderAuth",
                                 "data": {"name": "Authorization", "value": f"Bearer {key}"}}])
        yield base, session, n8n


def _friend_status(session, base, friend):
    person = session.get(f"{base}/v1/people/{friend}", timeout=10).json()
    return person["referred_as_friend"][0]["status"] if person.get("referred_as_friend") else None


# An agency client with every provider, its own credential names, prefix and tags.
AGENCY = {"client": "acme", "referflow_base_url": "http://referflow.invalid", "currency": "EUR",
          "providers": ["stripe", "shopify", "hubspot", "klaviyo"], "name_prefix": "Acme | ",
          "tags": ["client-acme"], "credentials": {
              "referflow": "referflow API (Acme)", "shopify": "Shopify (Acme)",
              "hubspot_token": "HubSpot (Acme)", "klaviyo": "Klaviyo (Acme)"}}


def _workflow_text(file, variant, tmp_path):
    """The pack's file, or the file rendered for the AGENCY client."""
    if variant == "pack":
        return (pack.pack_dir() / file).read_text()
    out = tmp_path / "rendered"
    if not out.exists():
        pack.render(AGENCY, out)
    return (out / f"{AGENCY['client']}-{file}").read_text()


def _credential(variant, kind, type_, data):
    """A credential as the user creates it: the pack's default name, or the client's own name and
    a new id (so n8n must re-link the rendered workflow's credential by name on import)."""
    ids = {"referflow": "referflowApiCredential", "klaviyo": "klaviyoCredential",
           "hubspot_token": "hubspotTokenCredential", "shopify": "shopifyCredential"}
    names = {"referflow": "referflow API", "klaviyo": "Klaviyo API", "hubspot_token": "HubSpot private app",
             "shopify": "Shopify store"}
    if variant == "rendered":
        return {"id": f"acme{kind.title().replace('_', '')}Cred", "name": AGENCY["credentials"][kind],
                "type": type_, "data": data}
    return {"id": ids[kind], "name": names[kind], "type": type_, "data": data}


# The pack file itself is run case by case in tests/test_n8n_ops_workflows.py; here, rendered.
@pytest.mark.parametrize("variant", ["rendered"])
def test_reward_workflow_verifies_referflow_webhooks_then_calls_klaviyo_and_hubspot(database_url, settings,
                                                                                  tmp_path, variant):
    from tests.fakes.hubspot import TOKEN, FakeHubSpot
    from tests.fakes.klaviyo import API_KEY, FakeKlaviyo
    from tests.live import free_port

    port = free_port()
    path = "referflow-rewards" if variant == "pack" else "acme-referflow-rewards"
    with FakeKlaviyo() as klaviyo, FakeHubSpot() as hubspot, live_server(
            database_url, tmp_path, REFERFLOW_ALLOW_PRIVATE_WEBHOOK_URLS="true") as base:
        hubspot.properties.add("referral_status")
        key, session = live_program(base, {**PROGRAM_CONFIG, "hold_days": 0}, name="n8n")
        hook = f"http://127.0.0.1:{port}/webhook/{path}"
        sub = session.post(f"{base}/v1/webhooks", timeout=10, json={
            "url": hook, "events": ["referral.approved", "reward.issued"]}).json()
        n8n = N8n(tmp_path / "n8n")
        n8n.import_credentials([
            _credential(variant, "referflow", "httpHeaderAuth", {"name": "Authorization", "value": f"Bearer {key}"}),
            _credential(variant, "klaviyo", "httpHeaderAuth",
                        {"name": "Authorization", "value": f"Klaviyo-API-Key {API_KEY}"}),
            _credential(variant, "hubspot_token", "httpHeaderAuth",
                        {"name": "Authorization", "value": f"Bearer {TOKEN}"})])
        text = _workflow_text("reward-fulfilment.json", variant, tmp_path)
        workflow = json.loads(text.replace("https://a.klaviyo.com", klaviyo.base)
                              .replace("https://api.hubapi.com", hubspot.base))
        pack.set_settings(workflow, {"signing_key": sub["signing_key"], "referflow_base_url": base})
        n8n.import_workflow(workflow, "rewardWorkflow0001")
        n8n.activate("rewardWorkflow0001")
        with n8n.serve(port, tmp_path / "n8n-start.log"):
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
            assert forged.status_code == 401  # the workflow refuses it: nothing is sent
            code = session.post(f"{base}/v1/links", timeout=10, json={
                "advocate": {"external_id": "a1", "email": "a1@example.com"}}).json()["code"]
            referral = session.post(f"{base}/v1/referrals/claim", timeout=10, json={
                "code": code, "friend": {"external_id": "f1", "email": "f1@example.com"}}).json()
            session.post(f"{base}/v1/referrals/qualify", timeout=10, json={
                "referral_id": referral["id"], "event": {"id": "in_1", "type": "first_order",
                "amount": 100, "currency": "EUR", "occurred_at": "2026-11-20T10:00:00Z"}})
            session.post(f"{base}/v1/gift-cards", timeout=10, json={"referral_id": referral["id"]})
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (len(klaviyo.events) < 3 or len(hubspot.by_email) < 2):
                time.sleep(1)
            received = sorted((e["metric"], e["email"]) for e in klaviyo.events)
            # Each reward's email goes to the person who receives it.
            assert received == [("Referral Approved", "f1@example.com"), ("Reward Issued", "a1@example.com"),
                                ("Reward Issued", "f1@example.com")], (
                received, (tmp_path / "n8n-start.log").read_text()[-3000:])
            assert "evt_forged" not in {e["unique_id"] for e in klaviyo.events}
            assert {email: c["referral_status"] for email, c in hubspot.by_email.items()} == {
                "a1@example.com": "rewarded", "f1@example.com": "rewarded"}


def test_a_rendered_client_pack_runs_end_to_end(stack, tmp_path):
    """The pack rendered for an agency client: credentials re-linked by the client's names."""
    from tests.fakes.hubspot import TOKEN, FakeHubSpot
    from tests.fakes.klaviyo import API_KEY, FakeKlaviyo

    base, session, n8n = stack
    key = session.headers["Authorization"].split(" ", 1)[1]
    n8n.import_credentials([
        _credential("rendered", "referflow", "httpHeaderAuth", {"name": "Authorization", "value": f"Bearer {key}"}),
        _credential("rendered", "klaviyo", "httpHeaderAuth",
                    {"name": "Authorization", "value": f"Klaviyo-API-Key {API_KEY}"}),
        _credential("rendered", "hubspot_token", "httpHeaderAuth",
                    {"name": "Authorization", "value": f"Bearer {TOKEN}"})])
    code = session.post(f"{base}/v1/links", timeout=10, json={
        "advocate": {"external_id": "cus_AdvocateAnn", "email": "ann@example.com"}}).json()["code"]
    with FakeKlaviyo() as klaviyo, FakeHubSpot() as hubspot:
        hubspot.properties |= {"referral_code", "referral_link"}
        hubspot.contacts["123"] = {"email": "carol@example.com", "referred_by_code": code}

        def run(file, payload, trigger=None):
            text = _workflow_text(file, "rendered", tmp_path)
            text = text.replace("https://a.klaviyo.com", klaviyo.base).replace("https://api.hubapi.com", hubspot.base)
            workflow = json.loads(text)
            assert workflow["name"].startswith("Acme | ") and {"name": "client-acme"} in workflow["tags"]
            workflow_id = "acme" + file.split(".")[0].replace("-", "")[:12].ljust(12, "0")
            n8n.import_workflow(with_recorded_trigger(workflow, payload, base, trigger), workflow_id)
            result = n8n.execute(workflow_id)
            assert result.returncode == 0, (file, result.stdout[-3000:])
            return result

        run("stripe-to-referral.json", _fixture("stripe_checkout_session_completed.json", code))
        assert _friend_status(session, base, "cus_FriendBob") == "pending"
        carol = _shopify("shopify_customers_create.json", code)
        carol["email"] = "dora@example.com"
        run("shopify-to-referral.json", carol, "When a Shopify customer is created")
        assert _friend_status(session, base, SAFE_CUSTOMER) == "pending"
        run("hubspot-to-referral.json", _fixture("hubspot_contact_creation.json")[0])
        assert _friend_status(session, base, "123") == "pending"
        run("new-customer-to-advocate.json", _fixture("stripe_customer_created.json", "UNUSED"),
            "When a Stripe customer is created")
        bob = session.get(f"{base}/v1/advocates/by-external-id/cus_FriendBob", timeout=10).json()
        assert [e["metric"] for e in klaviyo.events] == ["Referral Link Created"]
        assert hubspot.by_email["bob@example.com"]["referral_code"] == bob["codes"][0]["code"]
        run("review-digest.json", {})  # an empty review queue: the run succeeds and posts nothing


# Shopify's documented examples use ids beyond 2**53; n8n parses webhook bodies as JavaScript numbers,
# so the refund branch (which has only the numeric order id) is exercised with ids of today's size.
SAFE_ORDER, SAFE_CUSTOMER = "5912345678901", "7012345678901"


def _shopify(name, code=None, exact=True):
    text = (FIXTURES / name).read_text().replace("__CODE__", code or "")
    if exact:
        text = text.replace("820982911946154508", SAFE_ORDER).replace("706405506930370084", SAFE_CUSTOMER)
    return json.loads(text)


def _shopify_credential():
    from tests.fakes.shopify import TOKEN

    return {"id": "shopifyCredential", "name": "Shopify store", "type": "shopifyAccessTokenApi",
            "data": {"shopSubdomain": "referflow-test", "accessToken": TOKEN, "appSecretKey": "unused"}}


# Currency exponents through n8n: the pack's Settings table (`currency_exponents`) must turn each
# provider's major-unit string into referflow's integer minor units as referflow/domain/money.py
# does. One n8n process runs every case (`n8n executeBatch`); each case has its own program in the
# case's currency and its own referflow credential. An inexact amount becomes null in the workflow,
# referflow refuses the request and the workflow stops: nothing is stored, the referral stays pending.
MONEY_CASES = [  # (provider, currency, major-unit amount as the provider sends it, minor units or None)
    ("shopify", "KWD", "12.345", 12345),
    ("shopify", "JPY", "1234", 1234),
    ("shopify", "USD", "12.5", 1250),
    ("shopify", "USD", "12.505", None),
    ("hubspot", "KWD", "12.345", 12345),
]


def _case_id(case):
    return "-".join(map(str, case[:3]))


def _shopify_order_paid(code, currency, total):
    """shopify_orders_paid.json with only its money fields changed, consistently: the order is paid in
    `currency` (shop and presentment currency alike), the referral discount is 1 major unit."""
    from referflow.domain.money import exponent

    order = _shopify("shopify_orders_paid.json", code)
    discount = str(Decimal(1).quantize(Decimal(1).scaleb(-exponent(currency))))  # "1.000" KWD, "1" JPY
    money = {"amount": total, "currency_code": currency}
    order.update(currency=currency, presentment_currency=currency, total_price=total, subtotal_price=total,
                 current_total_price=total, total_price_set={"shop_money": money, "presentment_money": money})
    order["customer"]["currency"] = currency
    order["discount_codes"][0]["amount"] = discount
    order["line_items"][0]["price"] = str(Decimal(total) + Decimal(discount))
    return order


def _use_referflow_credential(workflow, credential):
    for node in workflow["nodes"]:
        if node.get("credentials", {}).get("httpHeaderAuth", {}).get("id") == "referflowApiCredential":
            node["credentials"]["httpHeaderAuth"] = {"id": credential["id"], "name": credential["name"]}
    return workflow


@pytest.fixture(scope="class")
def money_runs(database_url, tmp_path_factory):
    """Run every MONEY_CASES workflow in one `n8n executeBatch`; yield each case's outcome."""
    from tests.fakes.hubspot import TOKEN, FakeHubSpot

    tmp = tmp_path_factory.mktemp("n8n-money")
    shopify = json.loads((pack.pack_dir() / "shopify-to-referral.json").read_text())
    with live_server(database_url, tmp) as base, FakeHubSpot() as hubspot:
        hubspot_workflow = json.loads((pack.pack_dir() / "hubspot-to-referral.json").read_text()
                                      .replace("https://api.hubapi.com", hubspot.base))
        credentials = [_shopify_credential(),
                       {"id": "hubspotTokenCredential", "name": "HubSpot private app", "type": "httpHeaderAuth",
                        "data": {"name": "Authorization", "value": f"Bearer {TOKEN}"}}]
        folder, cases = tmp / "workflows", {}
        folder.mkdir()
        for number, case in enumerate(MONEY_CASES):
            provider, currency, total, _ = case
            key, session = live_program(base, {**PROGRAM_CONFIG, "currency": currency}, name=f"n8n {_case_id(case)}")
            credential = {"id": f"referflowMoneyCred{number:02d}", "name": f"referflow API {_case_id(case)}",
                          "type": "httpHeaderAuth", "data": {"name": "Authorization", "value": f"Bearer {key}"}}
            credentials.append(credential)
            code = session.post(f"{base}/v1/links", timeout=10, json={
                "advocate": {"external_id": f"adv-{number}", "email": "ann@example.com"}}).json()["code"]
            if provider == "shopify":  # the paid order claims with its discount code, then qualifies
                friend = SAFE_CUSTOMER
                workflow = with_recorded_trigger(shopify, _shopify_order_paid(code, currency, total), base,
                                                 "When a Shopify order is paid")
            else:  # the contact has claimed; its deal is won, in the deal's currency
                friend, deal = "123", {**_fixture("hubspot_deal_closed_won.json")[0], "objectId": 9870 + number}
                claimed = session.post(f"{base}/v1/referrals/claim", timeout=10, json={
                    "code": code, "friend": {"external_id": friend, "email": "carol@example.com"}})
                assert claimed.status_code in (200, 201), claimed.text
                hubspot.deals[str(deal["objectId"])] = {
                    "properties": {"amount": total, "deal_currency_code": currency,
                                   "closedate": "2026-11-22T12:00:00Z"}, "contacts": [friend]}
                workflow = with_recorded_trigger(hubspot_workflow, deal, base)
            workflow_id = f"moneyWorkflow{number:04d}"
            workflow = _use_referflow_credential(workflow, credential)
            # n8n 1.123 imports a folder in one transaction that creates a tag again for each workflow
            # naming it (UNIQUE tag_entity.name fails): the tags, which play no part in a run, stay out.
            workflow = {**workflow, "id": workflow_id, "tags": []}
            (folder / f"{workflow_id}.json").write_text(json.dumps(workflow))
            cases[_case_id(case)] = {"workflow_id": workflow_id, "session": session, "friend": friend}
        n8n = N8n(tmp / "n8n")
        n8n.import_credentials(credentials)
        imported = n8n.run("import:workflow", "--separate", f"--input={folder}")
        assert imported.returncode == 0, imported.stderr[-2000:]
        report = tmp / "batch.json"
        ids = ",".join(c["workflow_id"] for c in cases.values())
        batch = n8n.run("executeBatch", f"--ids={ids}", f"--output={report}", "--retries=0", timeout=300)
        assert report.exists(), (batch.stdout[-3000:], batch.stderr[-3000:])
        executions = {e["workflowId"]: e for e in json.loads(report.read_text())["executions"]}
        for case in cases.values():
            case["execution"] = executions[case["workflow_id"]]
        yield base, cases


class TestCurrencyExponentsThroughN8n:
    @pytest.mark.parametrize("case", MONEY_CASES, ids=_case_id)
    def test_provider_amount_reaches_referflow_in_minor_units(self, money_runs, case):
        from referflow.domain.money import InexactAmount, to_minor

        base, cases = money_runs
        _, currency, total, minor = case
        run = cases[_case_id(case)]
        session, friend, execution = run["session"], run["friend"], run["execution"]
        referral_id = session.get(f"{base}/v1/people/{friend}", timeout=10).json()[
            "referred_as_friend"][0]["referral_id"]
        referral = session.get(f"{base}/v1/referrals/{referral_id}", timeout=10).json()
        if minor is not None:
            assert minor == to_minor(total, currency)  # the expectation agrees with referflow's own table
            assert execution["executionStatus"] == "success", execution
            assert referral["status"] == "held"
            assert (referral["qualification"]["amount"], referral["qualification"]["currency"]) == (minor, currency)
        else:
            with pytest.raises(InexactAmount):
                to_minor(total, currency)
            # The workflow sends amount null; referflow refuses it; the run stops on the error node.
            # executeBatch reports a failed run as "warning" when its message looks transient (it
            # may hold "429" or "503" anywhere, e.g. inside a timestamp): both are failed runs.
            assert execution["executionStatus"] in ("error", "warning"), execution
            assert "referflow refused or was unreachable" in execution["error"], execution
            assert "422" in execution["error"] and "/event/amount" in execution["error"], execution
            assert referral["status"] == "pending" and referral["qualification"] is None
            # Nothing truncated or rounded was recorded anywhere in the referral's history.
            assert [h["action"] for h in referral["history"]] == ["claimed"], referral["history"]
