"""The native-node flavour of the n8n workflow pack: the pack's workflows built from the Referflow
node and the Referflow Trigger (the community package ``n8n-nodes-referflow``) instead of HTTP
Request and Webhook nodes.

``to_native`` is pure and deterministic (same workflow in, byte-identical JSON out), and it drops
nothing silently: a referflow call it cannot express with the Referflow node (a body property no
spec field sends, a header or option the node has no equivalent for, an unknown operation) raises
``NativeFlavourError`` naming the node and what could not be carried over.

- An HTTP Request node calling referflow (as ``workflows.REFERFLOW_URL`` finds them: the Settings
  node's ``referflow_base_url`` + ``/v1/...``) becomes a Referflow node: resource and operation from the
  node spec with that method and path, every property of its ``JSON.stringify({...})`` body mapped
  to the spec field sending that (dotted) property, path and query values to their fields, the
  ``Idempotency-Key`` header to the node's Idempotency Key. Name, id, position, retries, error
  output and every other node setting stay, so the connections stay. Its Header Auth credential
  becomes a Referflow API credential of the same id and name, which holds the base URL: the
  Settings node's ``referflow_base_url`` goes when nothing reads it any more.
- A list operation's node hands out one item per entry; the HTTP node handed out one answer with
  the list in it, which the nodes after it read. An Aggregate node (same name + " (as one list)")
  puts the entries back under the answer's key, so those nodes read what they read before.
- A Webhook node receiving referflow's signed webhooks (the Standard Webhooks checks after it read
  ``webhook-signature``) becomes a Referflow Trigger, which subscribes itself in referflow on
  activation and verifies the signature and timestamp of every delivery itself: the checks, the
  nodes refusing what fails them, and the Settings values only they read go. It hands out what the
  Webhook node handed out (``headers`` and ``body``, output ``request``), so the nodes after it
  (a ``webhook-id`` replay check, for one) work unchanged, and subscribes to the event types the
  workflow names. Respond to Webhook nodes go (they answer only a Webhook node): the trigger
  answers when the run ends (``respond: lastNode``), 200 when it succeeded and 500 when it failed,
  so referflow retries what failed; a non-2xx answer on a path where the run does not fail would
  be lost, and raises.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from referflow.contract import PREFER_OUTCOME
from referflow.nodes import load_specs
from referflow.workflow_graph import (
    SETTINGS,
    drop_nodes,
    settings_assignments,
    settings_node,
    settings_values,
)

NODE_TYPE = "n8n-nodes-referflow.referflow"
NODE_VERSION = 1
TRIGGER_TYPE = "n8n-nodes-referflow.referflowTrigger"
TRIGGER_VERSION = 1
CREDENTIAL_TYPE = "referflowApi"  # ReferflowApi.credentials.ts: baseUrl + apiKey
HTTP_REQUEST = "n8n-nodes-base.httpRequest"
WEBHOOK = "n8n-nodes-base.webhook"
RESPOND = "n8n-nodes-base.respondToWebhook"
STOP = "n8n-nodes-base.stopAndError"
AGGREGATE = "n8n-nodes-base.aggregate"
STICKY = "n8n-nodes-base.stickyNote"
BASE_URL_SETTING = "referflow_base_url"
# The pack's credential of referflow (workflows.CREDENTIALS), for a trigger in a workflow without
# a referflow call to take it from.
PACK_CREDENTIAL = {"id": "referflowApiCredential", "name": "referflow API"}
BASE_URL = re.compile(r"^=\{\{\s*\$\('Settings'\)\.item\.json\.referflow_base_url\s*\}\}(?=/)")
STRINGIFY = re.compile(r"^=\{\{\s*JSON\.stringify\((.*)\)\s*\}\}\s*$", re.DOTALL)
EXPRESSION = re.compile(r"\{\{.*?\}\}", re.DOTALL)
IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*")
# HTTP Request parameters the conversion reads; any other one would be dropped, and raises.
HTTP_PARAMETERS = {"method", "url", "authentication", "genericAuthType", "nodeCredentialType", "sendHeaders",
                   "specifyHeaders", "headerParameters", "sendBody", "contentType", "specifyBody", "jsonBody",
                   "sendQuery", "specifyQuery", "queryParameters", "options"}
# Headers the Referflow node sends itself (Prefer: on every operation whose API honours it).
OWN_HEADERS = {"prefer": PREFER_OUTCOME, "content-type": "application/json", "accept": "application/json"}
# The Standard Webhooks checks the Referflow Trigger makes itself (TOLERANCE_SECONDS: 300).
CHECKED_HEADERS = ("webhook-signature", "webhook-timestamp")
TRIGGER_TOLERANCE_SECONDS = 300
NAMESPACE = uuid.UUID("0d4f7c36-2b8e-4f53-9a51-6c1e8f0b7a24")
NOTE = ("**Native-node flavour** (community package `n8n-nodes-referflow`): the calls to referflow are "
        "Referflow nodes. Create one *Referflow API* credential named **{credential}** with the referflow "
        "base URL{url} and the program API key: it replaces the Header Auth credential and Settings -> "
        "`referflow_base_url`.")
TRIGGER_NOTE = ("The **Referflow Trigger** subscribes itself in referflow when you activate the workflow and "
                "verifies every delivery's signature and timestamp: there is no subscription to create and no "
                "signing key to paste.")
TRIGGER_ONLY_NOTE = ("**Native-node flavour** (community package `n8n-nodes-referflow`): create one *Referflow "
                     "API* credential named **{credential}** with the referflow base URL and the program API key.")
LAST_NODE_NOTE = (" It answers referflow when the run ends: 200, or 500 when the run failed, and referflow "
                  "retries the delivery.")


class NativeFlavourError(ValueError):
    """A workflow has something the native-node flavour cannot express (nothing is dropped)."""


# ---- a small JavaScript scanner: split object literals at depth 0 --------------------------------

# After one of these (or at the start, or after such a keyword) a '/' begins a regular expression;
# elsewhere (after a name, a number, ')' or ']') it divides.
REGEX_BEFORE = set("(,=:[!&|?{};+-*%<>~^")
REGEX_AFTER_WORDS = {"return", "typeof", "case", "in", "of", "void", "delete", "instanceof", "new", "throw",
                     "yield", "await", "else", "do"}


def _code(text: str) -> Iterator[tuple[int, str, int]]:
    """Yield (index, character, depth) of every character of code: not inside a string, a
    template literal's text, a regular expression or a comment. ``depth`` counts the brackets
    ((), [], {} and template ``${}``) open before the character."""
    stack: list[str] = []
    prev = ""  # the last significant character of code ("a" for a name or number)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if stack and stack[-1] == "`":  # inside a template literal's text
            if c == "\\":
                i += 2
            elif c == "`":
                stack.pop()
                prev, i = "a", i + 1
            elif text.startswith("${", i):
                stack.append("${")
                prev, i = "(", i + 2
            else:
                i += 1
            continue
        if c in "'\"":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise NativeFlavourError(f"unterminated string at {i}: {text[i:i + 30]!r}")
            prev, i = "a", j + 1
            continue
        if c == "`":
            stack.append("`")
            i += 1
            continue
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise NativeFlavourError(f"unterminated comment at {i}")
            i = end + 2
            continue
        if c == "/" and (prev == "" or prev in REGEX_BEFORE or _word_before(text, i) in REGEX_AFTER_WORDS):
            i = _skip_regex(text, i)
            prev = "a"
            continue
        depth = sum(1 for s in stack if s != "`")
        if c in ")]}":
            opened = stack.pop() if stack else None
            if {")": "(", "]": "[", "}": "{"}[c] != opened and not (c == "}" and opened == "${"):
                raise NativeFlavourError(f"unbalanced {c!r} at {i}: {text[max(0, i - 30):i + 1]!r}")
            depth -= 1
        yield i, c, depth
        if c in "([{":
            stack.append(c)
        if not c.isspace():
            prev = "a" if (c.isalnum() or c in "_$") else c
        i += 1
    if stack:
        raise NativeFlavourError(f"unclosed {stack[-1]!r} in {text[:60]!r}")


def _word_before(text: str, end: int) -> str:
    """The name or keyword that ends right before ``end`` (whitespace between allowed)."""
    match = re.search(r"([A-Za-z_$][\w$]*)\s*$", text[:end])
    return match.group(1) if match else ""


def _skip_regex(text: str, start: int) -> int:
    """The index after the regular expression literal beginning at ``start`` (and its flags)."""
    i, in_class = start + 1, False
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "\n":
            break
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        elif c == "/" and not in_class:
            i += 1
            while i < len(text) and (text[i].isalnum() or text[i] == "_"):
                i += 1
            return i
        i += 1
    raise NativeFlavourError(f"unterminated regular expression at {start}: {text[start:start + 30]!r}")


def split_top_level(text: str, separator: str = ",") -> list[str]:
    """Split ``text`` at every ``separator`` outside brackets, strings, templates and regexes."""
    parts, last = [], 0
    for i, c, depth in _code(text):
        if c == separator and depth == 0:
            parts.append(text[last:i])
            last = i + 1
    parts.append(text[last:])
    return parts


def is_object_literal(text: str) -> bool:
    """True when ``text`` is one object literal: ``{`` ... its own matching ``}``."""
    text = text.strip()
    if not text.startswith("{"):
        return False
    for i, c, depth in _code(text):
        if c == "}" and depth == 0:
            return i == len(text) - 1
    return False


def object_entries(text: str) -> list[tuple[str, str]]:
    """(key, value expression) of each property of an object literal, in order. A spread, a
    computed key, a method or a repeated key has no one property name, and raises."""
    text = text.strip()
    if not is_object_literal(text):
        raise NativeFlavourError(f"not an object literal: {text[:60]!r}")
    entries: list[tuple[str, str]] = []
    parts = split_top_level(text[1:-1])
    if parts and not parts[-1].strip():  # a trailing comma
        parts.pop()
    for raw in parts:
        entry = raw.strip()
        if not entry:
            raise NativeFlavourError(f"an empty property in {text[:60]!r}")
        if entry.startswith("..."):
            raise NativeFlavourError(f"a spread ({entry[:40]!r}) names no property")
        key, rest = _key(entry)
        if rest is None:  # shorthand { name }
            value = key
        elif not rest.startswith(":"):
            raise NativeFlavourError(f"cannot read the property {entry[:40]!r} (a method or computed key?)")
        else:
            value = rest[1:].strip()
        if not value:
            raise NativeFlavourError(f"the property {key!r} has no value")
        if key in (k for k, _ in entries):
            raise NativeFlavourError(f"the property {key!r} is given twice")
        entries.append((key, value))
    return entries


def _key(entry: str) -> tuple[str, str | None]:
    """(property name, the text after it, None for a shorthand property)."""
    if entry[0] in "'\"":
        end = 1
        while end < len(entry) and entry[end] != entry[0]:
            end += 2 if entry[end] == "\\" else 1
        literal = entry[:end + 1]
        try:
            key = ast.literal_eval(literal)
        except (ValueError, SyntaxError) as exc:
            raise NativeFlavourError(f"cannot read the key {literal!r}") from exc
        return str(key), entry[end + 1:].strip()
    match = IDENTIFIER.match(entry)
    if not match:
        raise NativeFlavourError(f"cannot read the property {entry[:40]!r} (a computed key?)")
    rest = entry[match.end():].strip()
    return match.group(), (rest if rest else None)


def object_leaves(text: str, prefix: str = "") -> dict[str, str]:
    """Dotted property path -> value expression of every leaf of an object literal, recursing
    into nested object literals (``friend: { email: X }`` -> ``friend.email``)."""
    leaves: dict[str, str] = {}
    for key, value in object_entries(text):
        path = f"{prefix}{key}"
        if is_object_literal(value):
            inner = object_leaves(value, f"{path}.")
            if not inner:
                raise NativeFlavourError(f"{path} is an empty object: no field sends it")
            leaves.update(inner)
        else:
            leaves[path] = value
    return leaves


def json_body_leaves(json_body: str) -> dict[str, str]:
    """The leaves of an HTTP Request node's JSON body: ``={{ JSON.stringify({ ... }) }}``, or
    plain JSON (each value then a JSON literal)."""
    text = json_body.strip()
    if text.startswith("="):
        match = STRINGIFY.match(text)
        if not match or not is_object_literal(match[1]):
            raise NativeFlavourError("the JSON body is not ={{ JSON.stringify({ ... }) }} of one object literal")
        return object_leaves(match[1])
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise NativeFlavourError(f"the JSON body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise NativeFlavourError("the JSON body is not an object")
    return object_leaves(json.dumps(data))


# ---- the Referflow node's operations, from the node specs --------------------------------------

@dataclass(frozen=True)
class Operation:
    """One action spec, as the generated Referflow node lays it out."""

    spec: dict[str, Any]

    @property
    def segments(self) -> list[str]:
        return str(self.spec["path"]).strip("/").split("/")

    def field(self, where: str, prop: str) -> dict[str, Any] | None:
        return next((f for f in self.spec["fields"] if f["in"] == where and f["property"] == prop), None)


def operations(specs: list[dict[str, Any]] | None = None) -> list[Operation]:
    """The Referflow node's operations (every action spec)."""
    return [Operation(s) for s in (specs if specs is not None else _specs()) if s["kind"] != "trigger"]


