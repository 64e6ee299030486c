"""Admin operations (admin token) and the program's own settings (API key)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from referflow.actions import programs, providers
from referflow.api import payloads
from referflow.api.operations import ADMIN, Caller, db_session, operation
from referflow.domain.scopes import Scope

bp = Blueprint("admin", __name__)


def _schemas() -> Any:
    return current_app.extensions["referflow"].schemas


@operation(bp, "createProgram", "POST", "/v1/admin/programs", auth=ADMIN, tag="admin",
           summary="Create a program and its first API key", request_schema="create-program.request",
           response="program-created", status=201)
def create_program(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    program, key = programs.create_program(db_session(), _schemas(), body["name"], body["config"])
    return {"program": payloads.program(program), "api_key": payloads.api_key(key.row, key.secret)}


@operation(bp, "createApiKey", "POST", "/v1/admin/programs/<program_id>/api-keys", auth=ADMIN,
           tag="admin", summary="Create another API key for a program (scopes default to write)",
           request_schema="create-api-key.request", response="api-key", status=201)
def create_api_key(caller: Caller, body: dict[str, Any], program_id: str) -> dict[str, Any]:
    key = programs.create_api_key(db_session(), program_id, body.get("label"), body.get("scopes"))
    return payloads.api_key(key.row, key.secret)


@operation(bp, "createProgramApiKey", "POST", "/v1/api-keys", tag="program", status=201,
           scope=Scope.ADMIN_OF_PROGRAM, request_schema="create-api-key.request", response="api-key",
           summary="Create another API key for the calling program (scopes default to write)")
def create_program_api_key(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    key = programs.create_api_key(db_session(), caller.ctx.id, body.get("label"), body.get("scopes"))
    return payloads.api_key(key.row, key.secret)


@operation(bp, "listApiKeys", "GET", "/v1/api-keys", tag="program", scope=Scope.ADMIN_OF_PROGRAM,
           response="api-key-list", summary="List the program's API keys: prefix, scopes, last use")
def list_api_keys(caller: Caller, body: None) -> dict[str, Any]:
    return {"items": [payloads.api_key_info(k) for k in programs.list_api_keys(db_session(), caller.ctx.id)]}


@operation(bp, "revokeApiKey", "DELETE", "/v1/api-keys/<key_id>", tag="program",
           scope=Scope.ADMIN_OF_PROGRAM, response="api-key-info",
           summary="Revoke an API key of the program: refused from then on (idempotent)")
def revoke_api_key(caller: Caller, body: None, key_id: str) -> dict[str, Any]:
    key = programs.revoke_api_key(db_session(), caller.ctx.id, key_id)
    current_app.extensions["referflow"].keys.forget_key(key.id)
    return payloads.api_key_info(key)


@operation(bp, "getProgram", "GET", "/v1/program", tag="program", response="program",
           summary="Read the calling program and its config")
def get_program(caller: Caller, body: None) -> dict[str, Any]:
    return payloads.program(caller.ctx.program)


@operation(bp, "updateProgramConfig", "PUT", "/v1/program/config", tag="program",
           scope=Scope.ADMIN_OF_PROGRAM,
           summary="Replace the program's config (a new config version)",
           request_schema="update-program-config.request", response="program")
def update_program_config(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    session = db_session()
    program = programs.update_config(session, _schemas(), caller.ctx.id, body["config"])
    current_app.extensions["referflow"].keys.forget_program(program.id)
    return payloads.program(program)


@operation(bp, "configureProvider", "PUT", "/v1/providers/<provider>", tag="program",
           scope=Scope.ADMIN_OF_PROGRAM,
           request_schema="configure-provider.request", response="provider",
           summary="Set a provider's webhook secrets, credentials and options (write-only secrets)")
def configure_provider(caller: Caller, body: dict[str, Any], provider: str) -> dict[str, Any]:
    return providers.public_view(providers.configure(db_session(), caller.ctx, provider, body))
