"""Programs and API keys: creation, config validation, versions, key isolation."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from referflow.storage.models import ApiKey
from tests.conftest import PROGRAM_CONFIG, Api, make_program


def test_create_program_returns_the_program_with_defaults_and_a_key(admin):
    response = admin.post("/v1/admin/programs", {"name": "Acme", "config": {
        "landing_url": "https://acme.test"}})
    assert response.status_code == 201
    body = response.get_json()
    config = body["program"]["config"]
    assert config["gift_card_expiry_days"] == 365
    assert config["hold_days"] == 14 and config["currency"] == "USD"
    assert body["api_key"]["key"].startswith("rfk_")
    assert body["program"]["id"].startswith("prg_")


def test_api_keys_are_stored_hashed(admin, app):
    key = admin.post("/v1/admin/programs", {"name": "A", "config": PROGRAM_CONFIG}
                     ).get_json()["api_key"]["key"]
    with app.extensions["referflow"].db.session() as session:
        stored = [row.key_hash for row in session.scalars(select(ApiKey))]
    assert key not in stored and len(stored[0]) == 64


@pytest.mark.parametrize(("config", "path"), [
    ({}, "/"),
    ({"landing_url": "javascript:alert(1)"}, "/landing_url"),
    ({"landing_url": "https://x.test", "currency": "euro"}, "/currency"),
    ({"landing_url": "https://x.test", "hold_days": -1}, "/hold_days"),
    ({"landing_url": "https://x.test", "rewards": {"advocate": {"type": "cash"}}},
     "/rewards/advocate/type"),
    ({"landing_url": "https://x.test", "surprise": True}, "/"),
])
def test_invalid_program_configs_are_refused(admin, config, path):
    response = admin.post("/v1/admin/programs", {"name": "A", "config": config})
    assert response.status_code == 422
    expected = "/config" + path.rstrip("/")
    assert expected in {e["path"] for e in response.get_json()["errors"]}


def test_unknown_timezone_is_refused(admin):
    response = admin.post("/v1/admin/programs", {"name": "A", "config": {
        "landing_url": "https://x.test", "timezone": "Mars/Olympus"}})
    assert response.status_code == 422
    assert response.get_json()["code"] == "invalid_program_config"


def test_second_key_works_for_the_same_program_only(client, admin):
    api = make_program(client)
    response = admin.post(f"/v1/admin/programs/{api.program_id}/api-keys", {"label": "zapier"})
    assert response.status_code == 201
    second = Api(client, response.get_json()["key"])
    assert second.get("/v1/program").get_json()["id"] == api.program_id
    missing = admin.post("/v1/admin/programs/prg_nope/api-keys", {})
    assert missing.status_code == 404


def test_updating_the_config_bumps_its_version(api):
    assert api.get("/v1/program").get_json()["config_version"] == 1
    updated = api.put("/v1/program/config", {"config": {**PROGRAM_CONFIG, "hold_days": 30}})
    assert updated.status_code == 200
    assert updated.get_json()["config_version"] == 2
    assert updated.get_json()["config"]["hold_days"] == 30
    assert api.get("/v1/program").get_json()["config_version"] == 2  # no stale cached config
    same = api.put("/v1/program/config", {"config": {**PROGRAM_CONFIG, "hold_days": 30}})
    assert same.get_json()["config_version"] == 2
