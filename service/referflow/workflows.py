"""The n8n workflow pack: render it for one agency client, and check workflow files.

Rendering is deterministic (same client file -> byte-identical output) so agencies can diff it.
Workflows that convert amounts read their currency exponents from their Settings node
(``currency_exponents``, and ``stripe_exponents`` for Stripe amounts): JSON copies of
``referflow.domain.money.EXPONENTS`` and ``referflow.providers.issuers.STRIPE_EXPONENTS``, which
``check`` compares with referflow's own, so the pack and the ingress never convert differently.

The pack has one error workflow (an Error Trigger, a fixed ``id``): every other workflow's
``settings`` name it (``errorWorkflow``) and keep failed executions (``saveDataErrorExecution``), and
``render`` gives it an id of its own per client, since agencies import several clients into one n8n.

Every send path obeys referflow's send rules: a node that sends to a person (a Klaviyo event, a HubSpot
contact write) is reached from a trigger only through a ``checkMessage`` call, and the ``Skipped:
<reason>`` nodes after it name reason codes of referflow's answers (their published schemas).
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

from referflow import native_flavour
from referflow.contract import PREFER_OUTCOME, SchemaStore, schemas_dir
from referflow.domain.money import EXPONENTS
from referflow.providers.issuers import STRIPE_EXPONENTS, STRIPE_VERSION
from referflow.workflow_graph import drop_nodes, set_settings, settings_values

# The Shopify Admin API the Shopify moments workflow reads customers from (the pack's pinned version).
SHOPIFY_ADMIN_API = "https://{store}.myshopify.com/admin/api/2024-10"
NAMESPACE = uuid.UUID("6f1b1d52-86a5-4d8e-9d0c-2a7f1d3b5e10")
# Credential placeholders in the pack (by credential id) -> the client file's credential key.
CREDENTIALS = {"referflowApiCredential": "referflow", "stripeApiCredential": "stripe",
               "shopifyCredential": "shopify", "hubspotDeveloperCredential": "hubspot_developer",
               "hubspotTokenCredential": "hubspot_token", "klaviyoCredential": "klaviyo",
               "slackCredential": "slack"}
SECRET_PATTERNS = [re.compile(p) for p in (
    r"sk_(live|test)_[A-Za-z0-9]{10,}", r"whsec_[A-Za-z0-9+/=]{20,}", r"rfk_[A-Za-z0-9_-]{20,}",
    r"shpat_[0-9a-fA-F]{16,}", r"pat-[a-z0-9]{2,4}-[0-9a-f-]{20,}", r"pk_[0-9a-f]{20,}",
    r"xox[abp]-[A-Za-z0-9-]{10,}", r"Bearer [A-Za-z0-9._~+/-]{20,}")]
REFERFLOW_URL = re.compile(r"referflow_base_url \}\}(/[^\s'\"?}]*)")
# The tables a workflow's Settings node may copy, and where referflow keeps each one.
TABLES = {"currency_exponents": (EXPONENTS, "referflow.domain.money.EXPONENTS"),
          "stripe_exponents": (STRIPE_EXPONENTS, "referflow.providers.issuers.STRIPE_EXPONENTS")}
# A currency with a non-2 exponent quoted in code: an inline table that nothing checks.
INLINE_CURRENCY = re.compile("['\"`](" + "|".join(sorted(EXPONENTS)) + ")['\"`]")
ERROR_TRIGGER = "n8n-nodes-base.errorTrigger"
# n8n runs an error workflow, and keeps a workflow's static data, only for ids of <= 16 characters.
WORKFLOW_ID = re.compile(r"^[A-Za-z0-9]{1,16}$")
# The settings every workflow but the error workflow carries besides ``errorWorkflow``: n8n keeps
# its failed executions whatever the instance's EXECUTIONS_DATA_SAVE_ON_ERROR says.
KEEP_FAILED = {"saveDataErrorExecution": "all"}
# Nodes that send to a person (the pack's Klaviyo events and HubSpot contact writes), and the one
# referflow call that may let them: every path from a trigger to a sender passes a checkMessage.
SENDS = (("POST", re.compile(r"^https://a\.klaviyo\.com/api/events\b")),
         ("POST", re.compile(r"^https://api\.hubapi\.com/crm/v3/objects/contacts(/batch/upsert)?$")),
         ("PATCH", re.compile(r"^https://api\.hubapi\.com/crm/v3/objects/contacts/")))
CHECK_MESSAGE, RECORD_MOMENT = "/v1/messages/check", "/v1/moments"
# "Skipped: <reason>" nodes name a reason code of referflow's answers (the published schemas' enums:
# REASON_FIELDS), or one of the pack's own: an ask referflow decided for another channel than email,
# and any answer the workflow has no node for. A workflow recording moments has a node for every
# skip reason of a decision, so a new reason shows in the check, not as "other reason" in a run.
SKIPPED = "Skipped: "
REASON_FIELDS = (("moment-decision", "skip_reason"), ("message-check", "reason"))
PACK_SKIPS = {"not_email", "other reason"}


def pack_dir() -> Path:
    """Return the folder of the pack: packaged copy first, then the source tree."""
    packaged = Path(__file__).parent / "_workflows"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "workflows"


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def render(client: dict[str, Any], out: Path, source: Path | None = None) -> list[Path]:
    """Write the pack rendered for one client into ``out``; return the files written."""
    SchemaStore().validate("client.schema", client)
    source = source or pack_dir()
    manifest = json.loads((source / "pack.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    used = set(client["providers"])
    chosen = []
    for entry in manifest["workflows"]:
        if not set(entry["requires"]) <= used or (entry.get("requires_any")
                                                   and not used & set(entry["requires_any"])):
            continue
        workflow = json.loads((source / entry["file"]).read_text())
        for provider, names in entry.get("optional_nodes", {}).items():
            if provider not in used:
                drop_nodes(workflow, set(names))
        chosen.append((entry["file"], workflow))
    # The client's error workflow, if the pack has one: its id is the client's own.
    error_id = (error_workflow_id(client["client"])
                if any(is_error_workflow(w) for _, w in chosen) else None)
    written = []
    for file, workflow in chosen:
        _apply_client(workflow, client, file, error_id)
        target = out / f"{client['client']}-{file}"
        target.write_text(_dump(workflow))
        written.append(target)
    return written


def is_error_workflow(workflow: dict[str, Any]) -> bool:
    """True for the workflow n8n runs when another fails (it starts with an Error Trigger)."""
    return any(isinstance(n, dict) and n.get("type") == ERROR_TRIGGER for n in workflow.get("nodes", []))


def error_workflow_id(slug: str) -> str:
    """The id of a client's error workflow: deterministic, 16 letters and digits (n8n's limit)."""
    return "rf" + uuid.uuid5(NAMESPACE, f"{slug}/error-workflow").hex[:14]


def _apply_client(workflow: dict[str, Any], client: dict[str, Any], file: str,
                  error_id: str | None) -> None:
    slug, names = client["client"], client.get("credentials", {})
    if error_id is not None:
        if is_error_workflow(workflow):
            workflow["id"] = error_id
        else:
            workflow["settings"] = {**workflow.get("settings", {}), "errorWorkflow": error_id}
    workflow["name"] = (client.get("name_prefix", "") + workflow["name"])[:128]
    workflow["versionId"] = str(uuid.uuid5(NAMESPACE, f"{slug}/{file}"))
    tags = {t["name"] for t in workflow["tags"]} | set(client.get("tags", []))
    workflow["tags"] = [{"name": t} for t in sorted(tags)]
    values = {"referflow_base_url": client["referflow_base_url"].rstrip("/")}
    if client.get("currency"):
        values["currency"] = client["currency"]
    if client.get("shopify_store"):
        values["shopify_admin_api"] = SHOPIFY_ADMIN_API.format(store=client["shopify_store"])
    set_settings(workflow, values)
    for node in workflow["nodes"]:
        if "webhookId" in node:
            node["webhookId"] = str(uuid.uuid5(NAMESPACE, f"{slug}/{file}/{node['name']}"))
        if node["type"] == "n8n-nodes-base.webhook":
            node["parameters"]["path"] = f"{slug}-{node['parameters']['path']}"
        for credential in (node.get("credentials") or {}).values():
            key = CREDENTIALS.get(credential["id"])
            if key and names.get(key):
                credential["name"] = names[key]


def check(directory: Path, openapi: dict[str, Any]) -> list[str]:
    """Return the problems of every workflow file in ``directory`` (empty when all is well)."""
    schemas = SchemaStore(schemas_dir())
    operations = _operations(openapi)
    problems: list[str] = []
    webhook_paths: dict[str, str] = {}
    workflows: list[tuple[Path, Any]] = []
    for path in sorted(directory.glob("*.json")):
        if path.name == "pack.json":
            continue
        try:
            workflows.append((path, json.loads(path.read_text())))
        except ValueError as exc:
            problems.append(f"{path.name}: not JSON: {exc}")
    error_ids = {w["id"] for _, w in workflows
                 if isinstance(w, dict) and is_error_workflow(w) and isinstance(w.get("id"), str)}
    reasons = {(name, field): _reasons(schemas, name, field) for name, field in REASON_FIELDS}
    for path, workflow in workflows:
        problems += [f"{path.name}{e['path']}: {e['message']}"
                     for e in schemas.errors("n8n-workflow.schema", workflow)]
        if not isinstance(workflow, dict) or not isinstance(workflow.get("nodes"), list):
            continue
        problems += [f"{path.name}: {p}" for p in _structure(workflow)]
        problems += [f"{path.name}: {p}" for p in _error_handling(workflow, error_ids)]
        problems += [f"{path.name}: {p}" for p in _referflow_calls(workflow, operations)]
        problems += [f"{path.name}: {p}" for p in _send_rules(workflow, reasons)]
        problems += [f"{path.name}: {p}" for p in native_flavour.check_native(workflow)]
        problems += [f"{path.name}: {p}" for p in _exponent_tables(workflow)]
        problems += [f"{path.name}: {p}" for p in _stripe_versions(workflow)]
        problems += [f"{path.name}: inline secret matching {p.pattern!r}"
                     for p in SECRET_PATTERNS if p.search(path.read_text())]
        for node in workflow["nodes"]:
            if node.get("type") == "n8n-nodes-base.webhook":
                hook = node.get("parameters", {}).get("path", "")
                if hook in webhook_paths:
                    problems.append(f"{path.name}: webhook path {hook!r} also in {webhook_paths[hook]}")
                webhook_paths[hook] = path.name
    return problems


def _structure(workflow: dict[str, Any]) -> list[str]:
    problems = []
    nodes = workflow["nodes"]
    for key in ("id", "name"):
        values = [n.get(key) for n in nodes]
        problems += [f"duplicate node {key} {v!r}" for v in sorted({v for v in values
                                                                     if values.count(v) > 1})]
    names = {n.get("name") for n in nodes}
    for source, outputs in workflow.get("connections", {}).items():
        if source not in names:
            problems.append(f"connection from unknown node {source!r}")
        for targets in outputs.get("main", []):
            problems += [f"connection from {source!r} to unknown node {t['node']!r}"
                         for t in targets if t.get("node") not in names]
    hooks = [n["webhookId"] for n in nodes if "webhookId" in n]
    problems += [f"duplicate webhookId {h}" for h in sorted({h for h in hooks if hooks.count(h) > 1})]
    return problems


def _error_handling(workflow: dict[str, Any], error_ids: set[str]) -> list[str]:
    """The error workflow has a usable fixed id; every other workflow names it and keeps failures."""
    if is_error_workflow(workflow):
        if not WORKFLOW_ID.match(str(workflow.get("id", ""))):
            return [f"the error workflow needs a fixed id of 1-16 letters and digits, not "
                    f"{workflow.get('id')!r} (n8n runs error workflows only by id)"]
        return []
    settings = workflow.get("settings")
    if not isinstance(settings, dict):
        settings = {}
    problems = []
    named = settings.get("errorWorkflow")
    if not isinstance(named, str) or named not in error_ids:
        known = ", ".join(sorted(error_ids)) or "none in this folder"
        problems.append(f"settings.errorWorkflow is {named!r}, not the pack's error workflow ({known}): "
                        "a failed production run would alert nobody")
    problems += [f"settings.{key} is {settings.get(key)!r}, not {value!r}: n8n may discard failed "
                 "executions" for key, value in KEEP_FAILED.items() if settings.get(key) != value]
    return problems


def _operations(openapi: dict[str, Any]) -> list[tuple[str, re.Pattern[str], bool]]:
    """(method, path pattern, honours ``Prefer: outcome=explicit``) of every referflow operation."""
    return [(method.upper(), re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"),
             _honours_prefer(op))
            for path, ops in openapi["paths"].items() for method, op in ops.items()]


def _honours_prefer(op: dict[str, Any]) -> bool:
    return any(p.get("in") == "header" and str(p.get("name")).lower() == "prefer"
               and PREFER_OUTCOME in p.get("schema", {}).get("enum", [])
               for p in op.get("parameters", []))


def _sends_prefer(params: dict[str, Any]) -> bool:
    """True when an HTTP Request node sends ``Prefer: outcome=explicit``."""
    if not params.get("sendHeaders"):
        return False
    if params.get("specifyHeaders") == "json":
        return bool(re.search(r"[\"']prefer[\"']\s*:\s*[\"']outcome=explicit[\"']",
                              str(params.get("jsonHeaders", "")), re.IGNORECASE))
    headers = (params.get("headerParameters") or {}).get("parameters") or []
    return any(isinstance(h, dict) and str(h.get("name", "")).strip().lower() == "prefer"
               and PREFER_OUTCOME in str(h.get("value", "")).replace(" ", "").lower() for h in headers)


def _referflow_calls(workflow: dict[str, Any],
                     operations: list[tuple[str, re.Pattern[str], bool]]) -> list[str]:
    problems = []
    for node in workflow["nodes"]:
        if node.get("type") != "n8n-nodes-base.httpRequest":
            continue
        params = node.get("parameters", {})
        match = REFERFLOW_URL.search(str(params.get("url", "")))
        if not match:
            continue
        method = str(params.get("method", "GET")).upper()
        found = [prefer for m, rx, prefer in operations if m == method and rx.match(match[1])]
        if not found:
            problems.append(f"node {node['name']!r}: {method} {match[1]} is no referflow operation")
        elif any(found) and not _sends_prefer(params):
            problems.append(f"node {node['name']!r}: {method} {match[1]} without the header "
                            f"'Prefer: {PREFER_OUTCOME}' (ordinary events would fail the run as 4xx)")
        if match[1] == CHECK_MESSAGE and _header(params, "idempotency-key") is not None:
            problems.append(f"node {node['name']!r}: checkMessage with an Idempotency-Key (a replay would "
                            "get the first answer, whatever changed since)")
    return problems


def _header(params: dict[str, Any], name: str) -> Any:
    """The value of an HTTP Request node's header given as a name/value pair (None without it)."""
    headers = (params.get("headerParameters") or {}).get("parameters") or [] if params.get("sendHeaders") else []
    return next((h.get("value") for h in headers
                 if isinstance(h, dict) and str(h.get("name", "")).strip().lower() == name), None)


