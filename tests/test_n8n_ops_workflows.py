"""The pack's operations workflows in a real n8n: reward fulfilment (signature, replay, duplicate id),
review digest, new customer -> advocate, and the error workflow.

One n8n user folder serves the whole module (n8n processes cost seconds each): credentials and every
workflow are imported once; the manual-trigger cases (new customer, review digest) run in one
`n8n executeBatch`; the reward workflow then runs activated under `n8n start`, driven by signed
deliveries, and its failure makes n8n run the error workflow, which is read back from n8n's SQLite
database. Workflow ids are at most 16 characters: n8n saves static data (the reward workflow's
handled delivery ids) and runs error workflows only for such ids.
"""

from __future__ import annotations

import base64
import copy
import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from referflow import workflows as pack
from tests.live import free_port, live_program, live_server
from tests.n8n_harness import MISSING_REASON, N8n, n8n_missing, with_recorded_trigger

pytestmark = [pytest.mark.slow, pytest.mark.n8n, pytest.mark.skipif(n8n_missing(), reason=MISSING_REASON)]
FIXTURES = pack.pack_dir().parent / "tests" / "fixtures"
ERROR_WORKFLOW = "rfErrorAlert0001"  # the pack file's fixed id
REWARDS = "opsRewards000001"
SOLO_REWARDS = "opsRewardsSolo01"  # rendered for a client without HubSpot: Klaviyo passes on to the end
SIGNING_KEY = "n8n-ops-signing-key-0123456789abcdefghijklmnop"
SHOPIFY_CUSTOMER = "7012345678901"  # a Shopify id JavaScript holds exactly


def _workflow(file, **urls):
    text = (pack.pack_dir() / file).read_text()
    for real, fake in urls.items():
        text = text.replace(real, fake)
    return json.loads(text)


def _credential(id_, name, value):
    return {"id": id_, "name": name, "type": "httpHeaderAuth", "data": {"name": "Authorization", "value": value}}


def _use_credential(workflow, old_id, credential):
    for node in workflow["nodes"]:
        if node.get("credentials", {}).get("httpHeaderAuth", {}).get("id") == old_id:
            node["credentials"]["httpHeaderAuth"] = {"id": credential["id"], "name": credential["name"]}
    return workflow


def _slack_to_fake(workflow, slack):
    """The Slack node posts to slack.com only: swap it for an HTTP Request of the same name that posts
    the node's own channel and text to the fake Slack (enabled, same connections)."""
    node = next(n for n in workflow["nodes"] if n["name"] == "Post the digest to Slack")
    text = node["parameters"]["text"].removeprefix("={{").removesuffix("}}").strip()
    channel = node["parameters"]["channelId"]["value"]
    node.update(type="n8n-nodes-base.httpRequest", typeVersion=4.2, disabled=False,
                credentials={"httpHeaderAuth": {"id": "slackFakeCred", "name": "Slack (fake)"}},
                parameters={"method": "POST", "url": f"{slack.base}/api/chat.postMessage",
                            "authentication": "genericCredentialType", "genericAuthType": "httpHeaderAuth",
                            "sendBody": True, "specifyBody": "json",
                            "jsonBody": "={{ JSON.stringify({ channel: " + json.dumps(channel) + ", text: "
                                        + text + " }) }}", "options": {}})
    return workflow


def _stripe_customer(event_id, customer, email):
    event = json.loads((FIXTURES / "stripe_customer_created.json").read_text().replace("__CODE__", "UNUSED"))
    event["id"] = event_id
    event["data"]["object"].update(id=customer, email=email)
    return event


def _shopify_customer(customer, email):
    payload = json.loads((FIXTURES / "shopify_customers_create.json").read_text().replace("__CODE__", ""))
    payload.update(id=int(customer), email=email, admin_graphql_api_id=f"gid://shopify/Customer/{customer}")
    return payload


