"""API keys: scopes per operation, revocation (also across processes), last use, prefixes only."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event

from referflow.actions import programs
from referflow.api.keycache import DEFAULT_TTL, TOUCH_EVERY
from referflow.api.meta import openapi_document
from referflow.api.operations import OPERATIONS, PROGRAM
from referflow.app import create_app
from referflow.domain.scopes import Scope, allows
from referflow.domain.timeutil import utcnow
from tests.conftest import ADMIN_TOKEN, PROGRAM_CONFIG, Api, make_program

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
ADMIN_OF_PROGRAM_OPERATIONS = {"updateProgramConfig", "configureProvider", "createProgramApiKey",
                               "listApiKeys", "revokeApiKey", "createExperiment",
                               "updateExperiment", "stopExperiment"}


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _key(admin: Api, program_id: str, *scopes: str, label: str | None = None) -> Api:
    body: dict = {"label": label} if label else {}
    if scopes:
        body["scopes"] = list(scopes)
    response = admin.post(f"/v1/admin/programs/{program_id}/api-keys", body)
    assert response.status_code == 201, response.get_json()
    key = Api(admin.client, response.get_json()["key"])
    key.id = response.get_json()["id"]  # type: ignore[attr-defined]
    return key


def _delete(api: Api, path: str):
    return api.client.delete(path, headers=api.headers())


def test_the_owner_key_is_admin_of_program_and_new_keys_default_to_write(client, admin):
    owner = admin.post("/v1/admin/programs", {"name": "A", "config": PROGRAM_CONFIG}).get_json()
    assert owner["api_key"]["scopes"] == ["admin-of-program"]
    created = admin.post(f"/v1/admin/programs/{owner['program']['id']}/api-keys", {}).get_json()
    assert created["scopes"] == ["write"]


def test_scope_names_agree_with_the_published_schema():
    request = json.loads((SCHEMAS / "create-api-key.request.json").read_text())
    assert request["properties"]["scopes"]["items"]["enum"] == [s.value for s in Scope]
    for name in ("api-key.json", "api-key-info.json"):
        schema = json.loads((SCHEMAS / name).read_text())
        assert schema["properties"]["scopes"]["items"]["enum"] == [s.value for s in Scope]


def test_every_program_operation_names_its_scope():
    program_ops = [op for op in OPERATIONS if op.auth == PROGRAM]
    assert program_ops and all(isinstance(op.scope, Scope) for op in program_ops)
    assert all(op.scope is None for op in OPERATIONS if op.auth != PROGRAM)
    assert {op.operation_id for op in program_ops if op.scope == Scope.ADMIN_OF_PROGRAM} \
        == ADMIN_OF_PROGRAM_OPERATIONS
    for op in program_ops:
        if op.operation_id not in ADMIN_OF_PROGRAM_OPERATIONS:
            assert op.scope == (Scope.READ if op.method == "GET" else Scope.WRITE), op.operation_id
    security = {op["operationId"]: op.get("security") for path in openapi_document()["paths"].values()
                for op in path.values()}
    assert security["configureProvider"] == [{"apiKey": ["admin-of-program"]}]
    assert security["getReferral"] == [{"apiKey": ["read"]}]
    assert security["createApiKey"] == [{"adminToken": []}]


@pytest.mark.parametrize(("scopes", "needed", "allowed"), [
    (["read"], Scope.READ, True), (["read"], Scope.WRITE, False),
    (["write"], Scope.READ, True), (["write"], Scope.WRITE, True),
    (["write"], Scope.ADMIN_OF_PROGRAM, False), (["admin-of-program"], Scope.WRITE, True),
    (["read", "write"], Scope.WRITE, True), ([], Scope.READ, False), (["bogus"], Scope.READ, False),
])
def test_each_scope_includes_the_lesser_ones(scopes, needed, allowed):
    assert allows(scopes, needed) is allowed


@pytest.mark.parametrize(("scope", "method", "path", "body", "expected"), [
    ("read", "get", "/v1/program", None, 200),
    ("read", "post", "/v1/links", {"advocate": {"external_id": "a1", "email": "a1@example.test"}}, 403),
    ("read", "get", "/v1/webhooks", None, 200),
    ("read", "post", "/v1/webhooks", {"url": "https://127.0.0.1/h", "events": ["*"]}, 403),
    ("write", "post", "/v1/links", {"advocate": {"external_id": "a1", "email": "a1@example.test"}}, 201),
    ("write", "post", "/v1/webhooks", {"url": "https://127.0.0.1/h", "events": ["*"]}, 201),
    ("write", "put", "/v1/program/config", {"config": PROGRAM_CONFIG}, 403),
    ("write", "put", "/v1/providers/stripe", {"webhook_secrets": ["whsec_x"]}, 403),
    ("write", "get", "/v1/api-keys", None, 403),
    ("write", "post", "/v1/api-keys", {}, 403),
    ("admin-of-program", "put", "/v1/program/config", {"config": PROGRAM_CONFIG}, 200),
    ("admin-of-program", "put", "/v1/providers/stripe", {"webhook_secrets": ["whsec_x"]}, 200),
    ("admin-of-program", "get", "/v1/api-keys", None, 200),
    ("admin-of-program", "post", "/v1/api-keys", {"scopes": ["read"]}, 201),
])
def test_a_key_may_call_what_its_scopes_allow(client, admin, scope, method, path, body, expected):
    program = make_program(client)
    key = _key(admin, program.program_id, scope)
    kwargs = {"json": body} if body is not None else {}
    response = getattr(client, method)(path, headers=key.headers(), **kwargs)
    assert response.status_code == expected, response.get_json()
    if expected == 403:
        error = response.get_json()
        assert error["code"] == "insufficient_scope"
        assert key.token[:10] in error["message"] and key.token not in error["message"]


@pytest.mark.parametrize("scopes", [[], ["root"], ["read", "read"], "write"])
def test_unknown_or_malformed_scopes_are_refused(client, admin, scopes):
    program = make_program(client)
    response = admin.post(f"/v1/admin/programs/{program.program_id}/api-keys", {"scopes": scopes})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["path"].startswith("/scopes")


def test_a_revoked_key_is_refused_at_once_by_the_process_that_revoked_it(client, admin, caplog):
    owner = make_program(client)
    worker = _key(admin, owner.program_id, "write", label="zapier")
    assert worker.get("/v1/program").status_code == 200  # cached now
    caplog.set_level(logging.INFO, logger="referflow")
    revoked = _delete(owner, f"/v1/api-keys/{worker.id}")
    assert revoked.status_code == 200
    assert revoked.get_json()["revoked_at"] is not None and "key" not in revoked.get_json()
    refused = worker.get("/v1/program")
    assert refused.status_code == 401
    assert refused.get_json()["code"] == "revoked_credentials"
    assert worker.token[:10] in refused.get_json()["message"]
    assert worker.token not in refused.get_data(as_text=True)
    assert worker.token[:10] in caplog.text and worker.token not in caplog.text
    again = _delete(owner, f"/v1/api-keys/{worker.id}")
    assert again.status_code == 200 and again.get_json() == revoked.get_json()


def test_another_process_refuses_a_revoked_key_once_its_cache_entry_expires(settings, client, admin):
    owner = make_program(client)
    worker = _key(admin, owner.program_id, "write")
    other = create_app(settings)  # a second web process: its own key cache
    clock = Clock()
    other.extensions["referflow"].keys.clock = clock
    other_worker = Api(other.test_client(), worker.token)
    assert other_worker.get("/v1/program").status_code == 200
    assert _delete(owner, f"/v1/api-keys/{worker.id}").status_code == 200
    assert worker.get("/v1/program").status_code == 401
    clock.now += DEFAULT_TTL + 0.001  # the bound on how long another process may still accept it
    assert other_worker.get("/v1/program").status_code == 401
    other.extensions["referflow"].db.dispose()


def test_keys_of_another_program_cannot_be_revoked_or_seen(client, admin):
    first, second = make_program(client, name="A"), make_program(client, name="B")
    theirs = _key(admin, second.program_id, "read")
    assert _delete(first, f"/v1/api-keys/{theirs.id}").status_code == 404
    assert theirs.id not in {k["id"] for k in first.get("/v1/api-keys").get_json()["items"]}
    assert theirs.get("/v1/program").status_code == 200


def test_the_listing_shows_prefixes_scopes_and_last_use_never_secrets(client, admin):
    owner = make_program(client)
    reader = _key(admin, owner.program_id, "read", label="dashboard")
    assert reader.get("/v1/program").status_code == 200
    listing = owner.get("/v1/api-keys")
    assert listing.status_code == 200
    text = listing.get_data(as_text=True)
    assert owner.token not in text and reader.token not in text
    keys = {k["id"]: k for k in listing.get_json()["items"]}
    mine = keys[reader.id]
    assert mine["prefix"] == reader.token[:10] and mine["scopes"] == ["read"]
    assert mine["label"] == "dashboard" and mine["last_used_at"] is not None
    assert mine["revoked_at"] is None and "key" not in mine


def test_a_key_made_by_the_program_itself_works_with_the_scopes_asked(client):
    owner = make_program(client)
    response = owner.post("/v1/api-keys", {"label": "n8n"})
    assert response.status_code == 201 and response.get_json()["scopes"] == ["write"]
    made = Api(client, response.get_json()["key"])
    assert made.post("/v1/links", {"advocate": {"external_id": "a1", "email": "a1@example.test"}}).status_code == 201
    assert made.get("/v1/api-keys").status_code == 403


def test_last_use_is_written_at_most_once_a_minute_per_key(app, client, admin, monkeypatch):
    owner = make_program(client)
    key = _key(admin, owner.program_id, "read")
    clock = Clock()
    app.extensions["referflow"].keys.clock = clock
    writes = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE API_KEYS") and key.id in str(parameters):
            writes.append(statement)

    engine = app.extensions["referflow"].db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(20):
            assert key.get("/v1/program").status_code == 200
            clock.now += 1
        assert len(writes) == 1
        first = _last_used(owner, key)
        later = utcnow() + timedelta(seconds=TOUCH_EVERY + 1)
        monkeypatch.setattr(programs, "utcnow", lambda: later)
        clock.now += TOUCH_EVERY
        assert key.get("/v1/program").status_code == 200
        assert len(writes) == 2
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert _last_used(owner, key) > first


def _last_used(owner: Api, key: Api) -> str:
    items = owner.get("/v1/api-keys").get_json()["items"]
    return next(k["last_used_at"] for k in items if k["id"] == key.id)


def test_a_failed_last_use_write_does_not_fail_the_request(app, client, admin, monkeypatch, caplog):
    owner = make_program(client)
    key = _key(admin, owner.program_id, "read")

    def broken(*args, **kwargs):
        from sqlalchemy.exc import OperationalError

        raise OperationalError("UPDATE api_keys", {}, Exception("database is locked"))

    monkeypatch.setattr(programs, "update", broken)
    assert key.get("/v1/program").status_code == 200
    assert "could not record the last use" in caplog.text


@pytest.mark.parametrize("token", ["rfk_" + "x" * 43, ADMIN_TOKEN, "hunter2"])
def test_a_refused_token_is_named_by_its_prefix_at_most(client, token, caplog):
    caplog.set_level(logging.INFO, logger="referflow")
    response = client.get("/v1/program", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and response.get_json()["code"] == "invalid_credentials"
    text = response.get_data(as_text=True)
    assert token not in text and token not in caplog.text
    if token.startswith("rfk_"):
        assert token[:10] + "…" in response.get_json()["message"]
