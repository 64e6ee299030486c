"""Generate the n8n community node package and the Zapier app from ``node_specs/``.

Output is deterministic (same specs -> byte-identical files), so ``referflow nodes generate``
on a clean tree leaves no diff and CI can prove the committed integrations match the specs.
Spec-driven files are rendered here; the runtime parts that do not depend on a spec (the
credential, the trigger's webhook code, the Zapier request helpers and tests) are templates
under ``node_templates/``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

N8N = "n8n-nodes-referflow"
ZAPIER = "zapier"
TEMPLATES = Path(__file__).parent / "node_templates"
HEADER = "Generated from node_specs/ by `referflow nodes generate`: do not edit by hand."
N8N_DEV_DEPENDENCIES = {"@types/node": "20.19.43", "@typescript-eslint/parser": "8.32.1", "eslint": "8.57.1",
                        "eslint-plugin-n8n-nodes-base": "1.16.5", "n8n-workflow": "1.120.31",
                        "typescript": "5.8.3"}
ZAPIER_CORE = "19.1.0"
N8N_TYPES = {"string": "string", "datetime": "string", "integer": "number", "boolean": "boolean",
             "options": "options"}
ZAPIER_TYPES = {"string": "string", "datetime": "datetime", "integer": "integer", "boolean": "boolean",
                "options": "string"}
DROP_EMPTY = "={{ $value === '' ? undefined : $value }}"
IDEMPOTENCY_HELP = ("Sent as the Idempotency-Key header: repeats with the same key have one effect. "
                    "Use an ID from the triggering event.")


class Raw(str):
    """Source text written as-is into a generated literal (an identifier, not a string)."""


def literal(value: Any, indent: str, level: int = 0) -> str:
    """Return a TypeScript/JavaScript literal for JSON-like data (identifier keys left bare)."""
    pad, end = indent * (level + 1), indent * level
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{pad}{_key(k)}: {literal(v, indent, level + 1)}," for k, v in value.items()]
        return "{\n" + "\n".join(items) + "\n" + end + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[\n" + "\n".join(f"{pad}{literal(v, indent, level + 1)}," for v in value) + "\n" + end + "]"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"
    return json.dumps(value)


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z_$][\w$]*", name) else literal(name, "")


def _words(name: str) -> str:
    """giftCard -> Gift Card."""
    return re.sub(r"(?<!^)([A-Z])", r" \1", name).title()


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:].lower()


def _no_final_period(text: str) -> str:
    """n8n's style: one sentence has no final period, several sentences end with one."""
    if ". " in text.replace("e.g. ", ""):
        return text if text.endswith(".") else text + "."
    return text[:-1] if text.endswith(".") else text


def render(specs: list[dict[str, Any]], version: str) -> dict[str, str]:
    """Return every generated file (path relative to ``integrations/``) and its text."""
    actions = [s for s in specs if s["kind"] != "trigger"]
    triggers = [s for s in specs if s["kind"] == "trigger"]
    files = {f"{N8N}/{k}": v for k, v in _n8n(actions, triggers, version).items()}
    files.update({f"{ZAPIER}/{k}": v for k, v in _zapier(actions, triggers, version).items()})
    return dict(sorted(files.items()))


def write(files: dict[str, str], root: Path) -> list[Path]:
    """Write the files under ``root`` and delete generated files no spec produces any more."""
    for folder in (f"{N8N}/nodes", f"{ZAPIER}/creates", f"{ZAPIER}/searches", f"{ZAPIER}/triggers"):
        for path in (root / folder).rglob("*") if (root / folder).exists() else []:
            if path.is_file() and path.relative_to(root).as_posix() not in files:
                path.unlink()
    written = []
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written


def differences(files: dict[str, str], root: Path) -> list[str]:
    """Return the generated files that are missing or differ on disk (empty when up to date)."""
    return [name for name, text in files.items()
            if not (root / name).is_file() or (root / name).read_text() != text]


def _template(name: str, **values: str) -> str:
    text = (TEMPLATES / name).read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


# ---- n8n community node --------------------------------------------------------------------