def trigger_events(specs: list[dict[str, Any]] | None = None) -> list[str]:
    """The event types the Referflow Trigger can subscribe to, in the spec's order."""
    trigger = next(s for s in (specs if specs is not None else _specs()) if s["kind"] == "trigger")
    return list(trigger["events"])


_SPECS: list[list[dict[str, Any]]] = []


def _specs() -> list[dict[str, Any]]:
    if not _SPECS:
        _SPECS.append(load_specs())
    return copy.deepcopy(_SPECS[0])


def _segments(path: str) -> list[str]:
    """Split a URL path at '/', keeping each {{ expression }} whole."""
    held: list[str] = []

    def hold(match: re.Match[str]) -> str:
        held.append(match.group())
        return f"\0{len(held) - 1}\0"

    masked = EXPRESSION.sub(hold, path)
    return [re.sub(r"\0(\d+)\0", lambda m: held[int(m[1])], s) for s in masked.strip("/").split("/")]


def _find_operation(method: str, path: str, ops: list[Operation]) -> tuple[Operation, dict[str, str]]:
    """The operation of (method, path) and the path's parameter values (as written in the URL)."""
    given = _segments(path)
    for op in ops:
        if op.spec["method"] != method or len(op.segments) != len(given):
            continue
        values: dict[str, str] = {}
        for pattern, segment in zip(op.segments, given, strict=True):
            if pattern.startswith("{") and pattern.endswith("}"):
                values[pattern[1:-1]] = segment
            elif pattern != segment:
                break
        else:
            return op, values
    raise NativeFlavourError(f"{method} {path} is no operation of the Referflow node")