# The manual-trigger cases run in one executeBatch (order not guaranteed, so none depends on another).
STRIPE, SHOPIFY = "When a Stripe customer is created", "When a Shopify customer is created"
CUSTOMER_CASES = {  # workflow id: (trigger, payload); the second is Stripe redelivering the first
    "opsCustomer00001": (STRIPE, _stripe_customer("evt_1QcusBob", "cus_Bob", "bob@example.com")),
    "opsCustomer00002": (STRIPE, _stripe_customer("evt_1QcusBob", "cus_Bob", "bob@example.com")),
    "opsCustomer00003": (STRIPE, _stripe_customer("evt_1QcusNoMail", "cus_NoMail", None)),
    "opsCustomer00004": (SHOPIFY, _shopify_customer(SHOPIFY_CUSTOMER, "carol@example.com")),
    "opsCustomer00005": (SHOPIFY, _shopify_customer("7012345678902", None)),
}
DIGEST_CASES = ("opsDigestEmpty01", "opsDigestWaits01")


@pytest.fixture(scope="module")
def ops(database_url, tmp_path_factory):
    """Referflow, the provider fakes and one n8n with every workflow imported; yields them."""
    from tests.fakes.hubspot import TOKEN, FakeHubSpot
    from tests.fakes.klaviyo import API_KEY, FakeKlaviyo
    from tests.fakes.slack import TOKEN as SLACK_TOKEN
    from tests.fakes.slack import FakeSlack

    tmp = tmp_path_factory.mktemp("n8n-ops")
    with (live_server(database_url, tmp) as base, FakeKlaviyo() as klaviyo, FakeHubSpot() as hubspot,
          FakeSlack() as slack):
        hubspot.properties |= {"referral_code", "referral_link", "referral_status"}
        fakes = {"https://a.klaviyo.com": klaviyo.base, "https://api.hubapi.com": hubspot.base}
        credentials = [_credential("klaviyoCredential", "Klaviyo API", f"Klaviyo-API-Key {API_KEY}"),
                       _credential("hubspotTokenCredential", "HubSpot private app", f"Bearer {TOKEN}"),
                       _credential("slackFakeCred", "Slack (fake)", f"Bearer {SLACK_TOKEN}")]
        sessions, workflows = {}, {}
        for name in ("customers", "empty", "waits"):
            key, sessions[name] = live_program(base, name=f"n8n ops {name}")
            credentials.append(_credential(f"referflowOps{name.title()}", f"referflow API ({name})", f"Bearer {key}"))
        # The queue of one program has a referral waiting for review (a disposable friend email).
        code = sessions["waits"].post(f"{base}/v1/links", timeout=10, json={
            "advocate": {"external_id": "a1", "email": "a1@example.com"}}).json()["code"]
        claimed = sessions["waits"].post(f"{base}/v1/referrals/claim", timeout=10, json={
            "code": code, "friend": {"external_id": "f1", "email": "f1@mailinator.com"}}).json()
        customer = _workflow("new-customer-to-advocate.json", **fakes)
        for workflow_id, (trigger, payload) in CUSTOMER_CASES.items():
            workflows[workflow_id] = _use_credential(with_recorded_trigger(customer, payload, base, trigger),
                                                     "referflowApiCredential", credentials[3])
        digest = _slack_to_fake(_workflow("review-digest.json"), slack)
        for workflow_id, credential in zip(DIGEST_CASES, credentials[4:], strict=True):
            workflows[workflow_id] = _use_credential(with_recorded_trigger(digest, {}, base),
                                                     "referflowApiCredential", credential)
        rewards = _workflow("reward-fulfilment.json", **fakes)
        # It asks referflow (checkMessage) before it sends: the customers program knows nobody, so it may.
        pack.set_settings(rewards, {"signing_key": SIGNING_KEY, "referflow_base_url": base})
        workflows[REWARDS] = _use_credential(rewards, "referflowApiCredential", credentials[3])
        solo = pack.render({"client": "solo", "referflow_base_url": base, "providers": ["klaviyo"]}, tmp / "solo")
        solo_rewards = json.loads(next(p for p in solo if p.name == "solo-reward-fulfilment.json").read_text()
                                  .replace("https://a.klaviyo.com", klaviyo.base))
        pack.set_settings(solo_rewards, {"signing_key": SIGNING_KEY})
        workflows[SOLO_REWARDS] = _use_credential(solo_rewards, "referflowApiCredential", credentials[3])
        workflows[ERROR_WORKFLOW] = _workflow("error-alert.json")
        folder = tmp / "workflows"
        folder.mkdir()
        for workflow_id, workflow in workflows.items():
            # n8n 1.123 imports a folder in one transaction that creates a tag again for each workflow
            # naming it (UNIQUE tag_entity.name fails): the tags, which play no part in a run, stay out.
            (folder / f"{workflow_id}.json").write_text(json.dumps({**workflow, "id": workflow_id, "tags": []}))
        n8n = N8n(tmp / "n8n")
        n8n.import_credentials(credentials)
        imported = n8n.run("import:workflow", "--separate", f"--input={folder}")
        assert imported.returncode == 0, imported.stderr[-2000:]
        yield {"base": base, "sessions": sessions, "n8n": n8n, "tmp": tmp, "klaviyo": klaviyo,
               "hubspot": hubspot, "slack": slack, "waiting": claimed["id"]}