def _n8n(actions: list[dict[str, Any]], triggers: list[dict[str, Any]], version: str) -> dict[str, str]:
    trigger = triggers[0]
    package = {
        "name": N8N, "version": version,
        "description": "n8n nodes for referflow, the self-hosted referral-program engine: referral links, "
                       "claims, qualification, gift cards, reviews and a signed-webhook trigger.",
        "keywords": ["n8n-community-node-package", "n8n", "referral", "referflow"],
        "license": "MIT", "author": {"name": "referflow"},
        "main": "index.js",
        "scripts": {"build": "tsc && cp nodes/Referflow/referflow.svg dist/nodes/Referflow/ && "
                             "cp nodes/ReferflowTrigger/referflow.svg dist/nodes/ReferflowTrigger/",
                    "lint": "eslint nodes credentials package.json"},
        "files": ["dist"],
        "n8n": {"n8nNodesApiVersion": 1,
                "credentials": ["dist/credentials/ReferflowApi.credentials.js"],
                "nodes": ["dist/nodes/Referflow/Referflow.node.js",
                          "dist/nodes/ReferflowTrigger/ReferflowTrigger.node.js"]},
        "devDependencies": N8N_DEV_DEPENDENCIES,
        "peerDependencies": {"n8n-workflow": "*"},
    }
    events = [{"name": e, "value": e} for e in sorted(trigger["events"])]
    icon = _template("n8n/referflow.svg")
    return {
        "package.json": json.dumps(package, indent=2) + "\n",
        "index.js": (f"// {HEADER}\n// n8n loads the nodes and credentials listed in package.json.\n"
                     "module.exports = {};\n"),
        ".npmrc": _template("n8n/.npmrc"),
        ".gitignore": "node_modules/\ndist/\n*.tgz\n",
        ".eslintrc.js": _template("n8n/.eslintrc.js"),
        "tsconfig.json": _template("n8n/tsconfig.json"),
        "credentials/ReferflowApi.credentials.ts": _template("n8n/credentials/ReferflowApi.credentials.ts"),
        "nodes/Referflow/Referflow.node.ts": _n8n_node(actions),
        "nodes/Referflow/Referflow.node.json": _codex("n8n-nodes-referflow.referflow", version),
        "nodes/Referflow/referflow.svg": icon,
        "nodes/ReferflowTrigger/ReferflowTrigger.node.ts": _template(
            "n8n/nodes/ReferflowTrigger/ReferflowTrigger.node.ts.tmpl",
            DESCRIPTION=_no_final_period(trigger["description"]).replace("'", "\\'"),
            EVENT_OPTIONS=literal(events, "\t", 4)),
        "nodes/ReferflowTrigger/ReferflowTrigger.node.json": _codex("n8n-nodes-referflow.referflowTrigger", version),
        "nodes/ReferflowTrigger/referflow.svg": icon,
    }


def _codex(node: str, version: str) -> str:
    return json.dumps({"node": node, "nodeVersion": "1.0", "codexVersion": "1.0",
                       "categories": ["Marketing", "Sales"],
                       "resources": {"primaryDocumentation": [
                           {"url": "https://www.npmjs.com/package/n8n-nodes-referflow"}]}}, indent=2) + "\n"


def _n8n_node(actions: list[dict[str, Any]]) -> str:
    resources = sorted({s["resource"] for s in actions})
    properties: list[dict[str, Any]] = [{
        "displayName": "Resource", "name": "resource", "type": "options", "noDataExpression": True,
        "options": [{"name": _words(r), "value": r} for r in sorted(resources, key=_words)],
        "default": "referral"}]
    for resource in resources:
        specs = sorted((s for s in actions if s["resource"] == resource), key=lambda s: s["operation"])
        properties.append({
            "displayName": "Operation", "name": "operation", "type": "options", "noDataExpression": True,
            "displayOptions": {"show": {"resource": [resource]}},
            "options": [_n8n_operation(s) for s in specs], "default": specs[0]["operation"]})
    for spec in actions:
        properties += _n8n_fields(spec)
    description = {
        "displayName": "Referflow", "name": "referflow", "icon": "file:referflow.svg", "group": ["transform"],
        "version": 1, "subtitle": '={{$parameter["operation"] + ": " + $parameter["resource"]}}',
        "description": "Run referral programs with referflow: links, claims, rewards and reviews",
        "defaults": {"name": "Referflow"},
        "inputs": [Raw("NodeConnectionTypes.Main")], "outputs": [Raw("NodeConnectionTypes.Main")],
        "usableAsTool": True,
        "credentials": [{"name": "referflowApi", "required": True}],
        "requestDefaults": {"baseURL": "={{$credentials.baseUrl.replace(/\\/+$/, '')}}",
                            "headers": {"Accept": "application/json", "Content-Type": "application/json"}},
        "properties": properties,
    }
    return (f"import type {{ INodeType, INodeTypeDescription }} from 'n8n-workflow';\n"
            f"import {{ NodeConnectionTypes }} from 'n8n-workflow';\n\n"
            f"/** {HEADER} */\n"
            f"export class Referflow implements INodeType {{\n"
            f"\tdescription: INodeTypeDescription = {literal(description, chr(9), 1)};\n}}\n")