def _reasons(schemas: SchemaStore, name: str, field: str) -> set[str]:
    """The reason codes a field of a referflow answer can hold (its published schema's enum)."""
    options = schemas.documents[name]["properties"][field].get("oneOf", [])
    return {str(code) for option in options for code in option.get("enum", [])}


def _calls(node: dict[str, Any], path: str, native: tuple[str, str]) -> bool:
    """True for a call of one referflow operation: an HTTP Request to its path, or the Referflow node's."""
    params = node.get("parameters") or {}
    if node.get("type") == native_flavour.NODE_TYPE:
        return (params.get("resource"), params.get("operation")) == native
    http = node.get("type") == native_flavour.HTTP_REQUEST
    match = REFERFLOW_URL.search(str(params.get("url", ""))) if http else None
    return match is not None and match[1] == path


def _is_check(node: dict[str, Any]) -> bool:
    return _calls(node, CHECK_MESSAGE, ("message", "check"))


def _is_send(node: dict[str, Any]) -> bool:
    params = node.get("parameters") or {}
    method = str(params.get("method", "GET")).upper()
    return node.get("type") == native_flavour.HTTP_REQUEST and any(
        method == m and rx.search(str(params.get("url", ""))) for m, rx in SENDS)


def _send_rules(workflow: dict[str, Any], reasons: dict[tuple[str, str], set[str]]) -> list[str]:
    """Senders reached from a start node without a checkMessage on the way; Skipped nodes naming
    unknown reasons; a workflow recording moments without a Skipped node for a skip reason."""
    nodes = {n.get("name"): n for n in workflow["nodes"] if isinstance(n, dict)}
    fed = {t.get("node") for outs in workflow.get("connections", {}).values()
           for targets in outs.get("main", []) for t in targets}
    todo = [name for name, n in nodes.items() if name not in fed and n.get("type") != native_flavour.STICKY]
    seen = set(todo)
    while todo:
        name = todo.pop()
        if _is_check(nodes.get(name) or {}):
            continue  # what comes after the check is what referflow let through
        for targets in (workflow.get("connections", {}).get(name) or {}).get("main", []):
            for target in targets:
                if target.get("node") not in seen:
                    seen.add(target.get("node"))
                    todo.append(target.get("node"))
    problems = [f"node {name!r} sends to a person without asking referflow first (checkMessage)"
                for name in sorted(seen, key=str) if _is_send(nodes.get(name) or {})]
    known = set().union(PACK_SKIPS, *reasons.values())
    skips = {str(name)[len(SKIPPED):] for name in nodes if str(name).startswith(SKIPPED)}
    problems += [f"node {SKIPPED + reason!r}: {reason!r} is no reason referflow gives ({', '.join(sorted(known))})"
                 for reason in sorted(skips - known)]
    if any(_calls(n, RECORD_MOMENT, ("moment", "record")) for n in nodes.values()):
        problems += [f"no node {SKIPPED + reason!r}: a decision skipped for that reason would end at "
                     f"{SKIPPED + 'other reason'!r}" for reason in sorted(reasons[REASON_FIELDS[0]] - skips)]
    return problems


