"""The native-node flavour of the pack (``to_native``): the splitter of JSON bodies, every pack
workflow converting with nothing dropped, determinism, the errors, and ``render --flavour native``.
Running the native flavour in a real n8n: tests/test_n8n_traffic.py (both flavours of every case)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from referflow import api, nodegen
from referflow import workflows as pack
from referflow.api.meta import openapi_document
from referflow.native_flavour import (
    CREDENTIAL_TYPE,
    NODE_TYPE,
    NODE_VERSION,
    TRIGGER_TYPE,
    TRIGGER_VERSION,
    NativeFlavourError,
    check_native,
    field_value,
    is_object_literal,
    is_referflow_call,
    json_body_leaves,
    object_entries,
    object_leaves,
    split_top_level,
    to_native,
)
from referflow.nodes import load_specs

PACK = pack.pack_dir()
FILES = [e["file"] for e in json.loads((PACK / "pack.json").read_text())["workflows"]]
N8N_PACKAGE = Path(__file__).resolve().parents[1] / "integrations" / nodegen.N8N
CLIENT = {"client": "acme", "referflow_base_url": "https://refer.acme.example/", "currency": "SEK",
          "providers": ["stripe", "shopify", "hubspot", "klaviyo"], "name_prefix": "Acme | ",
          "credentials": {"referflow": "referflow API (Acme)", "klaviyo": "Klaviyo (Acme)"}}


def _workflow(file: str) -> dict:
    return json.loads((PACK / file).read_text())


@pytest.fixture(scope="module")
def specs():
    return load_specs()


@pytest.fixture(scope="module")
def openapi():
    api.modules()
    return openapi_document()


# ---- the splitter ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "parts"), [
    ("a, b, c", ["a", " b", " c"]),
    ("f(a, b), [1, 2], { x: 1, y: 2 }", ["f(a, b)", " [1, 2]", " { x: 1, y: 2 }"]),
    ("'a, b', \"c, d\", 'it\\'s, ok'", ["'a, b'", ' "c, d"', " 'it\\'s, ok'"]),
    ("`x, ${a, b} y`, z", ["`x, ${a, b} y`", " z"]),
    ("`${ `inner, ${ {a: 1}.a }` }`, z", ["`${ `inner, ${ {a: 1}.a }` }`", " z"]),
    ("`a}b{`, c", ["`a}b{`", " c"]),
    ("s.split(/[,'}]/), t", ["s.split(/[,'}]/)", " t"]),
    ("a / b, c / d", ["a / b", " c / d"]),
    ("(x) => { return /[,)]/.test(x) }, y", ["(x) => { return /[,)]/.test(x) }", " y"]),
    ("typeof/,/, n / 2", ["typeof/,/", " n / 2"]),
    ("(x) => x ? { a: 1, b: 2 } : null, next", ["(x) => x ? { a: 1, b: 2 } : null", " next"]),
    ("a /* , */, b // , c\n, d", ["a /* , */", " b // , c\n", " d"]),
    ("$json.a?.b ?? 'x,y', 10 ** -d % 2", ["$json.a?.b ?? 'x,y'", " 10 ** -d % 2"]),
])
def test_split_top_level_respects_brackets_quotes_templates_regexes_and_comments(text, parts):
    assert split_top_level(text) == parts


@pytest.mark.parametrize("text", ["f(a, b", "a)", "[1, 2}", "'open", "`open ${a", "x = /open", "a /* open"])
def test_unbalanced_text_is_refused(text):
    with pytest.raises(NativeFlavourError):
        split_top_level(text)


def test_object_entries_read_keys_values_and_shorthands():
    text = "{ code: $json.a || null, 'quoted key': 1, \"dq\": 'v', short, trailing: [1, 2], }"
    assert object_entries(text) == [("code", "$json.a || null"), ("quoted key", "1"), ("dq", "'v'"),
                                    ("short", "short"), ("trailing", "[1, 2]")]
    assert is_object_literal("{ a: 1 }") and not is_object_literal("{ a: 1 }.a") \
        and not is_object_literal("({ a: 1 })") and not is_object_literal("$json")


@pytest.mark.parametrize(("text", "message"), [
    ("{ ...$json, a: 1 }", "spread"),
    ("{ [key]: 1 }", "computed key"),
    ("{ a: 1, a: 2 }", "given twice"),
    ("{ method() { return 1 } }", "method"),
    ("{ a: }", "no value"),
    ("{ a: 1,, b: 2 }", "empty property"),
])
def test_object_entries_refuse_what_names_no_one_property(text, message):
    with pytest.raises(NativeFlavourError, match=message):
        object_entries(text)


def test_object_leaves_recurse_into_nested_object_literals_only():
    text = ("{ friend: { external_id: $json.id ? String($json.id) : null, email: ($json.p || {}).email }, "
            "event: { id: 'deal:' + $json.id, amount: ((s) => ({ v: s }).v)(1), meta: { deep: `a${ {b: 1}.b }` } }, "
            "payment_references: [$json.a ?? null, { not: 'a leaf path' }] }")
    assert object_leaves(text) == {
        "friend.external_id": "$json.id ? String($json.id) : null",
        "friend.email": "($json.p || {}).email",
        "event.id": "'deal:' + $json.id",
        "event.amount": "((s) => ({ v: s }).v)(1)",
        "event.meta.deep": "`a${ {b: 1}.b }`",
        "payment_references": "[$json.a ?? null, { not: 'a leaf path' }]",
    }
    with pytest.raises(NativeFlavourError, match="empty object"):
        object_leaves("{ event: {} }")


def test_json_body_leaves_take_one_stringified_object_or_plain_json():
    assert json_body_leaves("={{ JSON.stringify({ a: { b: $json.x } }) }}") == {"a.b": "$json.x"}
    assert json_body_leaves('{"reason": "refund", "event": {"id": "e1", "full": true}}') == {
        "reason": '"refund"', "event.id": '"e1"', "event.full": "true"}
    for body in ("={{ JSON.stringify({ a: 1 }, null, 2) }}", "={{ JSON.stringify($json) }}",
                 "={{ ({ a: 1 }) }}", "[1, 2]", "not json"):
        with pytest.raises(NativeFlavourError):
            json_body_leaves(body)


def test_literals_of_the_field_type_are_plain_values_the_rest_expressions():
    string, integer, boolean = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
    assert field_value("'refund'", {"type": "options"}) == "refund"
    assert field_value("50", integer) == 50 and field_value("true", boolean) is True
    assert field_value("50", string) == "={{ 50 }}"  # a number where the API wants a string stays as written
    assert field_value("'=not an expression'", string) == "={{ '=not an expression' }}"
    assert field_value("'it\\'s'", string) == "={{ 'it\\'s' }}"
    assert field_value(" $json.a || null ", string) == "={{ $json.a || null }}"


# ---- the pack ----------------------------------------------------------------------------------------

def _field_properties(specs) -> dict[tuple[str, str], dict[str, str]]:
    """(resource, operation) -> field key -> "in:property"."""
    return {(s["resource"], s["operation"]): {f["key"]: f"{f['in']}:{f['property']}" for f in s["fields"]}
            for s in specs if s["kind"] != "trigger"}


def _sent(native: dict, fields: dict[str, str]) -> dict[str, object]:
    """What a Referflow node sends: "in:property" (and "header:Idempotency-Key") -> value."""
    params = native["parameters"]
    values = {k: v for k, v in params.items() if k not in ("resource", "operation", "additionalFields")}
    values.update(params.get("additionalFields", {}))
    out = {}
    for key, value in values.items():
        out["header:Idempotency-Key" if key == "idempotencyKey" else fields[key]] = value
    return out


def _expected(http: dict) -> dict[str, str]:
    """What an HTTP Request node calling referflow sends, by "in:property" (values as expressions)."""
    params = http["parameters"]
    out = {f"body:{k}": v for k, v in json_body_leaves(params.get("jsonBody", "{}")).items()} \
        if params.get("sendBody") else {}
    query = params["url"].partition("?")[2]
    out.update({f"query:{k}": v for k, v in (p.split("=", 1) for p in query.split("&") if p)})
    for header in (params.get("headerParameters") or {}).get("parameters", []):
        if header["name"].lower() == "idempotency-key":
            out["header:Idempotency-Key"] = header["value"]
    return out


def _same_value(native_value, expr: str) -> bool:
    if isinstance(native_value, str) and native_value.startswith("="):
        return native_value in (f"={{{{ {expr.strip()} }}}}", expr)
    return str(native_value).lower() == expr.strip().strip("'\"").lower()


@pytest.mark.parametrize("file", FILES)
def test_every_pack_workflow_converts_with_nothing_dropped(file, specs):
    original = _workflow(file)
    native = to_native(original)
    fields = _field_properties(specs)
    by_name = {n["name"]: n for n in native["nodes"]}
    calls = [n for n in original["nodes"] if is_referflow_call(n)]
    assert not any(is_referflow_call(n) for n in native["nodes"])
    for http in calls:
        node = by_name[http["name"]]
        assert (node["type"], node["typeVersion"]) == (NODE_TYPE, NODE_VERSION)
        sent = _sent(node, fields[(node["parameters"]["resource"], node["parameters"]["operation"])])
        expected = _expected(http)
        assert sorted(sent) == sorted(expected), http["name"]  # every property, header and query value
        for where, expr in expected.items():
            assert _same_value(sent[where], expr), (http["name"], where, sent[where], expr)
        # everything but what the call was is kept: name, id, position, retries, error output
        kept = {k: v for k, v in http.items() if k not in ("parameters", "type", "typeVersion", "credentials")}
        assert {k: node[k] for k in kept} == kept
        old = next(iter(http["credentials"].values()))
        assert node["credentials"] == {CREDENTIAL_TYPE: {"id": old["id"], "name": old["name"]}}
    # Connections between the nodes both flavours have are the same (a list operation's first output
    # goes through its Aggregate node, a receiver's checks are gone: see the tests below).
    aggregates = {n["name"] for n in native["nodes"] if n["type"] == "n8n-nodes-base.aggregate"}
    if calls and not aggregates and not any(n["type"] == TRIGGER_TYPE for n in native["nodes"]):
        assert native["connections"] == original["connections"], file
    # nothing reads the base URL in the Settings node any more; what else it holds stays
    assert not [n["name"] for n in native["nodes"] if n["type"] != "n8n-nodes-base.stickyNote"
                and "referflow_base_url" in json.dumps(n)]
    before = pack.settings_values(original)
    after = pack.settings_values(native)
    assert set(before) - set(after) <= {"referflow_base_url", "signing_key", "signed_content",
                                        "timestamp_tolerance_seconds"}
    assert {k: before[k] for k in after} == after


def test_every_pack_workflow_with_referflow_calls_changes_and_no_other_does():
    for file in FILES:
        original = _workflow(file)
        receiver = any(n["type"] == "n8n-nodes-base.crypto" for n in original["nodes"])
        if any(is_referflow_call(n) for n in original["nodes"]) or receiver:
            assert to_native(original) != original, file
        else:
            assert to_native(original) == original, file  # e.g. the error workflow


def test_conversion_is_deterministic_and_leaves_its_input_alone():
    for file in FILES:
        original = _workflow(file)
        kept = copy.deepcopy(original)
        first = json.dumps(to_native(original), indent=2)
        assert original == kept
        assert json.dumps(to_native(original), indent=2) == first
        assert json.dumps(to_native(json.loads(first)), indent=2) == first  # converting twice changes nothing


def test_native_files_pass_the_pack_check(tmp_path, openapi):
    for file in FILES:
        (tmp_path / file).write_text(json.dumps(to_native(_workflow(file)), indent=2))
    assert pack.check(tmp_path, openapi) == []


def test_check_native_finds_wrong_operations_fields_credentials_and_events():
    for file in FILES:
        assert check_native(to_native(_workflow(file))) == [], file
    native = to_native(_workflow("stripe-to-referral.json"))
    claim = next(n for n in native["nodes"] if n["name"] == "Claim the referral")
    claim["parameters"]["coupon"] = "X"
    claim["parameters"]["additionalFields"]["eventId"] = "e"
    qualify = next(n for n in native["nodes"] if n["name"] == "Qualify the referral")
    qualify["parameters"]["operation"] = "qualifyAll"
    refund = next(n for n in native["nodes"] if n["name"] == "Reverse after a refund")
    refund["credentials"] = {"httpHeaderAuth": {"id": "x", "name": "x"}}
    assert check_native(native) == [
        "node 'Claim the referral': 'coupon' is no field of claimReferral",
        "node 'Claim the referral': 'eventId' is no additional field of claimReferral",
        "node 'Qualify the referral': the Referflow node has no operation 'referral' 'qualifyAll'",
        "node 'Reverse after a refund': its credential must be one referflowApi credential"]
    rewards = to_native(_workflow("reward-fulfilment.json"))
    trigger = next(n for n in rewards["nodes"] if n["type"] == TRIGGER_TYPE)
    trigger["parameters"].update(events=["reward.exploded"], respond="later")
    assert check_native(rewards) == ["node 'When referflow sends a webhook': unknown event 'reward.exploded'",
                                     "node 'When referflow sends a webhook': respond is 'later', not one of "
                                     "['onReceived', 'lastNode']"]


def test_a_list_operation_hands_on_one_list_like_the_http_node():
    """The review list's node hands out one item per review; its Aggregate node gives the nodes
    after it what the HTTP node gave them: one item with the reviews under `items`."""
    original = _workflow("review-digest.json")
    native = to_native(original)
    name = "List the referrals waiting for review"
    aggregate = next(n for n in native["nodes"] if n["type"] == "n8n-nodes-base.aggregate")
    assert aggregate["name"] == f"{name} (as one list)"
    assert aggregate["parameters"] == {"aggregate": "aggregateAllItemData", "destinationFieldName": "items",
                                       "options": {}}
    http_outputs = original["connections"][name]["main"]
    assert native["connections"][name]["main"] == [[{"node": aggregate["name"], "type": "main", "index": 0}],
                                                   *http_outputs[1:]]  # the error output is unchanged
    assert native["connections"][aggregate["name"]]["main"] == [http_outputs[0]]
    node = next(n for n in native["nodes"] if n["name"] == name)
    assert node["parameters"] == {"resource": "review", "operation": "list", "limit": 50}


def test_the_signed_webhook_receiver_becomes_the_referflow_trigger():
    original = _workflow("reward-fulfilment.json")
    native = to_native(original)
    types = {n["type"] for n in native["nodes"]}
    assert not types & {"n8n-nodes-base.webhook", "n8n-nodes-base.crypto", "n8n-nodes-base.respondToWebhook"}
    webhook = next(n for n in original["nodes"] if n["type"] == "n8n-nodes-base.webhook")
    trigger = next(n for n in native["nodes"] if n["type"] == TRIGGER_TYPE)
    assert (trigger["name"], trigger["id"], trigger["webhookId"], trigger["typeVersion"]) == (
        webhook["name"], webhook["id"], webhook["webhookId"], TRIGGER_VERSION)
    # the events the workflow fulfils; answered when the run ends; the Webhook node's output shape
    fulfilled = {"reward.issued", "referral.approved", "referral.rejected"}
    assert set(trigger["parameters"]["events"]) == fulfilled
    assert trigger["parameters"]["respond"] == "lastNode" and trigger["parameters"]["output"] == "request"
    assert trigger["credentials"] == {CREDENTIAL_TYPE: {"id": "referflowApiCredential", "name": "referflow API"}}
    # No check reading the signature or timestamp is left, nor the signing key; what came after
    # the checks (the replay check of webhook-id, the sends) stays and follows the trigger.
    text = json.dumps([n for n in native["nodes"] if n["type"] != "n8n-nodes-base.stickyNote"])
    assert "webhook-signature" not in text and "signing_key" not in text and "expected_signature" not in text
    assert not any(n["type"] == "n8n-nodes-base.if" and "webhook-timestamp" in json.dumps(n) for n in native["nodes"])
    first = native["connections"][trigger["name"]]["main"][0][0]["node"]
    assert "webhook-id" in json.dumps(next(n for n in native["nodes"] if n["name"] == first)) \
        or "webhook-id" not in json.dumps(original)
    # A failed send still fails the run (the trigger then answers 500 and referflow retries).
    stop = next(n["name"] for n in native["nodes"] if n["name"] == "Keep the failed event for retry")
    feeding = {src for src, outs in native["connections"].items() for targets in outs["main"] for t in targets
               if t["node"] == stop}
    assert feeding and all(next(n for n in native["nodes"] if n["name"] == f)["onError"] == "continueErrorOutput"
                           for f in feeding)
    names = {n["name"] for n in native["nodes"]}
    for source, outs in native["connections"].items():
        assert source in names and all(t["node"] in names for targets in outs["main"] for t in targets)


def test_the_sticky_note_says_what_the_native_flavour_changes():
    native = to_native(_workflow("stripe-to-referral.json"))
    note = next(n for n in native["nodes"] if n["type"] == "n8n-nodes-base.stickyNote")["parameters"]["content"]
    assert note.startswith("## ") and "**Native-node flavour**" in note and "**referflow API**" in note
    receiver = to_native(_workflow("reward-fulfilment.json"))
    note = next(n for n in receiver["nodes"] if n["type"] == "n8n-nodes-base.stickyNote")["parameters"]["content"]
    assert "Referflow Trigger" in note


# ---- what cannot be converted raises, naming the node and what -------------------------------------

def _call(body: str | None = None, url: str = "/v1/referrals/claim", method: str = "POST", **params) -> dict:
    node = copy.deepcopy(next(n for n in _workflow("stripe-to-referral.json")["nodes"]
                              if n["name"] == "Claim the referral"))
    node["parameters"]["url"] = "={{ $('Settings').item.json.referflow_base_url }}" + url
    node["parameters"]["method"] = method
    if body is not None:
        node["parameters"]["jsonBody"] = body
    node["parameters"].update(params)
    return {"name": "w", "nodes": [node], "connections": {}}


@pytest.mark.parametrize(("workflow", "message"), [
    (_call("={{ JSON.stringify({ code: 'A', friend: { external_id: 'x', email: 'e', age: 3 } }) }}"),
     "node 'Claim the referral': claimReferral has no field for the body property 'friend.age'"),
    (_call("={{ JSON.stringify({ ...$json }) }}"), "spread"),
    (_call(url="/v1/referrals/claim-all"), "POST /v1/referrals/claim-all is no operation of the Referflow node"),
    (_call(method="PUT"), "PUT /v1/referrals/claim is no operation"),
    (_call(headerParameters={"parameters": [{"name": "X-Trace", "value": "1"}]}),
     "the header X-Trace: 1 has no Referflow node equivalent"),
    (_call(headerParameters={"parameters": [{"name": "Prefer", "value": "return=minimal"}]}), "Prefer"),
    (_call(options={"timeout": 1000}), "option\\(s\\) timeout=1000"),
    (_call(options={"response": {"response": {"neverError": True}}}), "neverError"),
    (_call(bodyParameters={"parameters": []}), "bodyParameters"),
    (_call(url="/v1/reviews?limit=5&status=open", method="GET", sendBody=False, sendHeaders=False),
     "listReviews has no field for the query parameter 'status'"),
    (_call(url="/v1/reviews", method="GET", sendBody=False), "listReviews takes no Idempotency-Key"),
    (_call(url="/v1/reviews?limit=5", method="GET", sendBody=False, sendHeaders=False, sendQuery=True,
           queryParameters={"parameters": [{"name": "limit", "value": "10"}]}), "given twice"),
])
def test_what_has_no_native_equivalent_raises(workflow, message):
    with pytest.raises(NativeFlavourError, match=message):
        to_native(workflow)


def test_a_call_without_a_credential_is_refused():
    workflow = _call()
    del workflow["nodes"][0]["credentials"]
    with pytest.raises(NativeFlavourError, match="without a credential"):
        to_native(workflow)


def test_path_and_query_values_go_to_their_fields():
    workflow = _call("={{ JSON.stringify({ reviewer: $json.who, note: 'ok' }) }}",
                     url="/v1/referrals/{{ $json.referral.id }}/approve")
    node = to_native(workflow)["nodes"][0]
    assert node["parameters"] == {"resource": "referral", "operation": "approve",
                                  "referralId": "={{ $json.referral.id }}", "reviewer": "={{ $json.who }}",
                                  "additionalFields": {"note": "ok",
                                                       "idempotencyKey": "={{ 'stripe-' + $json.id }}"}}
    listing = to_native(_call(url="/v1/reviews?limit={{ $json.n }}", method="GET", sendBody=False,
                              sendHeaders=False))["nodes"][0]
    assert listing["parameters"]["limit"] == "={{ $json.n }}"


def test_a_receiver_answering_an_error_on_a_run_that_succeeds_is_refused():
    workflow = _workflow("reward-fulfilment.json")
    respond = next(n for n in workflow["nodes"] if n["type"] == "n8n-nodes-base.respondToWebhook"
                   and (n["parameters"].get("options") or {}).get("responseCode", 200) < 300
                   and n["name"] != "Answer: fulfilled")
    respond["parameters"]["options"]["responseCode"] = 409
    with pytest.raises(NativeFlavourError, match="answers 409 on a run that succeeds"):
        to_native(workflow)


# ---- the package the native flavour names -----------------------------------------------------------

def test_node_types_versions_and_credential_are_the_generated_packages():
    package = json.loads((N8N_PACKAGE / "package.json").read_text())
    node = (N8N_PACKAGE / "nodes" / "Referflow" / "Referflow.node.ts").read_text()
    trigger = (N8N_PACKAGE / "nodes" / "ReferflowTrigger" / "ReferflowTrigger.node.ts").read_text()
    credential = (N8N_PACKAGE / "credentials" / "ReferflowApi.credentials.ts").read_text()
    assert f"{package['name']}.referflow" == NODE_TYPE and "\t\tname: 'referflow',\n" in node
    assert f"{package['name']}.referflowTrigger" == TRIGGER_TYPE and "\t\tname: 'referflowTrigger',\n" in trigger
    assert f"\t\tversion: {NODE_VERSION},\n" in node and f"\t\tversion: {TRIGGER_VERSION},\n" in trigger
    assert f"name = '{CREDENTIAL_TYPE}';" in credential
    assert "name: 'baseUrl'" in credential and "name: 'apiKey'" in credential
    for name, value in (("respond", "lastNode"), ("output", "request")):
        assert re.search(rf"name: '{name}',.*?value: '{value}'", trigger, re.DOTALL), name
    # every parameter a converted node sets is one the generated node has
    names = set(re.findall(r"\bname: '(\w+)'", node))
    for file in FILES:
        for converted in to_native(_workflow(file))["nodes"]:
            if converted["type"] == NODE_TYPE:
                params = converted["parameters"]
                assert set(params) | set(params.get("additionalFields", {})) <= names, converted["name"]


# ---- the render command --------------------------------------------------------------------------------

def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "referflow.cli", "workflows", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_renders_the_native_flavour_for_a_client(tmp_path):
    client = tmp_path / "client.yaml"
    client.write_text(yaml.safe_dump(CLIENT))
    http, native, again = tmp_path / "http", tmp_path / "native", tmp_path / "again"
    assert _cli("render", "--client", str(client), "--out", str(http)).returncode == 0
    rendered = _cli("render", "--client", str(client), "--out", str(native), "--flavour", "native")
    assert rendered.returncode == 0, rendered.stderr
    assert sorted(p.name for p in native.iterdir()) == sorted(p.name for p in http.iterdir())
    for path in sorted(native.iterdir()):
        expected = to_native(json.loads((http / path.name).read_text()))
        got = json.loads(path.read_text())
        for node in expected["nodes"]:  # the trigger's credential too takes the client's name
            for credential in (node.get("credentials") or {}).values():
                if credential["id"] == "referflowApiCredential":
                    credential["name"] = "referflow API (Acme)"
        assert got == expected, path.name
        assert "Acme | " in got["name"]
    assert all(n["credentials"][CREDENTIAL_TYPE]["name"] == "referflow API (Acme)"
               for p in native.iterdir() for n in json.loads(p.read_text())["nodes"]
               if n["type"] in (NODE_TYPE, TRIGGER_TYPE))
    assert _cli("render", "--client", str(client), "--out", str(again), "--flavour", "native").returncode == 0
    assert all((again / p.name).read_bytes() == p.read_bytes() for p in native.iterdir())  # deterministic
    checked = _cli("check", str(native))
    assert checked.returncode == 0, checked.stderr


def test_cli_renders_the_native_flavour_of_the_pack_as_shipped(tmp_path):
    out = tmp_path / "native"
    rendered = _cli("render", "--flavour", "native", "--out", str(out))
    assert rendered.returncode == 0, rendered.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    for file in FILES:
        assert json.loads((out / file).read_text()) == to_native(_workflow(file))
    refused = _cli("render", "--out", str(tmp_path / "http"))
    assert refused.returncode != 0 and "--client is required" in refused.stderr
    assert not (tmp_path / "http").exists()


def test_cli_writes_nothing_when_a_workflow_cannot_be_converted(tmp_path, monkeypatch):
    source = tmp_path / "pack"
    source.mkdir()
    for file in ["pack.json", *FILES]:
        (source / file).write_text((PACK / file).read_text())
    workflow = json.loads((source / "stripe-to-referral.json").read_text())
    claim = next(n for n in workflow["nodes"] if n["name"] == "Claim the referral")
    claim["parameters"]["jsonBody"] = claim["parameters"]["jsonBody"].replace("code:", "coupon:")
    (source / "stripe-to-referral.json").write_text(json.dumps(workflow))
    from click.testing import CliRunner

    from referflow.cli import main

    monkeypatch.setattr(pack, "pack_dir", lambda: source)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["workflows", "render", "--flavour", "native", "--out", str(out)])
    assert result.exit_code != 0
    assert "stripe-to-referral.json: node 'Claim the referral': claimReferral has no field for the body " \
           "property 'coupon'" in result.output
    assert not out.exists() or not any(out.iterdir())