def _n8n_operation(spec: dict[str, Any]) -> dict[str, Any]:
    url = spec["path"]
    for field in spec["fields"]:
        if field["in"] == "path":
            url = url.replace("{" + field["property"] + "}",
                              "{{encodeURIComponent($parameter[\"" + field["key"] + "\"])}}")
    routing: dict[str, Any] = {"request": {"method": spec["method"], "url": ("=" if "{{" in url else "") + url}}
    if spec.get("output"):
        routing["output"] = {"postReceive": [{"type": "rootProperty", "properties": {"property": spec["output"]}}]}
    return {"name": _words(spec["operation"]), "value": spec["operation"],
            "description": _no_final_period(spec["description"]), "action": _sentence(spec["display_name"]),
            "routing": routing}


def _n8n_fields(spec: dict[str, Any]) -> list[dict[str, Any]]:
    show = {"show": {"resource": [spec["resource"]], "operation": [spec["operation"]]}}
    top = [f for f in spec["fields"] if not f.get("optional_group")]
    extra = [f for f in spec["fields"] if f.get("optional_group")]
    out = [{**_n8n_field(f, top_level=True), "displayOptions": show} for f in top]
    options = [_n8n_field(f, top_level=False) for f in extra]
    if spec.get("idempotent"):
        options.append({"displayName": "Idempotency Key", "name": "idempotencyKey", "type": "string",
                        "default": "", "description": IDEMPOTENCY_HELP,
                        "routing": {"request": {"headers": {"Idempotency-Key": "={{$value}}"}}}})
    if options:
        out.append({"displayName": "Additional Fields", "name": "additionalFields", "type": "collection",
                    "placeholder": "Add Field", "default": {}, "displayOptions": show,
                    "options": sorted(options, key=lambda o: o["displayName"].lower())})
    return out


def _n8n_field(field: dict[str, Any], top_level: bool) -> dict[str, Any]:
    kind = field["type"]
    prop: dict[str, Any] = {"displayName": field["label"], "name": field["key"], "type": N8N_TYPES[kind]}
    if top_level and field.get("required"):
        prop["required"] = True
    if kind == "options":
        options = sorted(field["options"], key=lambda o: o["label"])
        prop["options"] = [{"name": o["label"], "value": o["value"]} for o in options]
        prop["default"] = field.get("default", options[0]["value"])
    else:
        prop["default"] = field.get("default", {"integer": 0, "boolean": False}.get(kind, ""))
    if kind == "integer":
        prop["typeOptions"] = {"numberPrecision": 0}
    if "placeholder" in field:
        prop["placeholder"] = field["placeholder"]
    if field["in"] == "query" and field["property"] == "limit":
        prop["description"] = "Max number of results to return"
    elif field.get("help"):
        prop["description"] = _no_final_period(field["help"])
    if field["in"] in ("body", "query"):
        send: dict[str, Any] = {"type": field["in"], "property": field["property"]}
        if top_level and not field.get("required") and field["in"] == "body":
            send["value"] = DROP_EMPTY
        prop["routing"] = {"send": send}
    return prop


# ---- Zapier app -------------------------------------------------------------------------------

