"""The node pack: specs agree with the API, the generated integrations are up to date, the built
n8n community node runs in a real n8n, and the Zapier app's tests pass against a live referflow."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from importlib.metadata import version
from pathlib import Path

import pytest
import requests

from referflow import api, nodegen, nodes
from referflow.api.meta import openapi_document
from referflow.contract import SchemaStore
from referflow.errors import ValidationFailed
from tests.conftest import PROGRAM_CONFIG
from tests.live import free_port, live_program, live_server
from tests.n8n_harness import N8n, n8n_missing
from tests.receiver import Receiver

ROOT = Path(__file__).resolve().parents[1]
N8N_PACKAGE = ROOT / "integrations" / nodegen.N8N
ZAPIER_APP = ROOT / "integrations" / nodegen.ZAPIER


@pytest.fixture(scope="module")
def openapi():
    api.modules()
    return openapi_document()


@pytest.fixture(scope="module")
def specs():
    return nodes.load_specs()


def _drift(specs, openapi):
    return nodes.drift(specs, openapi, SchemaStore())


def _spec(specs, name):
    return copy.deepcopy(next(s for s in specs if s["name"] == name))


def test_every_spec_matches_the_openapi_document(specs, openapi):
    assert _drift(specs, openapi) == []
    assert {s["kind"] for s in specs} == {"create", "search", "trigger"}
    ids = {s.get("operation_id") for s in specs}
    assert {"createLink", "claimReferral", "qualifyReferral", "reverseReferralForFriend", "issueGiftCard",
            "redeemGiftCard", "getReferral", "listReviews", "approveReferral", "declineReferral"} <= ids


def test_a_spec_that_drifts_from_the_api_is_caught(specs, openapi):
    claim = _spec(specs, "claimReferral")
    claim["operation_id"] = "claimReferal"
    assert _drift([claim], openapi) == ["claimReferral: unknown operation 'claimReferal'"]

    claim = _spec(specs, "claimReferral")
    claim["fields"] = [f for f in claim["fields"] if f["property"] != "friend.email"]
    assert _drift([claim], openapi) == ["claimReferral: required property 'friend.email' has no field"]

    qualify = _spec(specs, "qualifyReferral")
    next(f for f in qualify["fields"] if f["property"] == "event.amount")["type"] = "string"
    assert _drift([qualify], openapi) == [
        "qualifyReferral: field 'eventAmount': type string but the API says integer"]

    reverse = _spec(specs, "reverseReferralForFriend")
    reason = next(f for f in reverse["fields"] if f["property"] == "reason")
    reason["options"] = reason["options"][:2]
    assert _drift([reverse], openapi) == [
        "reverseReferralForFriend: field 'reason': options differ from the API's "
        "['refund', 'chargeback', 'fraud', 'other']"]

    redeem = _spec(specs, "redeemGiftCard")
    redeem["path"] = "/v1/gift-cards/{code}/spend"
    redeem["sample"]["balance"] = "lots"
    assert _drift([redeem], openapi) == [
        "redeemGiftCard: POST /v1/gift-cards/{code}/spend but the API has POST /v1/gift-cards/{code}/redeem",
        "redeemGiftCard: sample/balance: 'lots' is not of type 'integer'"]

    trigger = _spec(specs, "referralEvent")
    trigger["events"].append("referral.exploded")
    assert _drift([trigger], openapi) == ["referralEvent: unknown event type 'referral.exploded'"]


def test_a_malformed_spec_is_refused_with_its_path(tmp_path, specs):
    bad = _spec(specs, "createLink")
    bad["fields"][0]["type"] = "money"
    (tmp_path / "createLink.json").write_text(json.dumps(bad))
    with pytest.raises(ValidationFailed) as caught:
        nodes.load_specs(tmp_path)
    assert caught.value.errors[0]["path"] == "/fields/0/type"


def test_the_committed_integrations_are_what_the_specs_generate(specs, tmp_path):
    files = nodegen.render(specs, version("referflow"))
    assert nodegen.differences(files, ROOT / "integrations") == [], "run `referflow nodes generate`"
    # Deterministic: a second rendering is byte-identical, and writing it twice changes nothing.
    assert nodegen.render(specs, version("referflow")) == files
    nodegen.write(files, tmp_path)
    stale = tmp_path / nodegen.ZAPIER / "creates" / "removedAction.js"
    stale.write_text("// a spec that no longer exists\n")
    nodegen.write(files, tmp_path)
    assert not stale.exists() and nodegen.differences(files, tmp_path) == []


def test_the_generated_n8n_node_covers_every_action(specs):
    source = (N8N_PACKAGE / "nodes" / "Referflow" / "Referflow.node.ts").read_text()
    for spec in specs:
        if spec["kind"] == "trigger":
            continue
        assert f"value: '{spec['operation']}'" in source
        for field in spec["fields"]:
            assert f"name: '{field['key']}'" in source, (spec["name"], field["key"])
    package = json.loads((N8N_PACKAGE / "package.json").read_text())
    assert "n8n-community-node-package" in package["keywords"]
    assert package["n8n"]["n8nNodesApiVersion"] == 1 and "dependencies" not in package
    assert package["peerDependencies"] == {"n8n-workflow": "*"}


def test_the_n8n_package_is_publishable():
    """What n8n's scanner and npm want besides the lint rules (`npm run lint`, `npm run scan`
    check those): author with email, homepage, repository, README, MIT licence, light and dark
    icons for both nodes and the credential, n8n's tooling pinned."""
    package = json.loads((N8N_PACKAGE / "package.json").read_text())
    assert package["license"] == "MIT" and "MIT License" in (N8N_PACKAGE / "LICENSE.md").read_text()
    assert package["author"]["name"] and "@" in package["author"]["email"]
    assert package["homepage"].startswith("https://github.com/")
    assert package["repository"]["url"].startswith("git+https://github.com/")
    assert "## Credentials" in (N8N_PACKAGE / "README.md").read_text()
    assert package["scripts"]["lint"] == "n8n-node lint" and package["scripts"]["scan"] == "node scripts/scan.mjs"
    for tool in ("@n8n/node-cli", "@n8n/scan-community-package"):
        assert re.fullmatch(r"\d+\.\d+\.\d+", package["devDependencies"][tool]), tool
    icon = re.compile(r"icon(: Icon)?\s*[=:]\s*\{\s*light: 'file:referflow.svg',\s*dark: 'file:referflow.dark.svg'")
    for source in ("credentials/ReferflowApi.credentials.ts", "nodes/Referflow/Referflow.node.ts",
                   "nodes/ReferflowTrigger/ReferflowTrigger.node.ts"):
        folder = (N8N_PACKAGE / source).parent
        assert icon.search((N8N_PACKAGE / source).read_text()), source
        light, dark = (folder / "referflow.svg").read_text(), (folder / "referflow.dark.svg").read_text()
        assert "<svg" in light and "<svg" in dark and light != dark