# ---- values ------------------------------------------------------------------------------------

LITERAL_TYPES = {"string": str, "options": str, "datetime": str, "integer": int, "boolean": bool}


def _literal(expr: str) -> tuple[bool, Any]:
    """(True, value) when a JavaScript expression is a plain string, integer or boolean literal."""
    expr = expr.strip()
    if expr in ("true", "false"):
        return True, expr == "true"
    if re.fullmatch(r"-?\d+", expr):
        return True, int(expr)
    if len(expr) >= 2 and expr[0] == expr[-1] and expr[0] in "'\"" and "\\" not in expr \
            and expr[0] not in expr[1:-1]:
        return True, expr[1:-1]
    return False, None


def field_value(expr: str, field: dict[str, Any]) -> Any:
    """The node parameter for a JavaScript value expression: a literal of the field's type as
    itself (unless it would read as an expression), anything else as ``={{ expr }}``."""
    known, value = _literal(expr)
    kind = LITERAL_TYPES.get(field["type"])
    if known and kind is not None and type(value) is kind and not (isinstance(value, str) and value.startswith("=")):
        return value
    return "={{ " + expr.strip() + " }}"


def _url_value(text: str, field: dict[str, Any]) -> Any:
    """A path or query value as written in a URL: literal text, one {{ expression }}, or both."""
    whole = re.fullmatch(r"\{\{(.*)\}\}", text, re.DOTALL)
    if whole and "{{" not in whole[1]:
        return field_value(whole[1], field)
    if "{{" in text:
        return "=" + text
    text = unquote(text)
    if field["type"] == "integer" and re.fullmatch(r"-?\d+", text):
        return int(text)
    return text