def _zapier(actions: list[dict[str, Any]], triggers: list[dict[str, Any]], version: str) -> dict[str, str]:
    files = {
        "package.json": json.dumps({
            "name": "referflow-zapier", "version": version, "private": True,
            "description": "Zapier integration for referflow, the self-hosted referral-program engine.",
            "main": "index.js", "license": "MIT", "scripts": {"test": "node --test test/"},
            "engines": {"node": ">=18"},
            "dependencies": {"zapier-platform-core": ZAPIER_CORE}}, indent=2) + "\n",
        ".npmrc": _template("zapier/.npmrc"),
        ".gitignore": "node_modules/\n.zapierapprc\nbuild/\n*.zip\n",
        "authentication.js": _template("zapier/authentication.js"),
        "lib/referflow.js": _template("zapier/lib/referflow.js"),
        "test/app.test.js": _template("zapier/test/app.test.js"),
    }
    folders = {"create": "creates", "search": "searches", "trigger": "triggers"}
    for spec in actions + triggers:
        files[f"{folders[spec['kind']]}/{spec['name']}.js"] = _zapier_module(spec)
    requires = "\n".join(f"const {s['name']} = require('./{folders[s['kind']]}/{s['name']}');"
                         for s in actions + triggers)
    groups = {folder: ", ".join(f"[{s['name']}.key]: {s['name']}" for s in actions + triggers
                                if folders[s["kind"]] == folder) for folder in folders.values()}
    files["index.js"] = (
        f"'use strict';\n\n// {HEADER}\n"
        "const { version } = require('./package.json');\n"
        "const { version: platformVersion } = require('zapier-platform-core');\n"
        "const authentication = require('./authentication');\n"
        "const { addApiKey, raiseForStatus } = require('./lib/referflow');\n"
        f"{requires}\n\n"
        "module.exports = {\n  version,\n  platformVersion,\n  authentication,\n"
        "  beforeRequest: [addApiKey],\n  afterResponse: [raiseForStatus],\n"
        + "".join(f"  {folder}: {{ {groups[folder]} }},\n" for folder in ("triggers", "creates", "searches"))
        + "};\n")
    return files


def _zapier_module(spec: dict[str, Any]) -> str:
    noun = _words(spec.get("resource", "event"))
    if spec["kind"] == "trigger":
        choices = [{"value": e, "label": e, "sample": e} for e in spec["events"]]
        body = {"key": spec["name"], "noun": noun,
                "display": {"label": spec["display_name"], "description": spec["description"]},
                "operation": {
                    "type": "hook",
                    "inputFields": [{"key": "event", "label": "Event", "required": True, "choices": choices,
                                     "helpText": "The referflow event that starts the Zap."}],
                    "performSubscribe": Raw("subscribe"), "performUnsubscribe": Raw("unsubscribe"),
                    "perform": Raw("receive"), "performList": Raw("latestEvents"),
                    "sample": spec["sample"]}}
        runtime = "const { subscribe, unsubscribe, receive, latestEvents } = require('../lib/referflow');\n"
        return f"'use strict';\n\n// {HEADER}\n{runtime}\nmodule.exports = {literal(body, '  ')};\n"
    operation = {"method": spec["method"], "path": spec["path"], "idempotent": bool(spec.get("idempotent")),
                 "fields": [{k: f[k] for k in ("key", "in", "property", "type")} for f in spec["fields"]]}
    if spec.get("output"):
        operation["output"] = spec["output"]
    fields = [_zapier_field(f) for f in spec["fields"]]
    if spec.get("idempotent"):
        fields.append({"key": "idempotencyKey", "label": "Idempotency Key", "required": False,
                       "type": "string", "helpText": IDEMPOTENCY_HELP + "."})
    sample = spec["sample"]
    if spec.get("output"):
        sample = (sample.get(spec["output"]) or [{}])[0]
    perform = "performCreate" if spec["kind"] == "create" else "performSearch"
    body = {"key": spec["name"], "noun": noun,
            "display": {"label": spec["display_name"], "description": spec["description"]},
            "operation": {"inputFields": fields, "perform": Raw(f"{perform}(operation)"), "sample": sample}}
    return (f"'use strict';\n\n// {HEADER}\nconst {{ {perform} }} = require('../lib/referflow');\n\n"
            f"const operation = {literal(operation, '  ')};\n\nmodule.exports = {literal(body, '  ')};\n")


def _zapier_field(field: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"key": field["key"], "label": field["label"], "required": bool(field.get("required")),
                           "type": ZAPIER_TYPES[field["type"]]}
    if field["type"] == "options":
        out["choices"] = [{"value": o["value"], "label": o["label"], "sample": o["value"]} for o in field["options"]]
    if field.get("help"):
        out["helpText"] = field["help"] if field["help"].endswith(".") else field["help"] + "."
    if "default" in field:
        out["default"] = str(field["default"])
    if "placeholder" in field:
        out["placeholder"] = field["placeholder"]
    return out
