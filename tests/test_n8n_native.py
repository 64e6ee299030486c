"""The native-node flavour of the pack's operations workflows in a real n8n, with the community
package installed as a self-hosted n8n installs it (tests/n8n_package.py): new customer -> advocate
and the review digest (Referflow node, manual triggers, one `n8n executeBatch`), and reward
fulfilment (Referflow Trigger) activated under `n8n start`: it subscribes itself in referflow,
fulfils referflow's own signed deliveries, refuses forged and stale ones, ignores a repeated
webhook-id, and a failed send fails the run, answers 500 and is fulfilled on referflow's retry.
(The store-traffic workflows run in both flavours in tests/test_n8n_traffic.py.)
"""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from referflow import workflows as pack
from referflow.native_flavour import CREDENTIAL_TYPE, TRIGGER_TYPE, to_native
from tests.conftest import PROGRAM_CONFIG
from tests.live import free_port, live_program, live_server
from tests.n8n_harness import MISSING_REASON, N8n, n8n_missing, with_recorded_trigger
from tests.n8n_package import install_community_package, package_built

pytestmark = [pytest.mark.slow, pytest.mark.n8n, pytest.mark.skipif(n8n_missing(), reason=MISSING_REASON),
              pytest.mark.skipif(not package_built(), reason="integrations/n8n-nodes-referflow is not built "
                                 "(npm ci && npm run build): the native flavour was NOT run in n8n")]
FIXTURES = pack.pack_dir().parent / "tests" / "fixtures"
REWARDS = "nativeRewards001"  # <= 16 characters: n8n keeps static data only for such ids
STRIPE, SHOPIFY = "When a Stripe customer is created", "When a Shopify customer is created"


def _workflow(file: str, **urls: str) -> dict[str, Any]:
    text = (pack.pack_dir() / file).read_text()
    for real, fake in urls.items():
        text = text.replace(real, fake)
    return to_native(json.loads(text))


def _header_auth(id_: str, name: str, value: str) -> dict[str, Any]:
    return {"id": id_, "name": name, "type": "httpHeaderAuth", "data": {"name": "Authorization", "value": value}}


def _referflow(id_: str, base: str, key: str) -> dict[str, Any]:
    return {"id": id_, "name": f"referflow API ({id_})", "type": CREDENTIAL_TYPE,
            "data": {"baseUrl": base, "apiKey": key}}


def _use(workflow: dict[str, Any], credential: dict[str, Any]) -> dict[str, Any]:
    for node in workflow["nodes"]:
        for kind, auth in (node.get("credentials") or {}).items():
            if auth["id"] == "referflowApiCredential":
                node["credentials"][kind] = {"id": credential["id"], "name": credential["name"]}
    workflow["settings"] = {k: v for k, v in workflow["settings"].items() if k != "errorWorkflow"}
    return workflow


def _slack_to_fake(workflow: dict[str, Any], slack: Any) -> dict[str, Any]:
    """The Slack node posts to slack.com only: an HTTP Request of the same name posts its channel
    and text to the fake Slack instead."""
    node = next(n for n in workflow["nodes"] if n["name"] == "Post the digest to Slack")
    text = node["parameters"]["text"].removeprefix("={{").removesuffix("}}").strip()
    node.update(type="n8n-nodes-base.httpRequest", typeVersion=4.2, disabled=False,
                credentials={"httpHeaderAuth": {"id": "slackFakeCred", "name": "Slack (fake)"}},
                parameters={"method": "POST", "url": f"{slack.base}/api/chat.postMessage",
                            "authentication": "genericCredentialType", "genericAuthType": "httpHeaderAuth",
                            "sendBody": True, "specifyBody": "json", "options": {},
                            "jsonBody": "={{ JSON.stringify({ channel: '#referrals', text: " + text + " }) }}"})
    return workflow