# ---- one HTTP Request node -> one Referflow node -----------------------------------------------

def is_referflow_call(node: dict[str, Any]) -> bool:
    """True for an HTTP Request node whose URL is the Settings node's referflow_base_url + a path."""
    return node.get("type") == HTTP_REQUEST and bool(BASE_URL.match(str(node.get("parameters", {}).get("url", ""))))


def convert_call(node: dict[str, Any], ops: list[Operation]) -> tuple[dict[str, Any], Operation]:
    """The Referflow node doing what an HTTP Request node calling referflow did."""
    name = node.get("name")
    try:
        return _convert_call(node, ops)
    except NativeFlavourError as exc:
        raise NativeFlavourError(f"node {name!r}: {exc}") from None


def _convert_call(node: dict[str, Any], ops: list[Operation]) -> tuple[dict[str, Any], Operation]:
    params = node.get("parameters", {})
    unknown = sorted(set(params) - HTTP_PARAMETERS)
    if unknown:
        raise NativeFlavourError(f"HTTP Request parameter(s) {unknown} have no Referflow node equivalent")
    _check_options(params.get("options") or {})
    url = BASE_URL.sub("", str(params["url"]), count=1)
    path, _, query = url.partition("?")
    method = str(params.get("method", "GET")).upper()
    op, path_values = _find_operation(method, path, ops)
    values: list[tuple[dict[str, Any], Any]] = []
    for prop, text in path_values.items():
        field = op.field("path", prop)
        if field is None:
            raise NativeFlavourError(f"no field for the path parameter {prop!r}")
        values.append((field, _url_value(text, field)))
    for prop, text in _query(params, query):
        field = op.field("query", prop)
        if field is None:
            raise NativeFlavourError(f"{op.spec['name']} has no field for the query parameter {prop!r}")
        values.append((field, text if text.startswith("=") else _url_value(text, field)))
    for prop, expr in _body(params).items():
        field = op.field("body", prop)
        if field is None:
            raise NativeFlavourError(f"{op.spec['name']} has no field for the body property {prop!r}")
        values.append((field, field_value(expr, field)))
    idempotency_key = _headers(params)
    if idempotency_key is not None and not op.spec.get("idempotent"):
        raise NativeFlavourError(f"{op.spec['name']} takes no Idempotency-Key")
    keys = [field["key"] for field, _ in values]
    if twice := sorted({k for k in keys if keys.count(k) > 1}):
        raise NativeFlavourError(f"the field(s) {twice} are given twice (in the URL and the query parameters?)")
    if not node.get("credentials"):
        raise NativeFlavourError("it calls referflow without a credential")
    parameters: dict[str, Any] = {"resource": op.spec["resource"], "operation": op.spec["operation"]}
    extra: dict[str, Any] = {}
    order = {f["key"]: i for i, f in enumerate(op.spec["fields"])}
    for field, value in sorted(values, key=lambda fv: order[fv[0]["key"]]):
        (extra if field.get("optional_group") else parameters)[field["key"]] = value
    if idempotency_key is not None:
        extra["idempotencyKey"] = idempotency_key
    if extra:
        parameters["additionalFields"] = extra
    credential = next(iter(node["credentials"].values()))
    native = _replace(node, parameters, NODE_TYPE, NODE_VERSION, credential)
    return native, op


