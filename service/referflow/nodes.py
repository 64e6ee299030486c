"""Node specs: one declarative file per action and trigger, checked against the OpenAPI document.

The n8n community node and the Zapier app are generated from these specs (see ``nodegen``), so
the contract of the integrations lives in one place and a test fails when it drifts from the API.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from referflow.contract import PREFER_OUTCOME, SchemaStore
from referflow.errors import ValidationFailed

# JSON Schema type (and format) of a request property -> the spec field type it maps to. A
# nullable property ("type": ["string", "null"]) maps like its non-null type; an array of such
# values maps like its items and is sent as a list (``Leaf.many``: the generator reads it here,
# a spec field only names the item type).
FIELD_TYPES = {("string", None): "string", ("string", "date-time"): "datetime",
               ("integer", None): "integer", ("number", None): "number", ("boolean", None): "boolean"}
# The request header with which an operation answers ordinary "nothing to do" events with 200
# and an outcome instead of an error (OpenAPI parameter ``Prefer``, value ``outcome=explicit``).


def specs_dir() -> Path:
    """Return the folder of the specs: packaged copy first, then the source tree."""
    packaged = Path(__file__).parent / "_node_specs"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "node_specs"


def load_specs(directory: Path | None = None) -> list[dict[str, Any]]:
    """Return every spec, validated against ``schemas/node-spec.schema.json``, in file order."""
    store = SchemaStore()
    specs = []
    for path in sorted((directory or specs_dir()).glob("*.json")):
        spec = json.loads(path.read_text())
        store.validate("node-spec.schema", spec)
        if spec["name"] != path.stem:  # generated files name node_specs/<name>.json as their source
            message = f"{spec['name']!r} must match the file name {path.name!r}"
            raise ValidationFailed(f"/name: {message}", errors=[{"path": "/name", "message": message}])
        specs.append(spec)
    return specs


@dataclass(frozen=True)
class Leaf:
    """One settable property of a request body (dotted path) as its JSON Schema describes it."""

    path: str
    field_type: str | None  # json: free objects and lists of objects; None: none the specs express
    required: bool
    enum: tuple[str, ...] | None
    many: bool = False  # an array of field_type values
    nullable: bool = False  # null is a value (the event did not carry it)


def body_leaves(schema: dict[str, Any], prefix: str = "", required: bool = True) -> dict[str, Leaf]:
    """Return the leaves of an object schema; a leaf is required when it and its parents are."""
    leaves: dict[str, Leaf] = {}
    for name, prop in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        is_required = required and name in schema.get("required", [])
        if prop.get("type") == "object" and "properties" in prop:
            leaves.update(body_leaves(prop, f"{path}.", is_required))
            continue
        many = prop.get("type") == "array"
        item = prop.get("items", {}) if many else prop
        kind = FIELD_TYPES.get((_non_null(item.get("type")), item.get("format")))
        if _non_null(item.get("type")) == "object":  # objects the specs give as one JSON value
            leaves[path] = Leaf(path, "json", is_required, None)
            continue
        enum = tuple(item["enum"]) if "enum" in item else None
        nullable = not many and "null" in (prop.get("type") if isinstance(prop.get("type"), list) else [])
        leaves[path] = Leaf(path, "options" if enum and kind == "string" else kind, is_required, enum, many,
                            nullable)
    return leaves


def _non_null(kind: Any) -> Any:
    """The type of a nullable property (``["string", "null"]`` -> ``"string"``): a node field
    sends a value, and an expression that finds nothing sends null, which the API accepts."""
    if isinstance(kind, list):
        rest = [k for k in kind if k != "null"]
        return rest[0] if len(rest) == 1 else None
    return kind


def alternatives(schema: dict[str, Any]) -> list[list[str]]:
    """Return the anyOf/oneOf alternatives of required properties (one of them must be given)."""
    return [option.get("required", []) for option in schema.get("anyOf", schema.get("oneOf", []))]


def drift(specs: list[dict[str, Any]], openapi: dict[str, Any], store: SchemaStore) -> list[str]:
    """Return every way the specs disagree with the OpenAPI document (empty when they agree)."""
    operations = {op["operationId"]: (method.upper(), path, op)
                  for path, ops in openapi["paths"].items() for method, op in ops.items()}
    problems: list[str] = []
    names = [s["name"] for s in specs]
    problems += [f"duplicate spec name {n!r}" for n in sorted({n for n in names if names.count(n) > 1})]
    for spec in specs:
        where = f"{spec['name']}:"
        if spec["kind"] == "trigger":
            problems += [f"{where} {p}" for p in _trigger_drift(spec, operations, store)]
            continue
        found = operations.get(spec["operation_id"])
        if found is None:
            problems.append(f"{where} unknown operation {spec['operation_id']!r}")
            continue
        method, path, op = found
        if (spec["method"], spec["path"]) != (method, path):
            problems.append(f"{where} {spec['method']} {spec['path']} but the API has {method} {path}")
        problems += [f"{where} {p}" for p in _field_drift(spec, op, store)]
        problems += [f"{where} {p}" for p in _sample_drift(spec, op, store)]
    return problems


def _schema_names(body: dict[str, Any]) -> list[str]:
    """The schema files a JSON request/response body of the OpenAPI document refers to (one, or
    the alternatives of a ``oneOf``)."""
    schema = body.get("content", {}).get("application/json", {}).get("schema", {})
    refs = [s.get("$ref") for s in schema.get("oneOf", [schema])]
    return [ref.rsplit("/", 1)[1][: -len(".json")] for ref in refs if ref]


def _schema_name(body: dict[str, Any]) -> str | None:
    names = _schema_names(body)
    return names[0] if len(names) == 1 else None


def _request_schema(op: dict[str, Any], store: SchemaStore) -> dict[str, Any] | None:
    name = _schema_name(op.get("requestBody", {}))
    return store.documents[name] if name else None


def response_schemas(op: dict[str, Any]) -> list[str]:
    """The schema names of an operation's success answer (the first 2xx), alternatives in order."""
    return _schema_names(next((r for code, r in op["responses"].items() if code.startswith("2")), {}))


