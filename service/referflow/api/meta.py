"""The published contract (/openapi.json, /schemas/*.json); probes: /healthz, /livez, /readyz, /metrics."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

from referflow import observability
from referflow.api.errors import error_response
from referflow.api.operations import METRICS, OPERATIONS, PUBLIC, Operation, authenticate, db_session
from referflow.contract import PREFER_OUTCOME
from referflow.errors import NotFound

bp = Blueprint("meta", __name__)


@bp.get("/openapi.json")
def openapi() -> Response:
    """Serve the OpenAPI 3.1 document."""
    return jsonify(openapi_document())


@bp.get("/schemas/<name>.json")
def schema(name: str) -> Response:
    """Serve one JSON Schema."""
    documents = current_app.extensions["referflow"].schemas.documents
    if name not in documents:
        raise NotFound(f"no schema {name}", code="schema_not_found")
    return jsonify(documents[name])


@bp.get("/healthz")
def healthz() -> Response:
    """Answer 200 when the database answers."""
    db_session().execute(text("SELECT 1"))
    return jsonify({"status": "ok"})


@bp.get("/livez")
def livez() -> Response:
    """Answer 200 while the process serves requests (no dependency is checked)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Answer 200 when the database, its migrations and Redis are ready; else 503 naming what is not."""
    checks = observability.readiness(current_app)
    failing = observability.not_ready(checks)
    if failing:
        return error_response(503, "not_ready", f"not ready: {', '.join(failing)}",
                              [{"check": name, "state": checks[name]} for name in failing])
    return jsonify({"status": "ready", "checks": checks})


@bp.get("/metrics")
def metrics() -> Response:
    """Serve the Prometheus metrics (admin token, or REFERFLOW_METRICS_TOKEN)."""
    authenticate(METRICS)
    return observability.metrics_response()


def openapi_document() -> dict[str, Any]:
    """Build the OpenAPI 3.1 document from the operation table."""
    paths: dict[str, dict[str, Any]] = {}
    for op in sorted(OPERATIONS, key=lambda o: (o.path, o.method)):
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "referflow", "version": "1",
                 "description": "Referral actions as JSON-schema endpoints."},
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer",
                           "description": "A program API key; its scopes (read, write, "
                           "admin-of-program) name what it may call"},
                "adminToken": {"type": "http", "scheme": "bearer",
                               "description": "REFERFLOW_ADMIN_TOKEN"},
            },
        },
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"/schemas/{name}.json"}


def _operation(op: Operation) -> dict[str, Any]:
    params = [{"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
              for part in op.path.split("/") if part.startswith("{")]
    params += [{"name": q, "in": "query", "required": False, "schema": {"type": "string"}}
               for q in op.query]
    out: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary,
                           "tags": [op.tag], "parameters": params}
    if op.method == "POST":
        params.append({"name": "Idempotency-Key", "in": "header", "required": False,
                       "schema": {"type": "string", "maxLength": 255},
                       "description": "Same key and body replays the first response"})
    if op.outcomes:
        params.append({"name": "Prefer", "in": "header", "required": False,
                       "schema": {"type": "string", "enum": [PREFER_OUTCOME]},
                       "description": "outcome=explicit: an ordinary event with nothing to do "
                       "(no code, a customer nobody referred...) is answered 200 with an outcome "
                       "instead of an error; see the nothing-to-do schema"})
    if op.request:
        out["requestBody"] = {"required": True,
                              "content": {"application/json": {"schema": _ref(op.request)}}}
    if op.auth != PUBLIC:
        # An API key's operations name the scope they need (OpenAPI 3.1 allows role names here).
        out["security"] = [{"adminToken": []} if op.auth == "admin" else {"apiKey": [str(op.scope)]}]
    ok: dict[str, Any] = {"description": "Success"}
    if op.response:
        schema: dict[str, Any] = _ref(op.response)
        if op.outcomes:
            schema = {"oneOf": [schema, _ref("nothing-to-do")]}
        ok["content"] = {"application/json": {"schema": schema}}
    error = {"description": "Error", "content": {"application/json": {"schema": _ref("error")}}}
    out["responses"] = {str(op.status): ok, **{str(s): ok for s in op.also}, "4XX": error}
    return out