def _replace(node: dict[str, Any], parameters: dict[str, Any], type_: str, version: int,
             credential: dict[str, Any]) -> dict[str, Any]:
    """``node`` with new parameters, type and a Referflow API credential; every other setting (id,
    name, position, retries, error output...) kept, in the node's own key order."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        out[key] = {"parameters": parameters, "type": type_, "typeVersion": version}.get(key, value)
    out["credentials"] = {CREDENTIAL_TYPE: {"id": credential["id"], "name": credential["name"]}}
    return out


def _leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            yield from _leaves(inner, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), value


def _check_options(options: dict[str, Any]) -> None:
    """The HTTP node's options: only the default, failing on an error answer, has an equivalent
    (the Referflow node fails on one and reads JSON)."""
    other = [f"{k}={json.dumps(v)}" for k, v in _leaves(options)
             if k and not (k == "response.response.neverError" and v is False)
             and not (k in ("response", "response.response") and v == {})]
    if other:
        raise NativeFlavourError(f"HTTP Request option(s) {', '.join(other)} have no Referflow node equivalent")


def _query(params: dict[str, Any], query: str) -> list[tuple[str, str]]:
    pairs = [tuple(p.split("=", 1)) if "=" in p else (p, "") for p in query.split("&") if p]
    if params.get("sendQuery"):
        if params.get("specifyQuery", "keypair") != "keypair":
            raise NativeFlavourError("query parameters given as JSON: give them as name/value pairs")
        pairs += [(str(p.get("name")), str(p.get("value", "")))
                  for p in (params.get("queryParameters") or {}).get("parameters", [])]
    return [(str(k), str(v)) for k, v in pairs]


def _body(params: dict[str, Any]) -> dict[str, str]:
    if not params.get("sendBody"):
        return {}
    if params.get("contentType", "json") != "json" or params.get("specifyBody") != "json":
        raise NativeFlavourError("the body is not given as JSON (specifyBody: json)")
    return json_body_leaves(str(params.get("jsonBody", "")))


def _headers(params: dict[str, Any]) -> Any:
    """The Idempotency-Key header's value (None without one); any header the node does not send
    itself raises."""
    if not params.get("sendHeaders"):
        return None
    if params.get("specifyHeaders", "keypair") != "keypair":
        raise NativeFlavourError("headers given as JSON: give them as name/value pairs")
    key = None
    for header in (params.get("headerParameters") or {}).get("parameters", []):
        name = str(header.get("name", "")).strip().lower()
        value = header.get("value", "")
        if name == "idempotency-key":
            key = value
        elif OWN_HEADERS.get(name) != str(value).replace(" ", "").lower():
            raise NativeFlavourError(f"the header {header.get('name')}: {value} has no Referflow node equivalent")
    return key


def _aggregate(node: dict[str, Any], op: Operation) -> dict[str, Any]:
    """The Aggregate node putting a list operation's items back under the answer's key."""
    x, y = node.get("position", [0, 0])
    return {"parameters": {"aggregate": "aggregateAllItemData", "destinationFieldName": op.spec["output"],
                           "options": {}},
            "id": str(uuid.uuid5(NAMESPACE, f"{node.get('id')}/aggregate")),
            "name": f"{node['name']} (as one list)", "type": AGGREGATE, "typeVersion": 1,
            "position": [x + 110, y + 160]}


# ---- the workflow --------------------------------------------------------------------------------

def to_native(workflow: dict[str, Any], specs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Return the native-node flavour of a workflow (see the module's docstring); the input is not
    changed. A workflow without referflow calls or a referflow receiver comes back unchanged."""
    out = copy.deepcopy(workflow)
    specs = specs if specs is not None else _specs()
    ops = operations(specs)
    calls = [n for n in out["nodes"] if is_referflow_call(n)]
    receivers = [n for n in out["nodes"] if n.get("type") == WEBHOOK and _checks_after(out, n["name"])]
    if not calls and not receivers:
        return out
    read_before = _settings_read(out)
    base_url = settings_values(out).get(BASE_URL_SETTING) if calls else None
    credential = next((dict(c) for n in calls for c in (n.get("credentials") or {}).values()), PACK_CREDENTIAL)
    for node in calls:
        native, op = convert_call(node, ops)
        out["nodes"][out["nodes"].index(node)] = native
        if op.spec.get("output"):
            aggregate = _aggregate(node, op)
            if aggregate["name"] in {n["name"] for n in out["nodes"]}:
                raise NativeFlavourError(f"node {node['name']!r}: a node named {aggregate['name']!r} exists already")
            _insert_after(out, node["name"], aggregate)
    for receiver in receivers:
        _convert_receiver(out, receiver, credential, trigger_events(specs))
    _drop_settings(out, read_before - _settings_read(out))
    modes = [n["parameters"]["respond"] for n in out["nodes"] if n.get("type") == TRIGGER_TYPE]
    _add_note(out, credential["name"], bool(calls), base_url, modes)
    return out