def test_claim_qualify_and_reverse_send_prefer_outcome_explicit(specs):
    """Ordinary events must not fail a workflow: every operation whose API honours
    `Prefer: outcome=explicit` sends it, in n8n and in Zapier."""
    contracts = nodegen.api_contracts(specs)
    prefer = {name for name, contract in contracts.items() if contract.prefer_outcome}
    assert {"claimReferral", "qualifyReferral", "reverseReferralForFriend"} <= prefer
    assert "getReferral" not in prefer and "approveReferral" not in prefer
    for spec in specs:
        if spec["name"] not in contracts:
            continue
        # n8n: the operation's request (the committed node is this rendering: nodes check)
        headers = nodegen._n8n_operation(spec, contracts)["routing"]["request"].get("headers", {})
        assert (headers.get("Prefer") == "outcome=explicit") == (spec["name"] in prefer), spec["name"]
        zapier = ZAPIER_APP / "creates" / f"{spec['name']}.js"
        if zapier.exists():
            assert ("outcomes: true" in zapier.read_text()) == (spec["name"] in prefer), spec["name"]


# ---- the built packages, against a live referflow ------------------------------------------------

def _built() -> bool:
    return (N8N_PACKAGE / "dist" / "nodes" / "Referflow" / "Referflow.node.js").exists()