def _stripe_customer(event_id: str, customer: str, email: str | None, name: str | None) -> Any:
    event = json.loads((FIXTURES / "stripe_customer_created.json").read_text().replace("__CODE__", "UNUSED"))
    event["id"] = event_id
    event["data"]["object"].update(id=customer, email=email, name=name)
    return event


def _shopify_customer(customer: str, email: str | None) -> Any:
    payload = json.loads((FIXTURES / "shopify_customers_create.json").read_text().replace("__CODE__", ""))
    payload.update(id=int(customer), email=email, admin_graphql_api_id=f"gid://shopify/Customer/{customer}")
    return payload


CUSTOMER_CASES = {  # workflow id: (trigger, payload)
    "nativeCustomer01": (STRIPE, _stripe_customer("evt_1QcusAnn", "cus_Ann", "ann@example.com", "Ann Advocate")),
    "nativeCustomer02": (STRIPE, _stripe_customer("evt_1QcusNoName", "cus_NoName", "noname@example.com", None)),
    "nativeCustomer03": (STRIPE, _stripe_customer("evt_1QcusNoMail", "cus_NoMail", None, "No Mail")),
    "nativeCustomer04": (SHOPIFY, _shopify_customer("7012345678901", "carol@example.com")),
}
# (executeBatch runs only ids with a digit in them)
DIGEST_CASES = {"nativeDigest0001": "empty", "nativeDigest0002": "waits"}


@pytest.fixture(scope="module")
def native(database_url: str, tmp_path_factory: pytest.TempPathFactory):
    """Referflow, the provider fakes and one n8n with the package and every workflow; yields them."""
    from tests.fakes.hubspot import TOKEN, FakeHubSpot
    from tests.fakes.klaviyo import API_KEY, FakeKlaviyo
    from tests.fakes.slack import TOKEN as SLACK_TOKEN
    from tests.fakes.slack import FakeSlack

    tmp = tmp_path_factory.mktemp("n8n-native")
    with (live_server(database_url, tmp, REFERFLOW_ALLOW_PRIVATE_WEBHOOK_URLS="true") as base,
          FakeKlaviyo() as klaviyo, FakeHubSpot() as hubspot, FakeSlack() as slack):
        hubspot.properties |= {"referral_code", "referral_link", "referral_status"}
        fakes = {"https://a.klaviyo.com": klaviyo.base, "https://api.hubapi.com": hubspot.base}
        n8n = N8n(tmp / "n8n")
        install_community_package(n8n.home)
        credentials = [_header_auth("klaviyoCredential", "Klaviyo API", f"Klaviyo-API-Key {API_KEY}"),
                       _header_auth("hubspotTokenCredential", "HubSpot private app", f"Bearer {TOKEN}"),
                       _header_auth("slackFakeCred", "Slack (fake)", f"Bearer {SLACK_TOKEN}")]
        sessions, referflow = {}, {}
        for name in ("customers", "empty", "waits", "rewards"):
            key, sessions[name] = live_program(base, {**PROGRAM_CONFIG, "hold_days": 0}, name=f"n8n native {name}")
            referflow[name] = _referflow(f"referflowNative{name.title()}", base, key)
        credentials += referflow.values()
        code = sessions["waits"].post(f"{base}/v1/links", timeout=10, json={
            "advocate": {"external_id": "a1", "email": "a1@example.com"}}).json()["code"]
        waiting = sessions["waits"].post(f"{base}/v1/referrals/claim", timeout=10, json={  # a disposable email
            "code": code, "friend": {"external_id": "f1", "email": "f1@mailinator.com"}}).json()
        workflows = {}
        customer = _workflow("new-customer-to-advocate.json", **fakes)
        for workflow_id, (trigger, payload) in CUSTOMER_CASES.items():
            workflows[workflow_id] = _use(with_recorded_trigger(customer, payload, base, trigger),
                                          referflow["customers"])
        digest = _slack_to_fake(_workflow("review-digest.json"), slack)
        for workflow_id, program in DIGEST_CASES.items():
            workflows[workflow_id] = _use(with_recorded_trigger(digest, {}, base), referflow[program])
        workflows[REWARDS] = _use(_workflow("reward-fulfilment.json", **fakes), referflow["rewards"])
        folder = tmp / "workflows"
        folder.mkdir()
        for workflow_id, workflow in workflows.items():
            (folder / f"{workflow_id}.json").write_text(json.dumps({**workflow, "id": workflow_id, "tags": []}))
        n8n.import_credentials(credentials)
        imported = n8n.run("import:workflow", "--separate", f"--input={folder}")
        assert imported.returncode == 0, imported.stderr[-2000:]
        yield {"base": base, "sessions": sessions, "n8n": n8n, "tmp": tmp, "klaviyo": klaviyo, "hubspot": hubspot,
               "slack": slack, "waiting": waiting["id"], "workflows": workflows}


