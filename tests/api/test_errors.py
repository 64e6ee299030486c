"""Bad input of every kind is a 4xx with the one error shape and a stable code; never a 500."""

from __future__ import annotations

import json

import pytest

from tests.helpers import link

CLAIM = "/v1/referrals/claim"
GOOD_CLAIM = b'{"code": "ABCD2345", "friend": {"external_id": "f", "email": "f@x.test"}}'


def _post_raw(client, token, path, data, content_type="application/json"):
    return client.post(path, data=data, content_type=content_type,
                       headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize(("data", "content_type", "status", "code"), [
    (b'{"code": ', "application/json", 400, "invalid_json"),
    (b"\xff\xfe\x00", "application/json", 400, "invalid_json"),
    (b'{"code": NaN}', "application/json", 400, "invalid_json"),
    (b'{"amount": Infinity}', "application/json", 400, "invalid_json"),
    (GOOD_CLAIM, "text/plain", 415, "unsupported_media_type"),
    (GOOD_CLAIM, "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    (b"[" * 5000 + b"]" * 5000, "application/json", 400, "too_deep"),
    (b'{"a":' * 20 + b"1" + b"}" * 20, "application/json", 400, "too_deep"),
    (b"[]", "application/json", 422, "validation_failed"),
    (b'"text"', "application/json", 422, "validation_failed"),
    (b'{"code": "X2345678", "friend": {"external_id": "f", "email": "f@x.test"}, "extra": 1}',
     "application/json", 422, "validation_failed"),
    (b'{"friend": {"external_id": "f", "email": "f@x.test"}}', "application/json", 422,
     "validation_failed"),
    (b'{"code": "X", "friend": {"external_id": "f", "email": "not-an-email"}}',
     "application/json", 422, "validation_failed"),
    (b"", "application/json", 422, "validation_failed"),
])
def test_bad_claim_bodies(client, api, data, content_type, status, code):
    response = _post_raw(client, api.token, CLAIM, data, content_type)
    assert response.status_code == status
    body = response.get_json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["message"]
    assert isinstance(body["errors"], list)


def test_validation_errors_name_the_field(api):
    response = api.post("/v1/referrals/qualify", {"referral_id": "r", "event": {
        "id": "e", "type": "first_order", "amount": 1, "currency": "eur",
        "occurred_at": "2026-01-01T00:00:00"}})
    assert response.status_code == 422
    paths = {e["path"] for e in response.get_json()["errors"]}
    assert {"/event/currency", "/event/occurred_at"} <= paths


@pytest.mark.parametrize("amount", [10**12, -1, 1e3, True])
def test_out_of_range_amounts_are_refused(api, amount):
    response = api.post("/v1/referrals/qualify", {"referral_id": "r", "event": {
        "id": "e", "type": "first_order", "amount": amount, "currency": "EUR",
        "occurred_at": "2026-01-01T00:00:00Z"}})
    assert response.status_code == 422


def test_oversize_body_is_413(client, api):
    padding = "x" * (70 * 1024)
    data = json.dumps({"code": "ABCD2345", "friend": {"external_id": padding,
                                                      "email": "f@x.test"}}).encode()
    response = _post_raw(client, api.token, CLAIM, data)
    assert response.status_code == 413
    assert response.get_json()["code"] == "payload_too_large"


@pytest.mark.parametrize(("headers", "code"), [
    ({}, "missing_credentials"),
    ({"Authorization": "Basic abc"}, "missing_credentials"),
    ({"Authorization": "Bearer "}, "missing_credentials"),
    ({"Authorization": "Bearer rfk_wrong"}, "invalid_credentials"),
    ({"Authorization": "Bearer test-admin-token"}, "invalid_credentials"),
])
def test_program_operations_need_a_valid_api_key(client, headers, code):
    response = client.post(CLAIM, data=GOOD_CLAIM, content_type="application/json",
                           headers=headers)
    assert response.status_code == 401
    assert response.get_json()["code"] == code


def test_admin_operations_refuse_program_keys(client, api):
    response = client.post("/v1/admin/programs", json={"name": "x", "config": {
        "landing_url": "https://x.test"}}, headers={"Authorization": f"Bearer {api.token}"})
    assert response.status_code == 401


def test_unknown_route_and_wrong_method_are_json(client, api):
    missing = client.get("/v1/nothing-here")
    assert missing.status_code == 404 and missing.get_json()["code"] == "not_found"
    wrong = client.delete("/v1/referrals/claim")
    assert wrong.status_code == 405 and wrong.get_json()["code"] == "method_not_allowed"


def test_unknown_ids_in_paths_are_404s(api):
    assert api.get("/v1/referrals/ref_nope").get_json()["code"] == "referral_not_found"
    assert api.get("/v1/advocates/adv_nope").get_json()["code"] == "advocate_not_found"
    assert api.get("/v1/gift-cards/NOPE").get_json()["code"] == "gift_card_not_found"
    assert api.post("/v1/gift-cards", {"advocate_id": "adv_nope", "amount": 5}).status_code == 404


def test_unicode_and_long_strings_are_kept_exactly(api):
    name = "Zoë 🚀 Åström"
    created = api.post("/v1/links", {"advocate": {"external_id": "ü-1", "email": "z@x.test",
                                                  "name": name}}).get_json()
    got = api.get(f"/v1/advocates/{created['advocate_id']}").get_json()
    assert got["name"] == name and got["external_id"] == "ü-1"
    assert link(api, external_id="x" * 200)["code"]