needs_n8n_node = pytest.mark.skipif(
    n8n_missing() or not _built(),
    reason="n8n or the built n8n-nodes-referflow (npm ci && npm run build) is missing: the community "
           "node was NOT tested in n8n")


def _install_community_package(n8n: N8n, tmp_path: Path) -> None:
    """Install the package the way a self-hosted n8n does: unpacked into ~/.n8n/nodes/node_modules."""
    packed = subprocess.run(["npm", "pack", "--silent", "--pack-destination", str(tmp_path)], cwd=N8N_PACKAGE,
                            capture_output=True, text=True, timeout=120)
    assert packed.returncode == 0, packed.stderr
    target = n8n.home / ".n8n" / "nodes" / "node_modules" / nodegen.N8N
    target.mkdir(parents=True)
    with tarfile.open(tmp_path / packed.stdout.strip().splitlines()[-1]) as tar:
        for member in tar.getmembers():
            member.name = member.name.removeprefix("package/")
            tar.extract(member, target, filter="data")


def _node(name, type_, position, parameters, credentials=True):
    node = {"parameters": parameters, "id": f"00000000-0000-4000-8000-{position:012d}", "name": name,
            "type": type_, "typeVersion": 1, "position": [position * 220, 0]}
    if credentials:
        node["credentials"] = {"referflowApi": {"id": "referflowNodeCred", "name": "referflow"}}
    return node


def _chain(*nodes_):
    return {a["name"]: {"main": [[{"node": b["name"], "type": "main", "index": 0}]]}
            for a, b in zip(nodes_, nodes_[1:], strict=False)}


