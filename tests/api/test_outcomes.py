"""Ordinary traffic is success: `Prefer: outcome=explicit` turns "nothing to do" into 200.

A store's events are mostly not referrals. A workflow (or any caller) that sends what the event
carries, nulls included, asks with `Prefer: outcome=explicit` and gets 200 with a stable outcome
code; only what deserves a retry or a human stays an error. Without the header the API answers as
it always did (404/409/422), so existing callers see no change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import PROGRAM_CONFIG, make_program, unique
from tests.helpers import claim, event, link, qualify

EXPLICIT = {"Prefer": "outcome=explicit"}


def post(api, path, body, explicit=True, **headers):
    return api.post(path, body, **({**EXPLICIT, **headers} if explicit else headers))


def nothing(response, outcome, status=None):
    """Assert an ordinary 'nothing to do' answer and return its body."""
    assert response.status_code == 200, response.get_json()
    assert response.headers["Preference-Applied"] == "outcome=explicit"
    body = response.get_json()
    assert body["outcome"] == outcome and body["changed"] is False, body
    assert set(body) == {"outcome", "changed", "message", "referral_id", "status"}
    assert body["status"] == status
    return body


def friend(friend_id=None, email="bob@mail.test"):
    return {"external_id": friend_id if friend_id is not None else unique("friend"), "email": email}


# -- claim -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "outcome"), [
    ({"code": None, "friend": friend()}, "no_code"),
    ({"code": "", "friend": friend()}, "no_code"),
    ({"code": "NOPE2345", "friend": friend()}, "unknown_code"),
    ({"click_id": "clk_missing", "friend": friend()}, "unknown_click"),
    ({"code": "__CODE__", "friend": friend(email=None)}, "no_email"),
], ids=["null-code", "empty-code", "unknown-code", "unknown-click", "no-email"])
def test_a_claim_without_a_usable_referral_is_nothing_to_do(api, body, outcome):
    body = {**body, "code": link(api)["code"]} if body.get("code") == "__CODE__" else body
    nothing(post(api, "/v1/referrals/claim", body), outcome)
    plain = post(api, "/v1/referrals/claim", body, explicit=False)  # the plain API is unchanged
    assert plain.status_code in (404, 422) and plain.get_json()["code"] in (outcome, "validation_failed")
    assert "Preference-Applied" not in plain.headers


def test_a_claim_of_a_customer_without_an_id_is_nothing_to_do(api):
    body = {"code": link(api)["code"], "friend": {"external_id": None, "email": "x@mail.test"}}
    nothing(post(api, "/v1/referrals/claim", body), "no_customer")


def test_an_acted_claim_says_what_it_did(api):
    code, friend_id = link(api)["code"], unique("friend")
    first = post(api, "/v1/referrals/claim", {"code": code, "friend": friend(friend_id)})
    assert first.status_code == 201 and first.headers["Preference-Applied"] == "outcome=explicit"
    assert (first.get_json()["outcome"], first.get_json()["changed"]) == ("claimed", True)
    # The same customer's second order (no email on it this time): the first claim stands.
    again = post(api, "/v1/referrals/claim", {"code": code, "friend": friend(friend_id, None)})
    assert again.status_code == 200
    assert (again.get_json()["outcome"], again.get_json()["changed"]) == ("already_claimed", False)
    assert again.get_json()["id"] == first.get_json()["id"]


# -- qualify ---------------------------------------------------------------------------------------

def test_a_payment_of_a_customer_nobody_referred_is_nothing_to_do(api):
    body = {"friend_external_id": "cus_NobodyReferred", "event": event()}
    nothing(post(api, "/v1/referrals/qualify", body), "not_referred")
    plain = post(api, "/v1/referrals/qualify", body, explicit=False)
    assert plain.status_code == 404 and plain.get_json()["code"] == "referral_not_found"
    nothing(post(api, "/v1/referrals/qualify", {"friend_external_id": None, "event": event()}),
            "no_customer")


def test_an_unknown_referral_id_stays_an_error(api):
    """An id the caller holds that does not exist is a mistake, not ordinary traffic."""
    response = post(api, "/v1/referrals/qualify", {"referral_id": "ref_missing", "event": event()})
    assert response.status_code == 404 and response.get_json()["code"] == "referral_not_found"


def test_renewal_and_replay_change_nothing_and_say_so(api):
    referral = claim(api, link(api)["code"])
    first = post(api, "/v1/referrals/qualify", {"referral_id": referral["id"],
                                                "event": event("in_first")}).get_json()
    assert (first["outcome"], first["changed"], first["status"]) == ("qualified", True, "held")
    replay = post(api, "/v1/referrals/qualify", {"referral_id": referral["id"],
                                                 "event": event("in_first")}).get_json()
    assert (replay["outcome"], replay["changed"]) == ("duplicate", False)
    renewal = post(api, "/v1/referrals/qualify", {"referral_id": referral["id"],
                                                  "event": event("in_renewal")}).get_json()
    assert (renewal["outcome"], renewal["changed"], renewal["status"]) == (
        "already_qualified", False, "held")
    history = api.get(f"/v1/referrals/{referral['id']}").get_json()["history"]
    assert [h["action"] for h in history] == ["claimed", "qualified", "qualify_ignored"]
    assert history[-1]["reasons"][0]["code"] == "already_qualified"


def test_an_event_the_rules_do_not_count_answers_with_its_reason(api):
    referral = claim(api, link(api)["code"])
    body = {"referral_id": referral["id"], "event": event(currency="USD")}
    answer = post(api, "/v1/referrals/qualify", body).get_json()
    assert (answer["outcome"], answer["changed"], answer["status"]) == (
        "currency_mismatch", False, "pending")


def test_the_preference_is_part_of_the_idempotent_request(api):
    body = {"friend_external_id": "cus_NobodyReferred", "event": event()}
    first = post(api, "/v1/referrals/qualify", body, **{"Idempotency-Key": "k-1"})
    again = post(api, "/v1/referrals/qualify", body, **{"Idempotency-Key": "k-1"})
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    without = post(api, "/v1/referrals/qualify", body, explicit=False, **{"Idempotency-Key": "k-1"})
    assert without.status_code == 409 and without.get_json()["code"] == "idempotency_key_reused"


def test_misconfiguration_still_fails(client, api):
    """A wrong key is a 401 whatever the preference: the workflow must fail and be fixed."""
    response = client.post("/v1/referrals/qualify", json={"friend_external_id": "x", "event": event()},
                           headers={"Authorization": "Bearer rfk_wrong", **EXPLICIT})
    assert response.status_code == 401
    bad = post(api, "/v1/referrals/qualify", {"friend_external_id": "x", "event": {"id": "e"}})
    assert bad.status_code == 422  # a malformed request is a bug in the workflow, not traffic


# -- reverse by payment ----------------------------------------------------------------------------

def _qualified(api, charge="ch_3Q", intent="pi_3Q", amount=5000, at=None):
    referral = claim(api, link(api)["code"])
    body = {"referral_id": referral["id"],
            "event": {**event(amount=amount, at=at), "payment_references": [charge, intent, None]}}
    assert post(api, "/v1/referrals/qualify", body).get_json()["outcome"] == "qualified"
    return referral


def _reverse(api, reason="refund", **fields):
    body = {"reason": reason, "event": {"id": unique("evt"), **fields.pop("event", {})}, **fields}
    return post(api, "/v1/referrals/reverse", body)


def test_a_dispute_naming_only_the_payment_intent_reverses_the_referral(api):
    referral = _qualified(api, charge=unique("ch"), intent=(intent := unique("pi")))
    answer = _reverse(api, "chargeback", payment_references=[None, intent]).get_json()
    assert (answer["outcome"], answer["changed"], answer["status"]) == ("reversed", True, "reversed")
    assert answer["id"] == referral["id"]
    again = _reverse(api, "chargeback", payment_references=[intent]).get_json()
    assert (again["outcome"], again["changed"]) == ("already_reversed", False)


def test_a_refund_of_another_payment_is_nothing_to_do(api):
    _qualified(api, charge=unique("ch"), intent=unique("pi"))
    nothing(_reverse(api, payment_references=["ch_renewal", "pi_renewal"]), "unknown_payment")
    nothing(_reverse(api, friend_external_id="cus_NobodyReferred"), "not_referred")
    nothing(_reverse(api, payment_references=[None, None]), "no_customer")


def test_a_rejected_referral_cannot_be_reversed_and_that_is_ordinary(api):
    code = link(api, email="ann@mail.test")["code"]
    rejected = claim(api, code, email="ann@mail.test")  # self-referral
    assert rejected["status"] == "rejected"
    body = nothing(_reverse(api, friend_external_id=rejected["friend"]["external_id"]),
                   "not_reversible", status="rejected")
    assert body["referral_id"] == rejected["id"]


# -- partial refunds: the program's `refunds` rule -------------------------------------------------

def _program(client, refunds=None, **config):
    return make_program(client, {**PROGRAM_CONFIG, **({"refunds": refunds} if refunds else {}),
                                 **config}, name=unique("refunds"))


def test_by_default_a_partial_refund_keeps_the_referral_until_the_payment_is_refunded_in_full(client):
    api = _program(client)
    _qualified(api, charge=(charge := unique("ch")), amount=5000)
    kept = _reverse(api, payment_references=[charge], event={"amount": 2000, "currency": "EUR"})
    assert (kept.get_json()["outcome"], kept.get_json()["changed"]) == ("partial_refund", False)
    assert kept.get_json()["status"] == "held"
    # Stripe reports the same refund again as a running total (charge.refunded): not counted twice.
    same = _reverse(api, payment_references=[charge], event={"refunded_total": 2000, "full": False})
    assert same.get_json()["outcome"] == "partial_refund"
    rest = _reverse(api, payment_references=[charge], event={"amount": 3000, "currency": "EUR"})
    assert (rest.get_json()["outcome"], rest.get_json()["status"]) == ("reversed", "reversed")
    history = api.get(f"/v1/referrals/{rest.get_json()['id']}").get_json()["history"]
    assert [h["action"] for h in history][-3:] == ["refund_kept", "refund_kept", "reversed"]
    assert history[-1]["data"]["refund"] == {"code": "refund_full", "returned": 5000}


def test_the_provider_saying_full_reverses_and_a_refund_without_an_amount_counts_as_full(client):
    api = _program(client)
    _qualified(api, charge=(charge := unique("ch")))
    assert _reverse(api, payment_references=[charge], event={"refunded_total": 100, "full": True}
                    ).get_json()["outcome"] == "reversed"
    _qualified(api, charge=(other := unique("ch")))
    assert _reverse(api, payment_references=[other]).get_json()["outcome"] == "reversed"


@pytest.mark.parametrize(("rule", "refunded", "reverses"), [
    ("any", 1, True), ({"above": 1000}, 1000, False), ({"above": 1000}, 1001, True),
    ("full_only", 4999, False)])
def test_the_refunds_rule_decides_partial_refunds(client, rule, refunded, reverses):
    api = _program(client, rule)
    _qualified(api, charge=(charge := unique("ch")), amount=5000)
    answer = _reverse(api, payment_references=[charge], event={"amount": refunded}).get_json()
    assert (answer["status"] == "reversed") is reverses, answer


def test_full_only_reverses_a_partial_refund_that_leaves_less_than_the_minimum(client):
    api = _program(client, min_qualifying_amount=4000)
    _qualified(api, charge=(charge := unique("ch")), amount=5000)
    assert _reverse(api, payment_references=[charge], event={"amount": 500}
                    ).get_json()["outcome"] == "partial_refund"
    answer = _reverse(api, payment_references=[charge], event={"amount": 600}).get_json()
    assert answer["outcome"] == "reversed"
    history = api.get(f"/v1/referrals/{answer['id']}").get_json()["history"]
    assert history[-1]["data"]["refund"] == {"code": "refund_below_minimum", "returned": 1100}


def test_a_refund_in_another_currency_is_refused(client):
    api = _program(client)
    _qualified(api, charge=(charge := unique("ch")))
    response = _reverse(api, payment_references=[charge], event={"amount": 10, "currency": "USD"})
    assert response.status_code == 422 and response.get_json()["code"] == "currency_mismatch"


def test_a_refund_after_the_hold_follows_refund_after_hold_as_before(client):
    api = _program(client, refund_after_hold="keep")
    past = datetime.now(UTC) - timedelta(days=30)
    _qualified(api, charge=(charge := unique("ch")), at=past)
    answer = _reverse(api, payment_references=[charge], event={"full": True}).get_json()
    assert (answer["outcome"], answer["changed"]) == ("refund_after_hold", False)


def test_openapi_declares_the_preference_and_both_answers(client):
    spec = client.get("/openapi.json").get_json()
    op = spec["paths"]["/v1/referrals/qualify"]["post"]
    assert any(p["name"] == "Prefer" for p in op["parameters"])
    schema = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert {"$ref": "/schemas/nothing-to-do.json"} in schema["oneOf"]


def test_qualify_helper_still_works_without_the_preference(api):
    referral = claim(api, link(api)["code"])
    assert qualify(api, referral["id"])["status"] == "held"


# -- createLink ------------------------------------------------------------------------------------

def test_a_new_customer_without_an_email_is_not_enrolled_and_that_is_ordinary(api):
    external_id = unique("cus")
    nothing(post(api, "/v1/links", {"advocate": {"external_id": external_id, "email": None}}),
            "no_email")
    nothing(post(api, "/v1/links", {"advocate": {"external_id": None, "email": "a@mail.test"}}),
            "no_customer")
    created = post(api, "/v1/links", {"advocate": {"external_id": external_id,
                                                   "email": "ann@mail.test"}})
    assert created.status_code == 201
    assert (created.get_json()["outcome"], created.get_json()["changed"]) == ("link_created", True)
    # The same customer again without an email (a replayed or later event): the link stands.
    again = post(api, "/v1/links", {"advocate": {"external_id": external_id, "email": None}})
    assert again.status_code == 200 and again.get_json()["code"] == created.get_json()["code"]
    assert (again.get_json()["outcome"], again.get_json()["changed"]) == ("existing_link", False)
    advocate = api.get(f"/v1/advocates/{again.get_json()['advocate_id']}").get_json()
    assert advocate["email"] == "ann@mail.test"