@pytest.fixture(scope="module")
def batch(native):
    report = native["tmp"] / "batch.json"
    ids = [*CUSTOMER_CASES, *DIGEST_CASES]
    run = native["n8n"].run("executeBatch", f"--ids={','.join(ids)}", f"--output={report}", "--retries=0",
                            timeout=300)
    assert report.exists(), (run.stdout[-3000:], run.stderr[-3000:])
    executions = {e["workflowId"]: e for e in json.loads(report.read_text())["executions"]}
    assert set(executions) == set(ids)
    return {**native, "executions": executions, "klaviyo_events": list(native["klaviyo"].events),
            "hubspot": {k: dict(v) for k, v in native["hubspot"].by_email.items()}}


def _advocate(native: dict[str, Any], external_id: str) -> requests.Response:
    return native["sessions"]["customers"].get(f"{native['base']}/v1/advocates/by-external-id/{external_id}",
                                               timeout=10)


def test_new_customers_get_their_link_through_the_referflow_node(batch):
    for workflow_id in CUSTOMER_CASES:
        assert batch["executions"][workflow_id]["executionStatus"] == "success", batch["executions"][workflow_id]
    ann = _advocate(batch, "cus_Ann").json()
    assert (ann["email"], ann["name"], len(ann["codes"])) == ("ann@example.com", "Ann Advocate", 1)
    # No name: the expression gives undefined and the node leaves advocate.name out, as JSON.stringify did.
    nameless = _advocate(batch, "cus_NoName").json()
    assert nameless["email"] == "noname@example.com" and nameless.get("name") is None, nameless
    carol = _advocate(batch, "7012345678901").json()
    assert carol["email"] == "carol@example.com" and len(carol["codes"]) == 1
    assert _advocate(batch, "cus_NoMail").status_code == 404  # no email: nothing to do, the run succeeds
    sent = {e["email"]: e for e in batch["klaviyo_events"]}
    assert set(sent) == {"ann@example.com", "noname@example.com", "carol@example.com"}
    assert batch["hubspot"]["ann@example.com"]["referral_code"] == ann["codes"][0]["code"]


def test_the_review_digest_lists_through_the_referflow_node_and_posts_once(batch):
    """The list operation's node hands out one item per review; the Aggregate node the conversion
    adds gives the digest one list again: an empty queue posts nothing, one waiting posts once."""
    for workflow_id in DIGEST_CASES:
        assert batch["executions"][workflow_id]["executionStatus"] == "success", batch["executions"][workflow_id]
    assert [m["channel"] for m in batch["slack"].messages] == ["#referrals"]
    text = batch["slack"].messages[0]["text"]
    assert text.startswith("1 referral(s) waiting for review:\n") and f"- {batch['waiting']}: " in text


# ---- reward fulfilment: the Referflow Trigger under `n8n start` -------------------------------------