@needs_n8n_node
@pytest.mark.slow
@pytest.mark.n8n
def test_the_community_node_runs_operations_in_a_real_n8n(database_url, settings, tmp_path):
    with live_server(database_url, tmp_path) as base:
        key, session = live_program(base, {**PROGRAM_CONFIG, "hold_days": 0}, name="nodes")
        n8n = N8n(tmp_path / "n8n")
        _install_community_package(n8n, tmp_path)
        n8n.import_credentials([{"id": "referflowNodeCred", "name": "referflow", "type": "referflowApi",
                                 "data": {"baseUrl": base, "apiKey": key}}])
        node = "n8n-nodes-referflow.referflow"
        chain = [
            _node("Start", "n8n-nodes-base.manualTrigger", 1, {}, credentials=False),
            _node("Create a link", node, 2, {"resource": "link", "operation": "create",
                                             "advocateExternalId": "adv-n8n", "advocateEmail": "ann@example.com"}),
            _node("Claim the referral", node, 3, {
                "resource": "referral", "operation": "claim", "code": "={{ $json.code }}",
                "friendExternalId": "friend-n8n", "friendEmail": "bob@example.com",
                "additionalFields": {"idempotencyKey": "claim-friend-n8n", "contextExistingCustomer": False}}),
            _node("Qualify the referral", node, 4, {
                "resource": "referral", "operation": "qualify", "friendExternalId": "friend-n8n",
                "eventId": "order-1", "eventType": "first_order", "eventAmount": 4900, "eventCurrency": "EUR",
                "eventOccurredAt": "2026-11-20T10:00:00Z",
                # an expression that finds nothing ('') is dropped from the list, not sent
                "additionalFields": {"eventPaymentReferences": ["ch_n8n_1", "={{ '' }}"]}}),
            _node("Issue the gift cards", node, 5, {"resource": "giftCard", "operation": "issue",
                                                    "referralId": "={{ $json.id }}"}),
            # Ordinary traffic with nothing to do goes on (changed: false) instead of failing the run.
            _node("Claim without a code", node, 6, {
                "resource": "referral", "operation": "claim", "code": "={{ $json.no_such_field }}",
                "friendExternalId": "friend-n8n-2", "friendEmail": "carl@example.com"}),
            _node("Claim with an unknown code", node, 7, {
                "resource": "referral", "operation": "claim", "code": "NOSUCHCODE",
                "friendExternalId": "friend-n8n-2", "friendEmail": "carl@example.com"}),
            _node("Reverse an unknown payment", node, 8, {
                "resource": "referral", "operation": "reverse", "reason": "refund", "friendExternalId": "",
                "paymentReferences": ["ch_nobody"]}),
            _node("Find the referral", node, 9, {"resource": "referral", "operation": "get",
                                                 "referralId": "={{ $('Claim the referral').item.json.id }}"}),
        ]
        workflow = {"name": "community node", "nodes": chain, "connections": _chain(*chain), "active": False,
                    "settings": {"executionOrder": "v1"}, "pinData": {},
                    "versionId": "8f9b6a3e-0c5d-4a39-9a52-3f3f0e1d7c11"}
        n8n.import_workflow(workflow, "nodeWorkflow0001")
        result = n8n.execute("nodeWorkflow0001")
        assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
        person = session.get(f"{base}/v1/people/friend-n8n", timeout=10).json()
        referral = person["referred_as_friend"][0]
        assert referral["status"] == "rewarded"
        assert '"status": "rewarded"' in result.stdout  # what the last node (get) returned
        cards = session.get(f"{base}/v1/people/friend-n8n", timeout=10).json()["gift_cards"]
        # Running the same workflow again (an n8n retry): same link, the claim replays its key,
        # the qualifying event is a duplicate and the cards exist: nothing changes.
        result = n8n.execute("nodeWorkflow0001")
        assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
        again = session.get(f"{base}/v1/people/friend-n8n", timeout=10).json()
        assert [r["referral_id"] for r in again["referred_as_friend"]] == [referral["referral_id"]]
        assert again["gift_cards"] == cards
        unknown = session.get(f"{base}/v1/people/friend-n8n-2", timeout=10)  # nobody referred them
        assert unknown.status_code == 404 or unknown.json()["referred_as_friend"] == [], unknown.text
        # The qualify node sent the payment's references: a dispute naming only the charge finds it.
        reversed_ = session.post(f"{base}/v1/referrals/reverse", timeout=10,
                                 json={"reason": "chargeback", "payment_references": ["ch_n8n_1"]}).json()
        assert (reversed_["id"], reversed_["status"]) == (referral["referral_id"], "reversed")


def _n8n_rest(base: str) -> requests.Session:
    """Set up the instance owner over n8n's REST API and return a logged-in session."""
    rest = requests.Session()
    rest.headers["browser-id"] = "referflow-tests"
    owner = rest.post(f"{base}/rest/owner/setup", timeout=30, json={
        "email": "owner@example.com", "firstName": "Test", "lastName": "Owner", "password": "Referflow-Tests-1"})
    assert owner.ok, owner.text[:500]
    return rest


def _test_credential(rest, n8n_base, credential):
    """n8n's credential "Test" call; on a loaded machine its first answer can be an error
    envelope without ``data`` (seen once in CI): ask again, and show the answer if it persists."""
    answer = {}
    for _ in range(3):
        answer = rest.post(f"{n8n_base}/rest/credentials/test", timeout=60,
                           json={"credentials": credential}).json()
        if "data" in answer:
            return answer["data"]
        time.sleep(2)
    raise AssertionError(f"n8n's credential test answered {answer}")


