"""The n8n workflow pack: render per client (deterministic), check files, import into real n8n."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from referflow import api
from referflow import workflows as pack
from referflow.api.meta import openapi_document
from referflow.domain.money import EXPONENTS
from referflow.errors import ValidationFailed
from referflow.providers.issuers import STRIPE_EXPONENTS

PACK = pack.pack_dir()
N8N = Path(os.environ.get("REFERFLOW_N8N_DIR", Path.home() / ".cache" / "referflow-n8n"))
CLIENT = {"client": "acme", "referflow_base_url": "https://refer.acme.example/",
          "currency": "SEK", "providers": ["stripe", "klaviyo"], "name_prefix": "Acme | ",
          "tags": ["client-acme"], "credentials": {"referflow": "referflow API (Acme)",
                                                   "stripe": "Stripe (Acme)", "klaviyo": "Klaviyo (Acme)"}}


@pytest.fixture(scope="module")
def openapi():
    api.modules()
    return openapi_document()


def test_the_pack_passes_its_own_check(openapi):
    assert pack.check(PACK, openapi) == []
    files = [e["file"] for e in json.loads((PACK / "pack.json").read_text())["workflows"]]
    assert len(files) == 10 and all((PACK / f).exists() for f in files)


def test_render_for_a_client(tmp_path, openapi):
    written = pack.render(CLIENT, tmp_path / "out")
    names = sorted(p.name for p in written)
    assert names == ["acme-error-alert.json", "acme-moment-stripe.json", "acme-new-customer-to-advocate.json",
                     "acme-review-digest.json", "acme-reward-fulfilment.json", "acme-stripe-to-referral.json"]
    assert pack.check(tmp_path / "out", openapi) == []
    advocate = json.loads((tmp_path / "out" / "acme-new-customer-to-advocate.json").read_text())
    node_names = {n["name"] for n in advocate["nodes"]}
    assert "Write the link to HubSpot" not in node_names and "Send the link to Klaviyo" in node_names
    assert "When a Shopify customer is created" not in node_names
    assert "Read the Shopify customer" not in node_names and "Read the Stripe customer" in node_names
    assert advocate["name"].startswith("Acme | referflow:")
    assert {"name": "client-acme"} in advocate["tags"]
    settings = next(n for n in advocate["nodes"] if n["name"] == "Settings")
    values = {a["name"]: a["value"] for a in settings["parameters"]["assignments"]["assignments"]}
    assert values == {"referflow_base_url": "https://refer.acme.example", "currency": "SEK"}
    credentials = {c["name"] for n in advocate["nodes"] for c in (n.get("credentials") or {}).values()}
    assert credentials == {"referflow API (Acme)", "Stripe (Acme)", "Klaviyo (Acme)"}
    rewards = json.loads((tmp_path / "out" / "acme-reward-fulfilment.json").read_text())
    hook = next(n for n in rewards["nodes"] if n["type"] == "n8n-nodes-base.webhook")
    assert hook["parameters"]["path"] == "acme-referflow-rewards"


def test_render_for_a_shopify_only_client(tmp_path, openapi):
    client = {"client": "shoe-shop", "referflow_base_url": "https://refer.shoes.example",
              "providers": ["shopify"], "shopify_store": "shoe-shop"}
    names = sorted(p.name for p in pack.render(client, tmp_path))
    assert names == ["shoe-shop-error-alert.json", "shoe-shop-new-customer-to-advocate.json",
                     "shoe-shop-review-digest.json", "shoe-shop-shopify-to-referral.json"]
    assert pack.check(tmp_path, openapi) == []
    advocate = json.loads((tmp_path / "shoe-shop-new-customer-to-advocate.json").read_text())
    assert {n["name"] for n in advocate["nodes"] if n["type"].endswith("Trigger")} == {
        "When a Shopify customer is created"}
    shop = json.loads((tmp_path / "shoe-shop-shopify-to-referral.json").read_text())
    settings = next(n for n in shop["nodes"] if n["name"] == "Settings")
    values = {a["name"]: a["value"] for a in settings["parameters"]["assignments"]["assignments"]}
    # The Shopify workflow no longer calls Shopify's Admin API (refunds reverse by order id), so
    # its Settings hold no shopify_admin_api for the client's shopify_store to fill.
    assert values["referflow_base_url"] == "https://refer.shoes.example" and "shopify_admin_api" not in values


def test_rendering_is_byte_identical(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    pack.render(CLIENT, first)
    pack.render(CLIENT, second)
    for path in first.iterdir():
        assert path.read_bytes() == (second / path.name).read_bytes()
    other = pack.render({**CLIENT, "client": "globex"}, tmp_path / "c")
    ids = {json.loads(p.read_text())["versionId"] for p in other}
    assert ids.isdisjoint({json.loads(p.read_text())["versionId"] for p in first.iterdir()})


@pytest.mark.parametrize(("change", "where"), [
    ({"referflow_base_url": "not a url"}, "/referflow_base_url"),
    ({"providers": ["paypal"]}, "/providers/0"),
    ({"client": "Acme Corp"}, "/client"),
    ({"currency": "sek"}, "/currency"),
])
def test_bad_client_files_are_refused_with_the_field(tmp_path, change, where):
    with pytest.raises(ValidationFailed) as exc:
        pack.render({**CLIENT, **change}, tmp_path)
    assert where in {e["path"] for e in exc.value.errors}


def _broken(tmp_path, mutate):
    workflow = json.loads((PACK / "stripe-to-referral.json").read_text())
    mutate(workflow)
    (tmp_path / "w.json").write_text(json.dumps(workflow))
    return tmp_path


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda w: w["nodes"].append(dict(w["nodes"][1])), "duplicate node id"),
    (lambda w: w["connections"]["Settings"]["main"][0].append(
        {"node": "Nowhere", "type": "main", "index": 0}), "unknown node 'Nowhere'"),
    (lambda w: w["nodes"][4]["parameters"].update(
        url="={{ $('Settings').item.json.referflow_base_url }}/v1/nope"), "is no referflow operation"),
    (lambda w: w["nodes"][4]["parameters"].update(method="DELETE"), "is no referflow operation"),
    (lambda w: w["nodes"][1]["parameters"].update(apiKey="sk_live_51Habcdefghijklmnop"), "inline secret"),
    (lambda w: w.update(pinData={"x": [{"json": {}}]}), "pinData"),
    (lambda w: w.update(active=True), "active"),
    (lambda w: next(n for n in w["nodes"] if n["name"] == "Read the checkout's promotion code from Stripe")[
        "parameters"]["headerParameters"]["parameters"][0].update(value="2024-06-20"),
     "Stripe-Version '2024-06-20', not '2025-04-30.basil'"),
])
def test_check_finds_each_kind_of_problem(tmp_path, openapi, mutate, expected):
    problems = pack.check(_broken(tmp_path, mutate), openapi)
    assert any(expected in p for p in problems), problems


def _set_table(workflow, name, value):
    settings = next(n for n in workflow["nodes"] if n["name"] == "Settings")
    for item in settings["parameters"]["assignments"]["assignments"]:
        if item["name"] == name:
            item["value"] = value


def _table(workflow, name):
    return json.loads(pack.settings_values(workflow)[name])


def test_every_copy_of_the_exponent_tables_matches_referflow(tmp_path):
    copies = {}
    for path in sorted(PACK.glob("*-to-referral.json")):
        workflow = json.loads(path.read_text())
        copies[path.name] = _table(workflow, "currency_exponents")
        assert copies[path.name] == dict(EXPONENTS)
    assert sorted(copies) == ["hubspot-to-referral.json", "shopify-to-referral.json", "stripe-to-referral.json"]
    stripe = json.loads((PACK / "stripe-to-referral.json").read_text())
    assert _table(stripe, "stripe_exponents") == dict(STRIPE_EXPONENTS)
    for path in pack.render({**CLIENT, "providers": ["stripe", "shopify", "hubspot", "klaviyo"]}, tmp_path):
        if path.name.endswith("-to-referral.json"):  # rendering keeps the tables as they are
            assert _table(json.loads(path.read_text()), "currency_exponents") == dict(EXPONENTS)


@pytest.mark.parametrize(("file", "name", "value", "expected"), [
    ("shopify-to-referral.json", "currency_exponents", json.dumps({**EXPONENTS, "KWD": 2}),
     "currency_exponents differs from referflow.domain.money.EXPONENTS: KWD 2 (referflow: 3)"),
    ("hubspot-to-referral.json", "currency_exponents",
     json.dumps({k: v for k, v in EXPONENTS.items() if k != "CLF"}), "CLF missing (referflow: 4)"),
    ("hubspot-to-referral.json", "currency_exponents", json.dumps({**EXPONENTS, "HUF": 0}),
     "HUF 0 not in referflow"),
    ("stripe-to-referral.json", "currency_exponents", json.dumps({**EXPONENTS, "JPY": 0.0}),
     "every exponent must be a JSON integer"),
    ("stripe-to-referral.json", "stripe_exponents", json.dumps({"ISK": 2, "UGX": 2}),
     "stripe_exponents differs from referflow.providers.issuers.STRIPE_EXPONENTS: MGA missing"),
    ("stripe-to-referral.json", "currency_exponents", "{not json", "currency_exponents is not a JSON object"),
])
def test_a_pack_whose_exponent_table_differs_fails_the_check(tmp_path, openapi, file, name, value, expected):
    workflow = json.loads((PACK / file).read_text())
    _set_table(workflow, name, value)
    (tmp_path / file).write_text(json.dumps(workflow))
    problems = pack.check(tmp_path, openapi)
    assert any(expected in p for p in problems), problems


def test_an_inline_exponent_table_or_a_missing_one_fails_the_check(tmp_path, openapi):
    workflow = json.loads((PACK / "shopify-to-referral.json").read_text())
    node = next(n for n in workflow["nodes"] if n["name"] == "Qualify with the first order")
    node["parameters"]["jsonBody"] = node["parameters"]["jsonBody"].replace(
        "?? 2", "?? (['KWD','BHD'].includes(c) ? 3 : 2)")
    settings = next(n for n in workflow["nodes"] if n["name"] == "Settings")["parameters"]["assignments"]
    settings["assignments"] = [a for a in settings["assignments"] if a["name"] != "currency_exponents"]
    (tmp_path / "w.json").write_text(json.dumps(workflow))
    problems = pack.check(tmp_path, openapi)
    assert any("BHD, KWD quoted in code" in p for p in problems), problems
    assert any("reads currency_exponents, which the Settings node does not hold" in p for p in problems), problems


def test_cli_render_and_check(tmp_path):
    client = tmp_path / "client.yaml"
    client.write_text(yaml.safe_dump(CLIENT))
    out = tmp_path / "out"
    cli = [sys.executable, "-m", "referflow.cli", "workflows"]
    rendered = subprocess.run([*cli, "render", "--client", str(client), "--out", str(out)],
                              capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    checked = subprocess.run([*cli, "check", str(out)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and "ok" in checked.stdout
    client.write_text("client: [unclosed")
    bad = subprocess.run([*cli, "render", "--client", str(client), "--out", str(out)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr


def _n8n() -> Path | None:
    binary = N8N / "node_modules" / ".bin" / "n8n"
    return binary if binary.exists() and shutil.which("node") else None


@pytest.mark.slow
@pytest.mark.skipif(_n8n() is None, reason="n8n is not installed in ~/.cache/referflow-n8n: "
                    "real-n8n import is NOT tested (see docs/workflows.md)")
def test_every_workflow_and_rendered_variant_imports_into_real_n8n(tmp_path):
    rendered = pack.render({**CLIENT, "providers": ["stripe", "shopify", "hubspot", "klaviyo"]},
                           tmp_path / "rendered")
    files = [PACK / e["file"] for e in json.loads((PACK / "pack.json").read_text())["workflows"]]
    env = {**os.environ, "N8N_USER_FOLDER": str(tmp_path / "n8n"), "N8N_ENCRYPTION_KEY": "test-key",
           "N8N_DIAGNOSTICS_ENABLED": "false", "N8N_PERSONALIZATION_ENABLED": "false",
           "N8N_VERSION_NOTIFICATIONS_ENABLED": "false", "N8N_TEMPLATES_ENABLED": "false",
           "N8N_RUNNERS_ENABLED": "false", "N8N_EXPRESSION_ENGINE": "legacy"}
    for path in files + rendered:
        result = subprocess.run([str(_n8n()), "import:workflow", f"--input={path}"], env=env,
                                capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, (path.name, result.stdout[-2000:], result.stderr[-2000:])
    listed = subprocess.run([str(_n8n()), "list:workflow"], env=env, capture_output=True,
                            text=True, timeout=180)
    assert listed.stdout.count("|") >= len(files) + len(rendered)


# The error workflow (issue item 4): n8n runs it when a production run fails, by the id each
# workflow's settings name; agencies import several clients into one n8n, so each client's is its own.
def test_every_pack_workflow_names_the_error_workflow_and_keeps_failed_executions():
    workflows = {p.name: json.loads(p.read_text()) for p in PACK.glob("*.json") if p.name != "pack.json"}
    errors = [name for name, w in workflows.items() if pack.is_error_workflow(w)]
    assert errors == ["error-alert.json"]
    error = workflows.pop("error-alert.json")
    assert error["id"] == "rfErrorAlert0001" and "errorWorkflow" not in error["settings"]
    senders = {n["name"]: n for n in error["nodes"]
               if n["type"] in ("n8n-nodes-base.slack", "n8n-nodes-base.emailSend")}
    assert set(senders) == {"Post the alert to Slack", "Email the alert"}
    assert all(n["disabled"] for n in senders.values())  # until the user adds a credential
    for name, workflow in workflows.items():
        assert workflow["settings"]["errorWorkflow"] == "rfErrorAlert0001", name
        assert workflow["settings"]["saveDataErrorExecution"] == "all", name


def test_render_gives_each_client_its_own_error_workflow(tmp_path, openapi):
    ids = {}
    for slug in ("acme", "globex"):
        written = pack.render({**CLIENT, "client": slug, "providers": ["stripe", "shopify", "hubspot", "klaviyo"]},
                              tmp_path / "out")
        rendered = {p.name: json.loads(p.read_text()) for p in written}
        error = rendered.pop(f"{slug}-error-alert.json")
        assert error["id"] == pack.error_workflow_id(slug) and pack.WORKFLOW_ID.match(error["id"])
        assert error["name"] == "Acme | referflow: Error alert"
        assert {w["settings"]["errorWorkflow"] for w in rendered.values()} == {error["id"]}
        ids[slug] = error["id"]
    assert ids["acme"] != ids["globex"] and ids["acme"] == pack.error_workflow_id("acme")  # deterministic
    # Both clients in one folder (one n8n): each workflow names an error workflow that is there.
    assert pack.check(tmp_path / "out", openapi) == []


def test_a_dropped_optional_step_passes_on_to_what_it_fed(tmp_path):
    """Without HubSpot, the reward workflow goes from Klaviyo straight to remembering the delivery."""
    rendered = pack.render({**CLIENT, "providers": ["klaviyo"]}, tmp_path)
    rewards = json.loads(next(p for p in rendered if p.name.endswith("reward-fulfilment.json")).read_text())
    assert "Update the contact in HubSpot" not in {n["name"] for n in rewards["nodes"]}
    assert rewards["connections"]["Send the event to Klaviyo"]["main"] == [
        [{"node": "Remember the delivery", "type": "main", "index": 0}],
        [{"node": "Answer: failed, retry later", "type": "main", "index": 0}]]
    assert "Update the contact in HubSpot" not in rewards["connections"]


def _without_prefer(workflow):
    node = next(n for n in workflow["nodes"] if n["name"] == "Create the advocate's referral link")
    headers = node["parameters"]["headerParameters"]["parameters"]
    headers[:] = [h for h in headers if h["name"] != "Prefer"]


def _other_prefer(workflow):
    node = next(n for n in workflow["nodes"] if n["name"] == "Create the advocate's referral link")
    headers = node["parameters"]["headerParameters"]["parameters"]
    next(h for h in headers if h["name"] == "Prefer")["value"] = "return=minimal"


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda w: w["settings"].pop("errorWorkflow"),
     "settings.errorWorkflow is None, not the pack's error workflow (rfErrorAlert0001)"),
    (lambda w: w["settings"].update(errorWorkflow="someOtherFlow01"),
     "settings.errorWorkflow is 'someOtherFlow01', not the pack's error workflow"),
    (lambda w: w["settings"].update(saveDataErrorExecution="none"),
     "settings.saveDataErrorExecution is 'none', not 'all'"),
    (_without_prefer, "node \"Create the advocate's referral link\": POST /v1/links without the header "
                      "'Prefer: outcome=explicit'"),
    (_other_prefer, "POST /v1/links without the header 'Prefer: outcome=explicit'"),
])
def test_check_finds_missing_error_handling_and_prefer(tmp_path, openapi, mutate, expected):
    shutil.copy(PACK / "error-alert.json", tmp_path)
    workflow = json.loads((PACK / "new-customer-to-advocate.json").read_text())
    mutate(workflow)
    (tmp_path / "w.json").write_text(json.dumps(workflow))
    problems = pack.check(tmp_path, openapi)
    assert [p for p in problems if expected in p] and len(problems) == 1, problems


def test_check_wants_an_error_workflow_with_a_usable_id(tmp_path, openapi):
    shutil.copy(PACK / "review-digest.json", tmp_path)  # a GET only: no Prefer needed
    assert any("not the pack's error workflow (none in this folder)" in p for p in pack.check(tmp_path, openapi))
    error = json.loads((PACK / "error-alert.json").read_text())
    (tmp_path / "error.json").write_text(json.dumps({**error, "id": "an-error-workflow-id-too-long"}))
    problems = pack.check(tmp_path, openapi)
    assert any("error.json: the error workflow needs a fixed id of 1-16 letters and digits" in p
               for p in problems), problems
    (tmp_path / "error.json").write_text(json.dumps({**error, "id": "rfErrorAlert0001"}))
    assert pack.check(tmp_path, openapi) == []


def test_pack_writes_to_referflow_send_prefer_outcome_explicit(openapi):
    """Every POST the pack makes to a referflow operation that honours Prefer sends it; every write
    sends an Idempotency-Key, and the one question (checkMessage) none: a replay must ask again."""
    honours = {path for path, ops in openapi["paths"].items()
               if any(p["name"] == "Prefer" for p in ops.get("post", {}).get("parameters", []))}
    writes = 0
    for path in PACK.glob("*.json"):
        workflow = json.loads(path.read_text())
        for node in workflow.get("nodes", []) if isinstance(workflow, dict) else []:
            url = str(node.get("parameters", {}).get("url", ""))
            if node["type"] == "n8n-nodes-base.httpRequest" and "referflow_base_url" in url and (
                    node["parameters"].get("method") == "POST"):
                writes += 1
                operation = url.split("}}", 1)[1]
                headers = {h["name"]: h["value"] for h in
                           (node["parameters"].get("headerParameters") or {}).get("parameters", [])}
                if operation in honours:
                    assert headers.get("Prefer") == "outcome=explicit", (path.name, node["name"])
                if operation == "/v1/messages/check":
                    assert "Idempotency-Key" not in headers, (path.name, node["name"])
                else:
                    assert headers.get("Idempotency-Key"), (path.name, node["name"])
    assert writes >= 1


# Every send path obeys referflow's send rules (issue 14): a send to a person only after checkMessage.
def _send_without_asking(workflow):
    workflow["connections"]["Is there a link to send"]["main"][0] = [
        {"node": "Send the link to Klaviyo", "type": "main", "index": 0}]


def _check_with_idempotency_key(workflow):
    node = next(n for n in workflow["nodes"] if n["name"] == "May referflow send it now")
    node["parameters"].update(sendHeaders=True, headerParameters={"parameters": [
        {"name": "Idempotency-Key", "value": "={{ $json.source_event }}"}]})


def _rename(old, new):
    def mutate(workflow):
        next(n for n in workflow["nodes"] if n["name"] == old)["name"] = new
        workflow["connections"] = json.loads(json.dumps(workflow["connections"]).replace(f'"{old}"', f'"{new}"'))
    return mutate


@pytest.mark.parametrize(("file", "mutate", "expected"), [
    ("new-customer-to-advocate.json", _send_without_asking,
     "node 'Send the link to Klaviyo' sends to a person without asking referflow first (checkMessage)"),
    ("new-customer-to-advocate.json", _check_with_idempotency_key,
     "node 'May referflow send it now': checkMessage with an Idempotency-Key"),
    ("new-customer-to-advocate.json", _rename("Skipped: suppressed", "Skipped: supressed"),
     "node 'Skipped: supressed': 'supressed' is no reason referflow gives"),
    ("moment-stripe.json", _rename("Skipped: not_a_fit", "Skipped: other fit"),
     "no node 'Skipped: not_a_fit': a decision skipped for that reason would end at 'Skipped: other reason'"),
])
def test_check_finds_a_send_path_that_does_not_obey_the_send_rules(tmp_path, openapi, file, mutate, expected):
    shutil.copy(PACK / "error-alert.json", tmp_path)
    workflow = json.loads((PACK / file).read_text())
    mutate(workflow)
    (tmp_path / "w.json").write_text(json.dumps(workflow))
    problems = pack.check(tmp_path, openapi)
    assert [p for p in problems if expected in p], problems


def test_render_fills_the_shopify_admin_api_from_the_store(tmp_path):
    client = {"client": "shoe-shop", "referflow_base_url": "https://refer.shoes.example",
              "providers": ["shopify", "klaviyo"], "shopify_store": "shoe-shop"}
    written = {p.name: json.loads(p.read_text()) for p in pack.render(client, tmp_path)}
    moments = written["shoe-shop-moment-shopify.json"]
    assert pack.settings_values(moments)["shopify_admin_api"] == "https://shoe-shop.myshopify.com/admin/api/2024-10"
    names = {n["name"] for n in moments["nodes"]}
    assert "Send the ask to Klaviyo" in names and "Write the ask to HubSpot" not in names
    assert "shoe-shop-moment-stripe.json" not in written and "shoe-shop-moment-hubspot.json" not in written


def test_workflows_read_the_ids_n8ns_hubspot_trigger_hands_on():
    """n8n's HubSpot Trigger renames ``objectId`` (contactId, dealId...): a workflow it starts
    never reads ``objectId`` (a plain Webhook node receiving HubSpot's own body still may)."""
    for path in sorted(PACK.glob("*.json")):
        workflow = json.loads(path.read_text())
        if not isinstance(workflow, dict) or "nodes" not in workflow:
            continue
        if any(n["type"] == "n8n-nodes-base.hubspotTrigger" for n in workflow["nodes"]):
            assert "objectId" not in json.dumps(workflow), path.name


def test_the_shopify_workflow_sends_every_discount_code_of_the_order():
    workflow = json.loads((PACK / "shopify-to-referral.json").read_text())
    node = next(n for n in workflow["nodes"] if n["name"] == "Claim from the discount code")
    body = node["parameters"]["jsonBody"]
    assert "codes: ($('When a Shopify order is paid').item.json.discount_codes || []).map(" in body
    assert "discount_codes || [])[0]" not in body  # not only the first one