def _exponent_tables(workflow: dict[str, Any]) -> list[str]:
    """Compare the workflow's copies of the exponent tables with referflow's; find inline ones."""
    problems = []
    settings = settings_values(workflow)
    for name, (ours, home) in TABLES.items():
        if name not in settings:
            problems += [f"node {n!r} reads {name}, which the Settings node does not hold"
                         for n, code in _code(workflow) if name in code]
            continue
        try:
            theirs = json.loads(settings[name])
        except (TypeError, ValueError):
            problems.append(f"Settings {name} is not a JSON object")
            continue
        if difference := _table_diff(theirs, ours):
            problems.append(f"Settings {name} differs from {home}: {difference}")
    for node, code in _code(workflow):
        if inline := sorted(set(INLINE_CURRENCY.findall(code))):
            problems.append(f"node {node!r}: {', '.join(inline)} quoted in code (an exponent table "
                            "nothing checks?): read $('Settings').item.json.currency_exponents")
    return problems


def _stripe_versions(workflow: dict[str, Any]) -> list[str]:
    """A Stripe call pins the version referflow's own calls pin, so both read the same shapes."""
    return [f"node {n.get('name')!r}: Stripe-Version {version!r}, not {STRIPE_VERSION!r} "
            "(referflow.providers.issuers.STRIPE_VERSION)" for n in workflow["nodes"]
            if n.get("type") == native_flavour.HTTP_REQUEST and (version := _header(
                n.get("parameters") or {}, "stripe-version")) is not None and version != STRIPE_VERSION]