def _insert_after(workflow: dict[str, Any], name: str, node: dict[str, Any]) -> None:
    """Put ``node`` between ``name``'s first output and what that output fed."""
    nodes = workflow["nodes"]
    nodes.insert(next(i for i, n in enumerate(nodes) if n["name"] == name) + 1, node)
    connections: dict[str, Any] = {}
    old = workflow["connections"]
    outputs = (old.get(name) or {}).get("main") or [[]]
    for source, outs in {**old, name: old.get(name, {"main": [[]]})}.items():
        if source == name:
            connections[name] = {**outs, "main": [[{"node": node["name"], "type": "main", "index": 0}],
                                                  *outputs[1:]]}
            connections[node["name"]] = {"main": [outputs[0]]}
        else:
            connections[source] = outs
    workflow["connections"] = connections


def _targets(workflow: dict[str, Any], name: str, outputs: slice = slice(None)) -> list[str]:
    return [t["node"] for targets in (workflow["connections"].get(name) or {}).get("main", [])[outputs]
            for t in targets]


def _downstream(workflow: dict[str, Any], name: str) -> list[str]:
    """Every node reached from ``name``'s outputs, nearest first."""
    seen: list[str] = []
    todo = [name]
    while todo:
        for target in _targets(workflow, todo.pop(0)):
            if target not in seen and target != name:
                seen.append(target)
                todo.append(target)
    return seen


def _nodes(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in workflow["nodes"]}


def _text(node: dict[str, Any]) -> str:
    """A node's parameters as text (JSON strings unescaped enough to search them)."""
    return json.dumps(node.get("parameters", {}), ensure_ascii=False).replace('\\"', '"')