@pytest.fixture(scope="module")
def batch(ops):
    """Run the new-customer and review-digest cases in one `n8n executeBatch`."""
    ops["klaviyo"].calls.clear()
    ops["hubspot"].calls.clear()
    report = ops["tmp"] / "batch.json"
    ids = ",".join([*CUSTOMER_CASES, *DIGEST_CASES])
    run = ops["n8n"].run("executeBatch", f"--ids={ids}", f"--output={report}", "--retries=0", timeout=300)
    assert report.exists(), (run.stdout[-3000:], run.stderr[-3000:])
    executions = {e["workflowId"]: e for e in json.loads(report.read_text())["executions"]}
    assert set(executions) == {*CUSTOMER_CASES, *DIGEST_CASES}
    return {**ops, "executions": executions, "klaviyo_calls": list(ops["klaviyo"].calls),
            "hubspot_calls": list(ops["hubspot"].calls)}


def _advocate(ops, external_id):
    return ops["sessions"]["customers"].get(f"{ops['base']}/v1/advocates/by-external-id/{external_id}", timeout=10)


def test_new_customer_with_an_email_gets_one_link_written_to_klaviyo_and_hubspot_even_when_replayed(batch):
    for workflow_id in ("opsCustomer00001", "opsCustomer00002", "opsCustomer00004"):
        assert batch["executions"][workflow_id]["executionStatus"] == "success", batch["executions"][workflow_id]
    codes = {}
    for external_id, email in (("cus_Bob", "bob@example.com"), (SHOPIFY_CUSTOMER, "carol@example.com")):
        advocate = _advocate(batch, external_id).json()
        # The Stripe event twice (a redelivery): the Idempotency-Key replays the answer, no second link.
        assert advocate["email"] == email and len(advocate["codes"]) == 1, advocate
        codes[email] = advocate["codes"][0]["code"]
    klaviyo, hubspot = batch["klaviyo"], batch["hubspot"]
    # The replay reached Klaviyo again and was deduplicated there, on the event's unique_id.
    assert sorted((e["email"], e["metric"], e["unique_id"]) for e in klaviyo.events) == [
        ("bob@example.com", "Referral Link Created", "referral-link-stripe-evt_1QcusBob"),
        ("carol@example.com", "Referral Link Created", f"referral-link-shopify-customer-{SHOPIFY_CUSTOMER}")]
    assert [c["path"] for c in batch["klaviyo_calls"]] == ["/api/events"] * 3
    for email, code in codes.items():
        assert klaviyo.profiles[email]["referral_code"] == code
        assert hubspot.by_email[email]["referral_code"] == code
        assert hubspot.by_email[email]["referral_link"].endswith(f"/r/{code}")
    assert len(batch["hubspot_calls"]) == 3  # the upsert is idempotent: the replay changed nothing
    assert set(hubspot.by_email) == {"bob@example.com", "carol@example.com"}