def _executions(n8n: N8n, workflow_id: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{n8n.home / '.n8n' / 'database.sqlite'}?mode=ro", uri=True, timeout=10) as db:
        return db.execute("SELECT id, status FROM execution_entity WHERE workflowId = ? AND status NOT IN "
                          "('new', 'running') AND stoppedAt IS NOT NULL ORDER BY id", (workflow_id,)).fetchall()


def _static_data(n8n: N8n, workflow_id: str) -> dict[str, Any]:
    with sqlite3.connect(f"file:{n8n.home / '.n8n' / 'database.sqlite'}?mode=ro", uri=True, timeout=10) as db:
        row = db.execute("SELECT staticData FROM workflow_entity WHERE id = ?", (workflow_id,)).fetchone()
    return json.loads(row[0]) if row and row[0] else {}


def _wait(what: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _signed(secret: str, webhook_id: str, event: dict[str, Any], age: int = 0) -> tuple[dict[str, str], bytes]:
    """A delivery signed as referflow signs it (Standard Webhooks), with the subscription's secret."""
    body = json.dumps(event, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    at = datetime.now(UTC) - timedelta(seconds=age)
    return ({"content-type": "application/json; charset=utf-8", "webhook-id": webhook_id,
             "webhook-timestamp": str(int(at.timestamp())),
             "webhook-signature": Webhook(secret).sign(webhook_id, at, body)}, body.encode())


def _event(event_id: str, email: str) -> dict[str, Any]:
    return {"id": event_id, "type": "reward.issued", "created_at": "2026-11-29T10:00:00Z", "program_id": "prg_x",
            "data": {"issuer": "manual", "external_id": None, "gift_card": None,
                     "recipient": {"side": "friend", "external_id": "f1", "email": email}}}


@pytest.fixture(scope="module")
def production(native):
    n8n, klaviyo, hubspot = native["n8n"], native["klaviyo"], native["hubspot"]
    base, session = native["base"], native["sessions"]["rewards"]
    n8n.activate(REWARDS)
    port = free_port()
    out: dict[str, Any] = {"answers": {}, "runs": {}, "sent": {}}
    before = len(klaviyo.events)  # (the new-customer cases may have run in this module already)
    with n8n.serve(port, native["tmp"] / "n8n-start.log", WEBHOOK_URL=f"http://127.0.0.1:{port}/"):
        # Activation makes the trigger subscribe itself in referflow, to the events the workflow fulfils.
        hooks = _wait(lambda: session.get(f"{base}/v1/webhooks", timeout=10).json()["items"], 120)
        out["subscriptions"] = hooks
        hook = hooks[0]
        # referflow's own deliveries: a referral approved and rewarded (hold_days 0) in the program.
        code = session.post(f"{base}/v1/links", timeout=10, json={
            "advocate": {"external_id": "adv-r", "email": "adv-r@example.com"}}).json()["code"]
        session.post(f"{base}/v1/referrals/claim", timeout=10, json={
            "code": code, "friend": {"external_id": "friend-r", "email": "friend-r@example.com"}})
        session.post(f"{base}/v1/referrals/qualify", timeout=10, json={"friend_external_id": "friend-r", "event": {
            "id": "order-r", "type": "first_order", "amount": 4900, "currency": "EUR",
            "occurred_at": "2026-11-20T10:00:00Z"}})

        def delivered() -> list[dict[str, Any]]:
            items = session.get(f"{base}/v1/webhooks/{hook['id']}/deliveries", timeout=10).json()["items"]
            return items if items and all(d["status"] in ("succeeded", "failed") for d in items) else []

        out["deliveries"] = _wait(delivered, 90)
        out["events"] = [dict(e) for e in klaviyo.events[before:]]
        # The subscription's signing secret, which the trigger keeps in the workflow's static data:
        # to sign deliveries of our own (a replay, a stale one, a retry) as referflow would.
        secret = next(v["secret"] for k, v in _static_data(n8n, REWARDS).items() if k.startswith("node:")
                      and isinstance(v, dict) and "secret" in v)

        def post(case: str, headers: dict[str, str], body: bytes, runs: bool = True) -> None:
            calls = len(klaviyo.calls), len(hubspot.calls)
            done = len(_executions(n8n, REWARDS))
            answer = requests.post(hook["url"], data=body, headers=headers, timeout=60)
            out["answers"][case] = answer.status_code
            if runs:
                out["runs"][case] = _wait(lambda: _executions(n8n, REWARDS)[done:])[-1][1]
            else:
                time.sleep(1)
                out["runs"][case] = [s for _, s in _executions(n8n, REWARDS)[done:]] or None
            out["sent"][case] = (len(klaviyo.calls) - calls[0], len(hubspot.calls) - calls[1])

        first = out["deliveries"][0]
        post("valid", *_signed(secret, "msg_native_1", _event("evt_native_1", "ann@example.com")))
        post("same webhook-id again", *_signed(secret, "msg_native_1", _event("evt_native_1", "ann@example.com")))
        post("a delivery referflow already made", *_signed(secret, first["id"], _event("evt_again", "x@example.com")))
        post("stale timestamp", *_signed(secret, "msg_native_2", _event("evt_native_2", "b@example.com"), age=600),
             runs=False)
        post("wrong signature", *_signed("whsec_" + "A" * 43 + "=", "msg_native_3",
                                         _event("evt_native_3", "c@example.com")), runs=False)
        klaviyo.fail_next = [(500, {})] * 3  # Klaviyo down for all three tries
        post("klaviyo fails", *_signed(secret, "msg_native_4", _event("evt_native_4", "d@example.com")))
        post("referflow retries it", *_signed(secret, "msg_native_4", _event("evt_native_4", "d@example.com")))
        yield out


def test_the_trigger_subscribes_to_the_events_the_workflow_fulfils(production):
    trigger = next(n for n in to_native(json.loads((pack.pack_dir() / "reward-fulfilment.json").read_text()))["nodes"]
                   if n["type"] == TRIGGER_TYPE)
    [subscription] = production["subscriptions"]
    assert sorted(subscription["events"]) == sorted(trigger["parameters"]["events"])
    assert {"reward.issued", "referral.approved"} <= set(subscription["events"])


def test_referflows_own_deliveries_are_fulfilled(production):
    deliveries = production["deliveries"]
    assert deliveries and all(d["status"] == "succeeded" for d in deliveries), deliveries
    # the approved referral and the rewards issued for it reached Klaviyo, for the friend and the advocate
    metrics = sorted((e["metric"], e["email"]) for e in production["events"])
    assert ("Referral Approved", "friend-r@example.com") in metrics
    assert {m for m, _ in metrics} <= {"Referral Approved", "Reward Issued"}


def test_a_valid_delivery_is_fulfilled_and_a_repeated_webhook_id_is_not(production):
    assert (production["answers"]["valid"], production["runs"]["valid"], production["sent"]["valid"]) == (
        200, "success", (1, 1))
    for case in ("same webhook-id again", "a delivery referflow already made"):
        assert (production["answers"][case], production["runs"][case], production["sent"][case]) == (
            200, "success", (0, 0)), case


@pytest.mark.parametrize("case", ["stale timestamp", "wrong signature"])
def test_a_stale_or_forged_delivery_is_refused_before_any_run(production, case):
    assert production["answers"][case] == 401
    assert production["runs"][case] is None and production["sent"][case] == (0, 0)


def test_a_failed_send_fails_the_run_answers_500_and_the_retry_is_fulfilled(production):
    assert (production["answers"]["klaviyo fails"], production["runs"]["klaviyo fails"]) == (500, "error")
    assert production["sent"]["klaviyo fails"] == (3, 0)  # three tries, then the run fails
    assert (production["answers"]["referflow retries it"], production["runs"]["referflow retries it"],
            production["sent"]["referflow retries it"]) == (200, "success", (1, 1))