def _checks_after(workflow: dict[str, Any], webhook: str) -> list[str]:
    """The signature and timestamp checks after a Webhook node receiving referflow's signed
    webhooks: the Crypto node signing the content, and the If nodes reading webhook-signature,
    webhook-timestamp or the Crypto node's result. Empty for any other Webhook node."""
    nodes = _nodes(workflow)
    after = [nodes[n] for n in _downstream(workflow, webhook) if n in nodes]
    crypto = [n for n in after if n["type"] == "n8n-nodes-base.crypto"
              and n.get("parameters", {}).get("action") == "hmac"]
    reads = [*CHECKED_HEADERS, *(str(n["parameters"].get("dataPropertyName", "data")) for n in crypto)]
    checks = [n for n in after if n["type"] == "n8n-nodes-base.if" and any(r in _text(n) for r in reads)]
    if not any("webhook-signature" in _text(n) for n in checks):
        return []
    return [n["name"] for n in crypto + checks]


WEBHOOK_PARAMETERS = {"httpMethod", "path", "responseMode", "options"}


def _convert_receiver(workflow: dict[str, Any], webhook: dict[str, Any], credential: dict[str, Any],
                      known_events: list[str]) -> None:
    name = webhook["name"]
    try:
        _receiver(workflow, webhook, credential, known_events)
    except NativeFlavourError as exc:
        raise NativeFlavourError(f"node {name!r}: {exc}") from None


def _receiver(workflow: dict[str, Any], webhook: dict[str, Any], credential: dict[str, Any],
              known_events: list[str]) -> None:
    params = webhook.get("parameters", {})
    unknown = sorted(set(params) - WEBHOOK_PARAMETERS) + sorted(f"options.{k}" for k in params.get("options") or {}
                                                                 if k != "rawBody")
    if unknown or params.get("httpMethod", "GET") != "POST":
        raise NativeFlavourError(f"Webhook parameter(s) {unknown or ['httpMethod']} have no Referflow Trigger "
                                 "equivalent (it receives POSTs)")
    nodes = _nodes(workflow)
    checks = _checks_after(workflow, webhook["name"])
    tolerance = settings_values(workflow).get("timestamp_tolerance_seconds")
    if tolerance is not None and int(tolerance) != TRIGGER_TOLERANCE_SECONDS:
        raise NativeFlavourError(f"the workflow accepts timestamps {tolerance} s from now, the Referflow Trigger "
                                 f"{TRIGGER_TOLERANCE_SECONDS} s")
    # What only a failed check leads to (the refusals) goes with the checks.
    refused = {t for c in checks if nodes[c]["type"] == "n8n-nodes-base.if"
               for t in _targets(workflow, c, slice(1, None))}
    refusals = _only_after(workflow, refused, set(checks))
    responds = [n["name"] for n in workflow["nodes"] if n["type"] == RESPOND and n["name"] not in refusals]
    for respond in responds:
        code = int((nodes[respond].get("parameters", {}).get("options") or {}).get("responseCode", 200))
        if code >= 300 and not any(nodes[t]["type"] == STOP for t in _targets(workflow, respond, slice(0, 1))):
            raise NativeFlavourError(f"{respond!r} answers {code} on a run that succeeds, and the Referflow "
                                     "Trigger answers 200 for every run that succeeds")
    events = _events(workflow, webhook["name"], known_events)
    if not events:
        raise NativeFlavourError("the workflow names no referflow event type to subscribe to")
    drop_nodes(workflow, set(checks) | refusals | set(responds))
    respond_mode = "onReceived" if params.get("responseMode", "onReceived") == "onReceived" else "lastNode"
    trigger = _replace(webhook, {"events": events, "respond": respond_mode, "output": "request"},
                       TRIGGER_TYPE, TRIGGER_VERSION, credential)
    workflow["nodes"][workflow["nodes"].index(webhook)] = trigger


def _only_after(workflow: dict[str, Any], starts: set[str], removed: set[str]) -> set[str]:
    """The nodes reached from ``starts`` (and these) that nothing else than them and ``removed`` feeds."""
    found = set(starts)
    for start in starts:
        found.update(_downstream(workflow, start))
    changed = True
    while changed:
        changed = False
        for node in sorted(found):
            feeders = {src for src, outs in workflow["connections"].items()
                       for targets in outs.get("main", []) for t in targets if t["node"] == node}
            if feeders - found - removed:
                found.discard(node)
                changed = True
    return found


def _events(workflow: dict[str, Any], start: str, known: list[str]) -> list[str]:
    """The referflow event types quoted in the nodes after ``start``, in the trigger's order."""
    nodes = _nodes(workflow)
    quoted: set[str] = set()
    for name in _downstream(workflow, start):
        if name in nodes:
            quoted.update(re.findall(r"['\"`]([a-z_]+\.[a-z_]+)['\"`]", _text(nodes[name])))
    return [e for e in known if e in quoted]