def test_new_customer_without_an_email_succeeds_and_sends_nothing(batch):
    for workflow_id in ("opsCustomer00003", "opsCustomer00005"):
        assert batch["executions"][workflow_id]["executionStatus"] == "success", batch["executions"][workflow_id]
    for external_id in ("cus_NoMail", "7012345678902"):
        assert _advocate(batch, external_id).status_code == 404  # no advocate, no link
    # Every call to Klaviyo and HubSpot was for the customers with an email.
    emails = {json.loads(c["body"])["data"]["attributes"]["profile"]["data"]["attributes"]["email"]
              for c in batch["klaviyo_calls"]}
    emails |= {json.loads(c["body"])["inputs"][0]["id"] for c in batch["hubspot_calls"]}
    assert emails == {"bob@example.com", "carol@example.com"}


def test_review_digest_posts_only_when_someone_is_waiting(batch):
    for workflow_id in DIGEST_CASES:
        assert batch["executions"][workflow_id]["executionStatus"] == "success", batch["executions"][workflow_id]
    # The empty queue posted nothing; the other one posted its summary, once.
    assert [m["channel"] for m in batch["slack"].messages] == ["#referrals"]
    text = batch["slack"].messages[0]["text"]
    assert text.startswith("1 referral(s) waiting for review:\n") and f"- {batch['waiting']}: " in text


# Reward fulfilment under `n8n start`: deliveries signed as referflow signs them (Standard Webhooks).
def _delivery(webhook_id, event_type="reward.issued", event_id="evt_1", email="f1@example.com", age=0,
              key=SIGNING_KEY):
    payload = {"id": event_id, "type": event_type, "created_at": "2026-11-29T10:00:00Z", "program_id": "prg_ops",
               "data": {"issuer": "manual", "external_id": None, "gift_card": None,
                        "recipient": {"side": "friend", "external_id": "f1", "email": email}}}
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False)  # as referflow sends
    at = datetime.now(UTC) - timedelta(seconds=age)
    secret = "whsec_" + base64.b64encode(key.encode()).decode()
    headers = {"content-type": "application/json; charset=utf-8", "webhook-id": webhook_id,
               "webhook-timestamp": str(int(at.timestamp())),
               "webhook-signature": Webhook(secret).sign(webhook_id, at, body)}
    return headers, body.encode()


def _executions(n8n, workflow_id):
    """(id, status, execution data) of a workflow's finished executions, oldest first, from n8n's SQLite."""
    database = n8n.home / ".n8n" / "database.sqlite"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute("SELECT e.id, e.status, d.data FROM execution_entity e LEFT JOIN execution_data d "
                          "ON d.executionId = e.id WHERE e.workflowId = ? AND e.status NOT IN ('new', 'running') "
                          "AND e.stoppedAt IS NOT NULL ORDER BY e.id", (workflow_id,)).fetchall()
    return rows


