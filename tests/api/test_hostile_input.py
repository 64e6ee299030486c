"""The bad-input matrix: text, numbers, times, URLs and shapes that once reached a 500.

Every case answers a 4xx in the one error shape with a stable code, authenticated or not.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import update

from referflow.storage.models import Program
from tests.conftest import PROGRAM_CONFIG, make_program
from tests.helpers import claim, event, link

NUL, SURROGATE = "\u0000", "\ud800"


def _raw(client, token, method, path, data: bytes | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.open(path, method=method, data=data, content_type="application/json",
                       headers=headers)


def _error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["code"] == code and body["status"] == status, body
    return body


@pytest.mark.parametrize("bad", [NUL, SURROGATE, f"ok{NUL}", f"a{SURROGATE}b"])
@pytest.mark.parametrize("field", ["external_id", "name", "email"])
def test_unstorable_text_in_a_body_is_refused(client, api, bad, field):
    advocate = {"external_id": "cus_1", "email": "a@mail.test", field: f"x{bad}@mail.test"}
    # json.dumps writes a lone surrogate as \ud800, as a careless client would send it.
    response = _raw(client, api.token, "POST", "/v1/links", json.dumps({"advocate": advocate}).encode())
    _error(response, 422, "invalid_text")


def test_unstorable_text_in_an_object_key_is_refused(client, api):
    response = _raw(client, api.token, "POST", "/v1/links", b'{"advocate\\u0000": {}}')
    _error(response, 422, "invalid_text")


@pytest.mark.parametrize(("method", "path", "auth"), [
    ("GET", "/v1/referrals/ref%00x", True),
    ("GET", "/v1/advocates/by-external-id/a%00b", True),
    ("GET", "/v1/people/a%00b", True),
    ("GET", "/r/ABCD%00", False),
    ("POST", "/v1/ingress/prg%00/stripe", False),
    ("GET", "/v1/reviews?after=%00", True),
    ("GET", "/v1/events?type=a%00", True),
    ("GET", "/r/ABCD?ch=%00", False),
])
def test_nul_in_paths_and_queries_is_refused_before_anything_else(client, api, method, path, auth):
    response = _raw(client, api.token if auth else None, method, path, b"{}" if method == "POST" else None)
    _error(response, 422, "invalid_text")


@pytest.mark.parametrize("limit", ["%C2%B2", "%D9%A3", "%EF%BC%91", "-1", "1.5", "", "999"])
def test_limits_are_ascii_whole_numbers_in_range(client, api, limit):
    _error(_raw(client, api.token, "GET", f"/v1/reviews?limit={limit}"), 400, "invalid_query")


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+03:00", "9999-12-31T23:59:59-14:00",
                                "2026-11-23T10:00:00", "2026-02-30T10:00:00Z"])
def test_timestamps_out_of_range_after_their_offset_are_refused(client, api, at):
    referral = claim(api, link(api)["code"])
    body = {"referral_id": referral["id"], "event": {**event(), "occurred_at": at}}
    _error(api.post("/v1/referrals/qualify", body), 422, "validation_failed")
    assert api.get(f"/v1/referrals/{referral['id']}").get_json()["status"] == "pending"


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00%2B03:00", "9999-12-31T23:59:59-14:00", "yesterday"])
def test_audit_export_refuses_times_out_of_range(client, api, since):
    _error(_raw(client, api.token, "GET", f"/v1/audit/export?since={since}"), 400, "invalid_query")


def test_duplicate_keys_are_refused_not_last_wins(client, api):
    body = b'{"advocate": {"external_id": "a", "external_id": "b", "email": "a@mail.test"}}'
    _error(_raw(client, api.token, "POST", "/v1/links", body), 400, "duplicate_key")


@pytest.mark.parametrize("vanity", ["ABCD\n", "ABCD\r\n", "\nABCD", "AB CD"])
def test_vanity_codes_with_line_breaks_are_refused(client, api, vanity):
    response = api.post("/v1/links", {"advocate": {"external_id": "a", "email": "a@mail.test"},
                                      "vanity_code": vanity})
    assert response.status_code == 422, response.get_json()


@pytest.mark.parametrize("url", ["https://[", "https://shop.test/\r\nSet-Cookie: x=1",
                                 f"https://shop.test/{NUL}", f"https://shop.test/{SURROGATE}",
                                 "ftp://shop.test/", "https://user:pw@shop.test/", "https:///path",
                                 "https://shop.test:99999/", "https://shop.test\\@evil.test/",
                                 "https://" + "a" * 64 + ".test/", "javascript:alert(1)"])
def test_landing_url_must_be_an_absolute_http_url(client, api, url):
    response = _raw(client, api.token, "PUT", "/v1/program/config",
                    json.dumps({**PROGRAM_CONFIG, "landing_url": url}).encode())
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["code"] in ("validation_failed", "invalid_text")


def test_a_stored_bad_landing_url_answers_json_not_500(app, client, api):
    code = link(api)["code"]
    with app.extensions["referflow"].db.session() as session:
        session.execute(update(Program).where(Program.id == api.program_id).values(
            config={**PROGRAM_CONFIG, "landing_url": "https://["}))
        session.commit()
    _error(client.get(f"/r/{code}"), 409, "landing_url_invalid")


def test_create_link_and_claim_document_their_200_for_an_existing_object(client, api):
    paths = client.get("/openapi.json").get_json()["paths"]
    for path in ("/v1/links", "/v1/referrals/claim"):
        assert {"200", "201"} <= set(paths[path]["post"]["responses"])
    code = link(api, "cus_same")["code"]
    again = api.post("/v1/links", {"advocate": {"external_id": "cus_same", "email": "cus_same@mail.test"}})
    assert again.status_code == 200 and again.get_json()["code"] == code


def test_another_programs_subscription_has_no_deliveries_here(client, api):
    other = make_program(client, name="Other")
    sub = other.post("/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["*"]}).get_json()
    _error(api.get(f"/v1/webhooks/{sub['id']}/deliveries"), 404, "subscription_not_found")
    assert other.get(f"/v1/webhooks/{sub['id']}/deliveries").status_code == 200


@pytest.mark.parametrize("number", [b"1e400", b"-1e999"])
def test_numbers_beyond_a_double_are_refused_in_any_body(client, api, number):
    referral = claim(api, link(api)["code"])
    body = (b'{"referral_id": "' + referral["id"].encode() + b'", "event": {"id": "e1", "type": "first_order", '
            b'"amount": ' + number + b', "currency": "EUR", "occurred_at": "2026-11-23T10:00:00Z"}}')
    _error(_raw(client, api.token, "POST", "/v1/referrals/qualify", body), 422, "number_out_of_range")


def test_an_event_id_longer_than_the_referral_keeps_is_refused(client, api):
    referral = claim(api, link(api)["code"])
    body = {"referral_id": referral["id"], "event": {**event(), "id": "e" * 201}}
    _error(api.post("/v1/referrals/qualify", body), 422, "validation_failed")


@pytest.mark.parametrize("at", ["9999-12-31T00:00:00Z", "2999-01-01T00:00:00+14:00"])
def test_events_dated_in_the_future_are_refused_not_a_500(client, api, at):
    referral = claim(api, link(api)["code"])
    _error(api.post("/v1/referrals/qualify", {"referral_id": referral["id"],
                                              "event": {**event(), "occurred_at": at}}), 422, "occurred_in_future")
    _error(api.post(f"/v1/referrals/{referral['id']}/reverse", {
        "reason": "refund", "event": {"id": "rf_1", "occurred_at": at}}), 422, "occurred_in_future")
    assert api.get(f"/v1/referrals/{referral['id']}").get_json()["status"] == "pending"