def _settings_read(workflow: dict[str, Any]) -> set[str]:
    """The Settings values some node reads (sticky notes are no readers; a value another Settings
    value is built from is read when that one is)."""
    node = settings_node(workflow)
    if node is None:
        return set()
    others = " ".join(_text(n) for n in workflow["nodes"] if n is not node and n.get("type") != STICKY)
    items = {name: str(value) for name, value in settings_values(workflow).items()}
    read = {name for name in items if re.search(r"\b" + re.escape(name) + r"\b", others)}
    while True:
        more = {name for name in items if name not in read
                and any(re.search(r"\b" + re.escape(name) + r"\b", items[r]) for r in read)}
        if not more:
            return read
        read |= more


def _drop_settings(workflow: dict[str, Any], names: set[str]) -> None:
    """Remove the Settings values that were read and are not any more (the base URL, now in the
    credential; the signing key, now the trigger's); the Settings node too when it holds nothing else."""
    node = settings_node(workflow)
    if node is None or not names:
        return
    kept = [a for a in settings_assignments(workflow) if a.get("name") not in names]
    if kept:
        node["parameters"]["assignments"]["assignments"] = kept
    else:
        drop_nodes(workflow, {SETTINGS})


def _add_note(workflow: dict[str, Any], credential: str, calls: bool, base_url: Any, triggers: list[str]) -> None:
    """Say in the workflow's first sticky note what the native flavour changes in its setup."""
    note = next((n for n in workflow["nodes"] if n.get("type") == STICKY), None)
    if note is None:
        return
    content = str(note["parameters"].get("content", ""))
    title, newline, rest = content.partition("\n") if content.startswith("#") else ("", "", content)
    if calls:
        added = NOTE.format(credential=credential, url=f" (`{base_url}`)" if base_url else "")
    else:
        added = TRIGGER_ONLY_NOTE.format(credential=credential)
    if triggers:
        added += " " + TRIGGER_NOTE + (LAST_NODE_NOTE if "lastNode" in triggers else "")
    note["parameters"]["content"] = f"{title}{newline}{added}\n\n{rest}"


# ---- checking native-flavour files (for workflows.check) -----------------------------------------

TRIGGER_OPTIONS = {"respond": ("onReceived", "lastNode"), "output": ("event", "request")}


def check_native(workflow: dict[str, Any], specs: list[dict[str, Any]] | None = None) -> list[str]:
    """The problems of a workflow's Referflow nodes and Referflow Triggers (empty when they are
    right): an operation the node does not have, a parameter that is no field of its operation, a
    credential of another type; a trigger event the trigger does not know, an unknown option."""
    specs = specs if specs is not None else _specs()
    by_operation = {(o.spec["resource"], o.spec["operation"]): o for o in operations(specs)}
    events = set(trigger_events(specs))
    problems: list[str] = []
    for node in workflow.get("nodes", []):
        if not isinstance(node, dict) or node.get("type") not in (NODE_TYPE, TRIGGER_TYPE):
            continue
        where = f"node {node.get('name')!r}"
        params = node.get("parameters") or {}
        if set(node.get("credentials") or {}) != {CREDENTIAL_TYPE}:
            problems.append(f"{where}: its credential must be one {CREDENTIAL_TYPE} credential")
        if node["type"] == TRIGGER_TYPE:
            problems += [f"{where}: unknown event {e!r}" for e in params.get("events") or [] if e not in events]
            if not params.get("events"):
                problems.append(f"{where}: subscribes to no event")
            problems += [f"{where}: {k} is {params[k]!r}, not one of {list(v)}"
                         for k, v in TRIGGER_OPTIONS.items() if k in params and params[k] not in v]
            continue
        op = by_operation.get((params.get("resource"), params.get("operation")))
        if op is None:
            problems.append(f"{where}: the Referflow node has no operation {params.get('resource')!r} "
                            f"{params.get('operation')!r}")
            continue
        top = {f["key"] for f in op.spec["fields"] if not f.get("optional_group")}
        extra = {f["key"] for f in op.spec["fields"] if f.get("optional_group")} | (
            {"idempotencyKey"} if op.spec.get("idempotent") else set())
        problems += [f"{where}: {k!r} is no field of {op.spec['name']}"
                     for k in params if k not in top | {"resource", "operation", "additionalFields"}]
        problems += [f"{where}: {k!r} is no additional field of {op.spec['name']}"
                     for k in params.get("additionalFields") or {} if k not in extra]
    return problems