def _wait_for(n8n, workflow_id, count, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _executions(n8n, workflow_id)
        if len(rows) >= count:
            return rows
        time.sleep(0.3)
    raise AssertionError(f"{workflow_id}: {len(_executions(n8n, workflow_id))} executions, expected {count}")


@pytest.fixture(scope="module")
def production(ops):
    """Activate the reward workflow, run `n8n start`, send every case; yield answers and what was sent."""
    n8n, klaviyo, hubspot = ops["n8n"], ops["klaviyo"], ops["hubspot"]
    # n8n 2.x runs an error workflow only once it is published; 1.x runs it inactive too.
    for workflow_id in (REWARDS, SOLO_REWARDS, *((ERROR_WORKFLOW,) if N8n.version >= (2,) else ())):
        if hasattr(n8n, "activate"):
            n8n.activate(workflow_id)
        else:
            activated = n8n.run("update:workflow", f"--id={workflow_id}", "--active=true")
            assert activated.returncode == 0, activated.stderr[-2000:]
    port = free_port()
    hook = f"http://127.0.0.1:{port}/webhook/referflow-rewards"
    answers, sent, runs = {}, {}, {}  # by case: n8n's answer, what reached the fakes, the execution's status
    with n8n.serve(port, ops["tmp"] / "n8n-start.log"):
        def post(case, headers, body, workflow_id=REWARDS, url=hook):
            calls = len(klaviyo.calls), len(hubspot.calls)
            done = len(_executions(n8n, workflow_id))
            answer = requests.post(url, data=body, headers=headers, timeout=60)
            # The answer comes from a Respond node, before the run ends (and n8n saves the run's static data).
            runs[case] = _wait_for(n8n, workflow_id, done + 1)[-1][1]
            answers[case] = (answer.status_code, answer.text)
            sent[case] = (klaviyo.calls[calls[0]:], hubspot.calls[calls[1]:])

        # The production webhook is registered a little after /healthz answers: poll with an ordinary
        # delivery (an event type the workflow does not fulfil) until it is there.
        headers, body = _delivery("msg_other", "referral.claimed", "evt_other")
        calls = len(klaviyo.calls), len(hubspot.calls)
        for _ in range(90):
            first = requests.post(hook, data=body, headers=headers, timeout=10)
            if first.status_code != 404:
                break
            time.sleep(1)
        runs["other event type"] = _wait_for(n8n, REWARDS, 1)[-1][1]
        answers["other event type"] = (first.status_code, first.text)
        sent["other event type"] = (klaviyo.calls[calls[0]:], hubspot.calls[calls[1]:])
        post("valid", *_delivery("msg_1", event_id="evt_1"))
        post("same webhook-id again", *_delivery("msg_1", event_id="evt_1"))
        post("no email to send to", *_delivery("msg_6", event_id="evt_6", email=None))
        post("stale timestamp", *_delivery("msg_2", event_id="evt_2", age=600))
        post("timestamp from the future", *_delivery("msg_3", event_id="evt_3", age=-600))
        post("wrong signature", *_delivery("msg_4", event_id="evt_4", key="not-the-signing-key-0123456789abcdef"))
        klaviyo.fail_next = [(500, {})] * 3  # Klaviyo down for all three tries (5 s apart)
        post("klaviyo fails", *_delivery("msg_5", event_id="evt_5", email="ann@example.com"))
        post("referflow retries the failed delivery", *_delivery("msg_5", event_id="evt_5", email="ann@example.com"))
        post("rendered without HubSpot", *_delivery("msg_7", event_id="evt_7", email="solo@example.com"),
             workflow_id=SOLO_REWARDS, url=f"http://127.0.0.1:{port}/webhook/solo-referflow-rewards")
        assert len(_executions(n8n, REWARDS)) == len(runs) - 1  # one execution per delivery
        (ops["tmp"] / "answers.json").write_text(json.dumps({"answers": answers, "runs": runs}, indent=1))
        _wait_for(n8n, ERROR_WORKFLOW, list(runs.values()).count("error"))
        time.sleep(1)  # another error run would be a bug: give it time to show
        yield {"answers": answers, "sent": sent, "runs": runs, "errors": _executions(n8n, ERROR_WORKFLOW),
               "klaviyo": klaviyo, "hubspot": hubspot}


def test_without_hubspot_the_rendered_workflow_goes_from_klaviyo_to_the_answer(production):
    status, text = production["answers"]["rendered without HubSpot"]
    assert (status, json.loads(text)) == (200, {"outcome": "fulfilled", "changed": True})
    klaviyo_calls, hubspot_calls = production["sent"]["rendered without HubSpot"]
    assert len(klaviyo_calls) == 1 and hubspot_calls == []
    assert production["runs"]["rendered without HubSpot"] == "success"


def test_a_valid_delivery_sends_one_klaviyo_event_and_updates_hubspot(production):
    status, text = production["answers"]["valid"]
    assert (status, json.loads(text)) == (200, {"outcome": "fulfilled", "changed": True})
    klaviyo_calls, hubspot_calls = production["sent"]["valid"]
    assert [json.loads(c["body"])["data"]["attributes"]["unique_id"] for c in klaviyo_calls] == ["evt_1"]
    assert [json.loads(c["body"])["inputs"][0] for c in hubspot_calls] == [
        {"idProperty": "email", "id": "f1@example.com", "properties": {"referral_status": "rewarded"}}]
    assert production["runs"]["valid"] == "success"


@pytest.mark.parametrize(("case", "outcome"), [
    ("same webhook-id again", "duplicate"),
    ("other event type", "ignored_event_type"),
    ("no email to send to", "no_email"),
])
def test_a_duplicate_or_an_event_it_does_not_fulfil_succeeds_and_sends_nothing(production, case, outcome):
    answer_status, text = production["answers"][case]
    assert (answer_status, json.loads(text)) == (200, {"outcome": outcome, "changed": False})
    assert production["sent"][case] == ([], [])
    assert production["runs"][case] == "success"


@pytest.mark.parametrize(("case", "status", "error"), [
    ("stale timestamp", 400, "stale_timestamp"),
    ("timestamp from the future", 400, "stale_timestamp"),
    ("wrong signature", 401, "invalid_signature"),
])
def test_a_replayed_or_forged_delivery_is_refused_and_fails_the_run(production, case, status, error):
    answer_status, text = production["answers"][case]
    assert (answer_status, json.loads(text)["error"]) == (status, error)
    assert production["sent"][case] == ([], [])
    assert production["runs"][case] == "error"


def test_a_failed_send_answers_503_runs_the_error_workflow_and_the_retry_is_fulfilled(production):
    status, text = production["answers"]["klaviyo fails"]
    assert (status, json.loads(text)["error"]) == (503, "send_failed")  # referflow retries the delivery later
    klaviyo_calls, hubspot_calls = production["sent"]["klaviyo fails"]
    assert len(klaviyo_calls) == 3 and hubspot_calls == []  # 3 tries, then the run fails
    assert production["runs"]["klaviyo fails"] == "error"
    assert production["runs"]["referflow retries the failed delivery"] == "success"
    # The failed run did not remember msg_5: referflow's retry of it is fulfilled, not a duplicate.
    status, text = production["answers"]["referflow retries the failed delivery"]
    assert (status, json.loads(text)["outcome"]) == (200, "fulfilled")
    assert [e["unique_id"] for e in production["klaviyo"].events if e["metric"] == "Reward Issued"] == [
        "evt_1", "evt_5", "evt_7"]
    assert production["hubspot"].by_email["ann@example.com"]["referral_status"] == "rewarded"
    # n8n ran the error workflow once per failed production run; each of those runs succeeded.
    failed = list(production["runs"].values()).count("error")
    assert [status for _, status, _ in production["errors"]] == ["success"] * failed
    alerts = " ".join(data or "" for _, _, data in production["errors"])
    assert "referflow: Reward fulfilment" in alerts and "Keep the failed event for retry" in alerts
    assert "Stop: the signature is wrong" in alerts and "Stop: the delivery is stale" in alerts


def test_the_error_workflow_message_names_workflow_node_error_and_link(ops, production):
    """The message the Slack / email nodes would send (both disabled until a credential is added)."""
    data = next(d for _, _, d in production["errors"] if "Keep the failed event for retry" in (d or ""))
    # (execution data is stored as JSON text: the message's quotes are escaped)
    assert ('n8n workflow \\"referflow: Reward fulfilment\\" failed at node '
            '\\"Keep the failed event for retry\\": Klaviyo or HubSpot refused or was unreachable') in data
    assert f"/workflow/{REWARDS}/executions/" in data
    error_alert = copy.deepcopy(_workflow("error-alert.json"))
    assert all(n.get("disabled") for n in error_alert["nodes"]
               if n["type"] in ("n8n-nodes-base.slack", "n8n-nodes-base.emailSend"))