def prefers_outcome(op: dict[str, Any]) -> bool:
    """True when the operation honours ``Prefer: outcome=explicit`` (see PREFER_OUTCOME)."""
    return any(p["in"] == "header" and p["name"].lower() == "prefer"
               and PREFER_OUTCOME in p.get("schema", {}).get("enum", []) for p in op.get("parameters", []))


@dataclass(frozen=True)
class Contract:
    """What the API says about the operation of one action spec, for the generator."""

    lists: frozenset[str]  # body properties sent as arrays (Leaf.many)
    nullable: frozenset[str]  # body properties an empty value is sent as null for (Leaf.nullable)
    prefer_outcome: bool  # send ``Prefer: outcome=explicit``
    responses: tuple[str, ...]  # schema names of the success answer


def contracts(specs: list[dict[str, Any]], openapi: dict[str, Any], store: SchemaStore) -> dict[str, Contract]:
    """Return the Contract of every action spec whose operation exists (triggers have none)."""
    operations = {op["operationId"]: op for ops in openapi["paths"].values() for op in ops.values()}
    out = {}
    for spec in specs:
        op = operations.get(spec.get("operation_id", ""))
        if spec["kind"] == "trigger" or op is None:
            continue
        schema = _request_schema(op, store)
        leaves = body_leaves(schema) if schema else {}
        out[spec["name"]] = Contract(frozenset(p for p, leaf in leaves.items() if leaf.many),
                                     frozenset(p for p, leaf in leaves.items() if leaf.nullable),
                                     prefers_outcome(op), tuple(response_schemas(op)))
    return out


def _field_drift(spec: dict[str, Any], op: dict[str, Any], store: SchemaStore) -> list[str]:
    problems = []
    fields = {(f["in"], f["property"]): f for f in spec["fields"]}
    params = {p["name"]: p for p in op.get("parameters", []) if p["in"] in ("path", "query")}
    for (where, prop), field in fields.items():
        if where in ("path", "query") and (prop not in params or params[prop]["in"] != where):
            problems.append(f"field {field['key']!r}: no {where} parameter {prop!r}")
    for name, param in params.items():
        if param["in"] == "path" and ("path", name) not in fields:
            problems.append(f"path parameter {name!r} has no field")
    schema = _request_schema(op, store)
    leaves = body_leaves(schema) if schema else {}
    for (where, prop), field in fields.items():
        if where != "body":
            continue
        leaf = leaves.get(prop)
        if leaf is None:
            problems.append(f"field {field['key']!r}: the request has no property {prop!r}")
            continue
        if leaf.field_type != field["type"]:
            problems.append(f"field {field['key']!r}: type {field['type']} but the API says {leaf.field_type}")
        if leaf.enum and sorted(o["value"] for o in field.get("options", [])) != sorted(leaf.enum):
            problems.append(f"field {field['key']!r}: options differ from the API's {list(leaf.enum)}")
        if leaf.required and not field.get("required"):
            problems.append(f"field {field['key']!r}: the API requires {prop!r}")
        if field.get("required") and not leaf.required:
            problems.append(f"field {field['key']!r}: required, but the API does not require {prop!r}")
    for leaf in leaves.values():
        if leaf.required and ("body", leaf.path) not in fields:
            problems.append(f"required property {leaf.path!r} has no field")
    for option in alternatives(schema or {}):
        problems += [f"property {p!r} (one of {option}) has no field" for p in option
                     if not any(path == p or path.startswith(f"{p}.") for _, path in fields)]
    return problems


def _sample_drift(spec: dict[str, Any], op: dict[str, Any], store: SchemaStore) -> list[str]:
    """The sample's errors against the answer's schema (against the first of alternatives when it
    fits none of them)."""
    found = [store.errors(name, spec["sample"]) for name in response_schemas(op)]
    if not found or [] in found:
        return []
    return [f"sample{e['path']}: {e['message']}" for e in found[0]]


def _trigger_drift(spec: dict[str, Any], operations: dict[str, Any], store: SchemaStore) -> list[str]:
    problems = [f"unknown operation {spec[k]['operation_id']!r}" for k in ("subscribe", "unsubscribe", "list")
                if spec[k]["operation_id"] not in operations]
    subscribe = store.documents["create-webhook-subscription.request"]
    known = set(subscribe["properties"]["events"]["items"]["enum"])
    problems += [f"unknown event type {e!r}" for e in spec["events"] if e not in known]
    kind = spec["sample"].get("type")
    if f"event.{kind}" not in store.documents:
        problems.append(f"sample has no known event type ({kind!r})")
    else:
        problems += [f"sample{e['path']}: {e['message']}" for e in store.errors(f"event.{kind}", spec["sample"])]
    return problems