def _code(workflow: dict[str, Any]) -> list[tuple[str, str]]:
    """Return (node name, text) of every expression and code field, Settings tables left out."""
    found: list[tuple[str, str]] = []

    def walk(name: str, value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            if value.get("name") in TABLES and name == "Settings":
                return
            for k, v in value.items():
                walk(name, v, k)
        elif isinstance(value, list):
            for v in value:
                walk(name, v, key)
        elif isinstance(value, str) and (value.startswith("=") or key in ("jsCode", "functionCode")):
            found.append((name, value))

    for node in workflow["nodes"]:
        walk(str(node.get("name")), node.get("parameters", {}))
    return found


def _table_diff(theirs: Any, ours: Any) -> str:
    """Say how a copied table differs from referflow's; empty when it is the same."""
    if not isinstance(theirs, dict):
        return "not a JSON object"
    if any(type(v) is not int for v in theirs.values()):  # JSON 3.0 or true are no exponents
        return "every exponent must be a JSON integer"
    changed = [f"{c} {theirs[c]!r} (referflow: {ours[c]})" for c in sorted(set(theirs) & set(ours))
               if theirs[c] != ours[c]]
    missing = [f"{c} missing (referflow: {ours[c]})" for c in sorted(set(ours) - set(theirs))]
    extra = [f"{c} {theirs[c]!r} not in referflow" for c in sorted(set(theirs) - set(ours))]
    return "; ".join(changed + missing + extra)
