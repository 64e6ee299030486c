"""The operation table: each view is declared once and becomes a route and an OpenAPI entry."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.wrappers import Response as BaseResponse

from referflow.actions import idempotency
from referflow.actions.common import Actor, ProgramContext
from referflow.actions.programs import key_owner, record_key_use
from referflow.api.ratelimit import key_prefix
from referflow.config import Settings
from referflow.contract import PREFER_OUTCOME
from referflow.domain.hashing import sha256_hex
from referflow.domain.program import ProgramConfig
from referflow.domain.scopes import Scope, allows, method_scope
from referflow.errors import ApiError, BadRequest, Forbidden, Unauthorized, UnsupportedMediaType
from referflow.jsonbody import ascii_digits, loads_strict
from referflow.observability import note_caller

ADMIN, PROGRAM, PUBLIC = "admin", "program", "public"
METRICS = "metrics"  # /metrics only: the admin token or REFERFLOW_METRICS_TOKEN


@dataclass(frozen=True)
class Operation:
    """One public operation of the API."""

    operation_id: str
    method: str
    rule: str
    summary: str
    auth: str
    response: str | None
    request: str | None = None
    status: int = 200
    tag: str = "referrals"
    query: tuple[str, ...] = field(default_factory=tuple)
    also: tuple[int, ...] = field(default_factory=tuple)  # other success statuses it answers
    outcomes: bool = False  # honours ``Prefer: outcome=explicit`` (ordinary events answer 200)
    scope: Scope | None = None  # what a program key needs (domain/scopes.py); None off PROGRAM

    @property
    def path(self) -> str:
        """Return the OpenAPI path (``{name}`` instead of Flask's ``<name>``)."""
        return self.rule.replace("<", "{").replace(">", "}")


OPERATIONS: list[Operation] = []


@dataclass(frozen=True)
class Caller:
    """Who is calling: the admin, or a program through one of its API keys."""

    actor: Actor
    program: ProgramContext | None = None
    scopes: frozenset[str] = frozenset()
    key_prefix: str | None = None  # the API key's first characters (for logs), never the key

    @property
    def ctx(self) -> ProgramContext:
        """Return the program context (only for program-authenticated operations)."""
        assert self.program is not None
        return self.program


View = Callable[..., Any]


def operation(bp: Blueprint, operation_id: str, method: str, rule: str, *, summary: str,
              response: str | None, request_schema: str | None = None, status: int = 200,
              auth: str = PROGRAM, tag: str = "referrals",
              query: tuple[str, ...] = (), also: tuple[int, ...] = (),
              outcomes: bool = False, scope: Scope | None = None) -> Callable[[View], View]:
    """Declare an operation: route, auth, scope, body validation, idempotency, JSON response.

    A program operation needs scope ``read`` for GET and ``write`` otherwise, unless told.
    """
    needed = (scope or method_scope(method)) if auth == PROGRAM else None
    op = Operation(operation_id, method, rule, summary, auth, response, request_schema,
                   status, tag, query, also, outcomes, needed)
    OPERATIONS.append(op)

    def decorate(fn: View) -> View:
        @wraps(fn)
        def view(**path_args: Any) -> BaseResponse:
            caller = authenticate(op.auth)
            note_caller(caller.program.id if caller.program else None, caller.key_prefix)
            require_scope(caller, op)
            body = parse_body(op.request) if op.request else None
            explicit = op.outcomes and prefers_explicit_outcome()

            def run() -> Any:
                try:
                    return fn(caller, body, **path_args)
                except ApiError as exc:
                    if explicit and exc.ordinary:
                        db_session().rollback()
                        return nothing_to_do(exc), 200
                    raise

            if op.method == "POST" and request.headers.get("Idempotency-Key"):
                response = _idempotent(op, caller, body, run, explicit)
            else:
                returned = run()
                if isinstance(returned, BaseResponse):
                    return returned
                response = _respond(op, *_result(op, returned))
            if explicit:
                response.headers["Preference-Applied"] = PREFER_OUTCOME
            return response

        bp.add_url_rule(rule, endpoint=operation_id, view_func=view, methods=[method])
        return view

    return decorate


def _result(op: Operation, returned: Any) -> tuple[dict[str, Any], int]:
    """Views return a payload, or (payload, status) when the status varies."""
    if isinstance(returned, tuple):
        return returned[0], returned[1]
    return returned, op.status




def prefers_explicit_outcome() -> bool:
    """Return True when the request asks ``Prefer: outcome=explicit`` (RFC 7240 syntax)."""
    for header in request.headers.getlist("Prefer"):
        for preference in header.split(","):
            name, _, value = preference.split(";")[0].partition("=")
            if name.strip().lower() == "outcome" and value.strip().strip('"').lower() == "explicit":
                return True
    return False


NOTHING_TO_DO = {"outcome", "changed", "message", "referral_id", "status"}


def nothing_to_do(exc: ApiError) -> dict[str, Any]:
    """The 200 answer to an ordinary event that concerns no referral or changes nothing."""
    referral = exc.referral
    return {"outcome": exc.ordinary, "changed": False, "message": exc.message,
            "referral_id": getattr(referral, "id", None),
            "status": str(referral.status) if referral is not None else None}


def _respond(op: Operation, payload: dict[str, Any], status: int,
             replayed: bool = False) -> Response:
    services = current_app.extensions["referflow"]
    if services.settings.validate_responses and op.response:
        nothing = op.outcomes and set(payload) == NOTHING_TO_DO
        services.schemas.validate("nothing-to-do" if nothing else op.response, payload)
    response = jsonify(payload)
    response.status_code = status
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _idempotent(op: Operation, caller: Caller, body: Any, run: Callable[[], Any],
                explicit: bool) -> Response:
    key = request.headers["Idempotency-Key"].strip()
    if not key or len(key) > 255:
        raise BadRequest("Idempotency-Key must be 1-255 characters", code="invalid_idempotency_key")
    scope = caller.program.id if caller.program else "admin"
    # The preference shapes the answer, so it is part of what makes two requests the same.
    fingerprint = sha256_hex(f"{op.operation_id}\n{request.path}\n"
                             + ("prefer:outcome\n" if explicit else "")
                             + json.dumps(body, sort_keys=True, separators=(",", ":")))
    session = db_session()
    stored = idempotency.lookup(session, scope, key, fingerprint)
    if stored is not None:
        return _respond(op, stored.body, stored.status, replayed=True)
    payload, status = _result(op, run())
    if 200 <= status < 300:
        first = idempotency.store(session, scope, key, fingerprint,
                                  idempotency.StoredResponse(status, payload))
        if first.body != payload:
            return _respond(op, first.body, first.status, replayed=True)
    return _respond(op, payload, status)


def db_session() -> Any:
    """Return this request's database session (closed at teardown)."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["referflow"].db.sessions()
    return g.db_session


def bearer_token() -> str:
    """Return the bearer token of the request, or raise 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send Authorization: Bearer <API key>", code="missing_credentials")
    return token.strip()


def authenticate(auth: str) -> Caller:
    """Authenticate the request for an operation's auth kind; failures are rate limited.

    A right credential always passes (programs share addresses: Zapier, n8n cloud, proxies);
    once an address or a key prefix is over its failure limit, its failures answer 429.
    """
    if auth == PUBLIC:
        return Caller(Actor("public"))
    limits = current_app.extensions["referflow"].limits
    buckets = [("ip", request.remote_addr or "-")]
    try:
        token = bearer_token()
        buckets.append(("key", key_prefix(token)))
        return _verify(auth, token)
    except Unauthorized:
        for bucket in buckets:
            limits.refuse_if_over(limits.auth_failures, *bucket)
        for bucket in buckets:
            limits.count(limits.auth_failures, *bucket)
        raise


def require_scope(caller: Caller, op: Operation) -> None:
    """Refuse (403) an API key whose scopes do not include what the operation needs."""
    if op.scope is not None and not allows(caller.scopes, op.scope):
        have = ", ".join(sorted(caller.scopes)) or "none"
        raise Forbidden(f"API key {caller.key_prefix}… has scopes {have}; {op.operation_id} "
                        f"needs {op.scope}", code="insufficient_scope")


def limit_public(item_name: str, *keys: str) -> None:
    """Count a public request against its per-address limit (429 when over)."""
    limits = current_app.extensions["referflow"].limits
    limits.take(getattr(limits, item_name), "ip", request.remote_addr or "-", *keys)


def _verify(auth: str, token: str) -> Caller:
    services = current_app.extensions["referflow"]
    if auth in (ADMIN, METRICS):
        return _verify_operator(auth, token, services.settings)
    key_hash = sha256_hex(token)
    cached = services.keys.get(key_hash)
    if cached is None:
        cached = services.keys.put(key_hash, *key_owner(db_session(), token))
    if services.keys.touch_due(cached.key_id):
        record_key_use(db_session(), cached.key_id)
    ctx = ProgramContext(cached.program, ProgramConfig.from_dict(cached.program.config),
                         services.settings.secret_key)
    return Caller(Actor("api_key", cached.key_id), ctx, cached.scopes, cached.prefix)


def _verify_operator(auth: str, token: str, settings: Settings) -> Caller:
    """Accept the admin token; for METRICS, the metrics token too (it grants nothing else)."""
    if _same(token, settings.admin_token):
        return Caller(Actor("admin", "admin"))
    if auth == METRICS and settings.metrics_token and _same(token, settings.metrics_token):
        return Caller(Actor("metrics", "scraper"))
    raise Unauthorized("invalid admin token" if auth == ADMIN else "invalid admin or metrics token",
                       code="invalid_credentials")


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def parse_body(schema: str) -> Any:
    """Read, parse and validate the JSON body against ``schema``."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        data: Any = {}
    else:
        if request.mimetype != "application/json":
            raise UnsupportedMediaType("send the body as application/json")
        data = loads_strict(raw)
    current_app.extensions["referflow"].schemas.validate(schema, data)
    return data


def int_arg(name: str, default: int, low: int, high: int) -> int:
    """Read an integer query parameter (ASCII digits only) within ``low``..``high``, or raise 400."""
    raw = request.args.get(name, str(default))
    if not ascii_digits(raw) or not low <= int(raw) <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high}", code="invalid_query")
    return int(raw)