@needs_n8n_node
@pytest.mark.slow
@pytest.mark.n8n
def test_the_trigger_subscribes_verifies_signatures_and_unsubscribes(database_url, settings, tmp_path):
    port = free_port()
    with Receiver() as receiver, live_server(database_url, tmp_path,
                                             REFERFLOW_ALLOW_PRIVATE_WEBHOOK_URLS="true") as base:
        key, session = live_program(base, {**PROGRAM_CONFIG, "hold_days": 0}, name="nodes")
        n8n = N8n(tmp_path / "n8n")
        _install_community_package(n8n, tmp_path)
        n8n.import_credentials([{"id": "referflowNodeCred", "name": "referflow", "type": "referflowApi",
                                 "data": {"baseUrl": base, "apiKey": key}}])
        trigger = _node("When referflow sends an event", "n8n-nodes-referflow.referflowTrigger", 1,
                        {"events": ["referral.claimed"]})
        trigger["webhookId"] = "5b0e7f0e-8f0a-4c56-9d1e-2a6c1c6f3b21"
        forward = _node("Forward the event", "n8n-nodes-base.httpRequest", 2, {
            "method": "POST", "url": receiver.url, "sendBody": True, "specifyBody": "json",
            "jsonBody": "={{ JSON.stringify($json) }}", "options": {}}, credentials=False)
        forward["typeVersion"] = 4.2
        workflow = {"name": "community trigger", "nodes": [trigger, forward], "connections": _chain(trigger, forward),
                    "active": False, "settings": {"executionOrder": "v1"}, "pinData": {},
                    "versionId": "2d7c61b4-51a3-4f59-8a59-6f0c3f1e9a42"}
        n8n.import_workflow(workflow, "nodeTrigger00001")
        n8n.activate("nodeTrigger00001")
        log_path = tmp_path / "n8n-start.log"
        # A subscription of the trigger's own URL that the node does not know (n8n stopped while
        # listening, a restored backup): referflow keeps one per endpoint, so the node replaces it.
        own_url = f"http://127.0.0.1:{port}/webhook/{trigger['webhookId']}/webhook"
        leftover = session.post(f"{base}/v1/webhooks", timeout=10, json={
            "url": own_url, "events": ["referral.claimed"]}).json()["id"]
        with n8n.serve(port, log_path, WEBHOOK_URL=f"http://127.0.0.1:{port}/", N8N_SECURE_COOKIE="false") as n8n_base:
            # Activation makes the trigger subscribe itself in referflow.
            subscriptions = []
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not [s for s in subscriptions if s["id"] != leftover]:
                time.sleep(1)
                subscriptions = session.get(f"{base}/v1/webhooks", timeout=10).json()["items"]
            assert len(subscriptions) == 1, (subscriptions, log_path.read_text()[-3000:])
            hook = subscriptions[0]
            assert hook["id"] != leftover and hook["url"] == own_url
            assert hook["url"].startswith(f"{n8n_base}/webhook/") and hook["events"] == ["referral.claimed"]
            # A forged delivery is refused before the workflow runs.
            forged = requests.post(hook["url"], timeout=10, json={"id": "evt_forged", "type": "referral.claimed"},
                                   headers={"webhook-id": "msg_x", "webhook-timestamp": str(int(time.time())),
                                            "webhook-signature": "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="})
            assert forged.status_code == 401 and forged.json()["code"] == "invalid_signature"
            # A real, signed referflow delivery runs it.
            code = session.post(f"{base}/v1/links", timeout=10, json={
                "advocate": {"external_id": "adv-t", "email": "ann@example.com"}}).json()["code"]
            session.post(f"{base}/v1/referrals/claim", timeout=10, json={
                "code": code, "friend": {"external_id": "friend-t", "email": "bob@example.com"}})
            deadline = time.monotonic() + 120  # generous: a loaded CI machine runs n8n slowly
            while time.monotonic() < deadline and not receiver.requests:
                time.sleep(0.5)
            deliveries = session.get(f"{base}/v1/webhooks/{hook['id']}/deliveries", timeout=10).json()
            assert len(receiver.requests) == 1, ([(d["status"], d["last_status_code"], d["last_error"])
                                                 for d in deliveries["items"]], log_path.read_text()[-2000:])
            event = json.loads(receiver.requests[0]["body"])
            assert event["type"] == "referral.claimed"
            assert event["data"]["referral"]["friend"]["external_id"] == "friend-t"
            rest = _n8n_rest(n8n_base)
            # The credential's test call (n8n's "Test" button) accepts the key, refuses a wrong one.
            credential = {"id": "referflowNodeCred", "name": "referflow", "type": "referflowApi",
                          "data": {"baseUrl": base, "apiKey": key}}
            tested = _test_credential(rest, n8n_base, credential)
            assert tested["status"] == "OK", tested
            credential["data"] = {"baseUrl": base, "apiKey": "rfk_not_a_key"}
            tested = _test_credential(rest, n8n_base, credential)
            assert tested["status"] == "Error", tested
            # Deactivating the workflow deletes the subscription in referflow.
            deactivated = rest.post(f"{n8n_base}/rest/workflows/nodeTrigger00001/deactivate", timeout=30)
            assert deactivated.ok, deactivated.text[:500]
            # (n8n 2.x unpublishes through an outbox: the trigger's delete runs just after the call returns.)
            deadline = time.monotonic() + 60
            while session.get(f"{base}/v1/webhooks", timeout=10).json()["items"] and time.monotonic() < deadline:
                time.sleep(0.2)
            assert session.get(f"{base}/v1/webhooks", timeout=10).json()["items"] == []


