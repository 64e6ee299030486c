"""Idempotency-Key on every POST: replay the first response; refuse a different body."""

from __future__ import annotations

from tests.conftest import make_program
from tests.helpers import link


def test_same_key_and_body_replays_the_first_response(api):
    advocate = link(api)["advocate_id"]
    body = {"advocate_id": advocate, "amount": 500}
    first = api.post("/v1/gift-cards", body, **{"Idempotency-Key": "grant-1"})
    second = api.post("/v1/gift-cards", body, **{"Idempotency-Key": "grant-1"})
    assert first.status_code == second.status_code == 201
    assert second.get_json() == first.get_json()
    assert second.headers["Idempotent-Replayed"] == "true"
    third = api.post("/v1/gift-cards", body, **{"Idempotency-Key": "grant-2"})
    assert third.get_json()["id"] != first.get_json()["id"]


def test_same_key_with_another_body_is_a_conflict(api):
    advocate = link(api)["advocate_id"]
    api.post("/v1/gift-cards", {"advocate_id": advocate, "amount": 500}, **{"Idempotency-Key": "k"})
    response = api.post("/v1/gift-cards", {"advocate_id": advocate, "amount": 501},
                        **{"Idempotency-Key": "k"})
    assert response.status_code == 409
    assert response.get_json()["code"] == "idempotency_key_reused"


def test_keys_are_scoped_per_program(api, client):
    other = make_program(client, name="Other")
    body = {"advocate": {"external_id": "a", "email": "a@x.test"}}
    mine = api.post("/v1/links", body, **{"Idempotency-Key": "same"}).get_json()
    theirs = other.post("/v1/links", body, **{"Idempotency-Key": "same"}).get_json()
    assert mine["advocate_id"] != theirs["advocate_id"]


def test_failed_requests_are_not_stored(api):
    body = {"referral_id": "ref_missing", "event": {"id": "e", "type": "first_order", "amount": 1,
                                                     "currency": "EUR",
                                                     "occurred_at": "2026-01-01T00:00:00Z"}}
    assert api.post("/v1/referrals/qualify", body, **{"Idempotency-Key": "q"}).status_code == 404
    again = api.post("/v1/referrals/qualify", body, **{"Idempotency-Key": "q"})
    assert again.status_code == 404
    assert "Idempotent-Replayed" not in again.headers


def test_overlong_key_is_refused(api):
    response = api.post("/v1/links", {"advocate": {"external_id": "a", "email": "a@x.test"}},
                        **{"Idempotency-Key": "k" * 256})
    assert response.status_code == 400
    assert response.get_json()["code"] == "invalid_idempotency_key"