# ---- Zapier --------------------------------------------------------------------------------------

needs_zapier = pytest.mark.skipif(
    not (ZAPIER_APP / "node_modules" / "zapier-platform-core").is_dir() or shutil.which("node") is None,
    reason="integrations/zapier has no node_modules (npm ci): the Zapier app was NOT tested")


@needs_zapier
@pytest.mark.slow
def test_the_zapier_app_validates_and_its_tests_pass_against_referflow(database_url, settings, tmp_path):
    with live_server(database_url, tmp_path, REFERFLOW_ALLOW_PRIVATE_WEBHOOK_URLS="true") as base:
        key, _ = live_program(base, {**PROGRAM_CONFIG, "hold_days": 0}, name="nodes")
        result = subprocess.run(["node", "--test", "test/"], cwd=ZAPIER_APP, capture_output=True, text=True,
                                timeout=300, env={**os.environ, "REFERFLOW_BASE_URL": base,
                                                  "REFERFLOW_API_KEY": key})
    assert result.returncode == 0, (result.stdout[-4000:], result.stderr[-2000:])
    assert "# fail 0" in result.stdout and "# skipped 0" in result.stdout
    assert "# pass 9" in result.stdout


@needs_zapier
def test_the_zapier_app_validates_and_labels_its_output():
    """Without a referflow: zapier-platform-core's validateApp finds no error, every trigger, create
    and search has labelled output fields, and the requests the app builds are right."""
    result = subprocess.run(["node", "--test", "test/"], cwd=ZAPIER_APP, capture_output=True, text=True,
                            timeout=120, env={k: v for k, v in os.environ.items() if not k.startswith("REFERFLOW_")})
    assert result.returncode == 0, (result.stdout[-4000:], result.stderr[-2000:])
    assert "# fail 0" in result.stdout and "# pass 4" in result.stdout
    assert "ok 1 - the app definition validates with zero errors" in result.stdout


def test_cli_generate_then_check(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "referflow.cli", "nodes", *args], capture_output=True,
                              text=True, timeout=120)

    out = str(tmp_path / "integrations")
    stale = cli("check", "--out", out)
    assert stale.returncode == 1 and "out of date: n8n-nodes-referflow/package.json" in stale.stderr
    generated = cli("generate", "--out", out)
    assert generated.returncode == 0, generated.stderr
    assert cli("check", "--out", out).returncode == 0
    (tmp_path / "integrations" / "zapier" / "creates" / "claimReferral.js").write_text("// edited by hand\n")
    edited = cli("check", "--out", out)
    assert edited.returncode == 1 and "out of date: zapier/creates/claimReferral.js" in edited.stderr
