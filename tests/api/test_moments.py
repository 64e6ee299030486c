"""recordMoment: ask or skip (why), the advocate's link, ask.decided, idempotency; asks' answers,
getPerson, the GDPR export and erasure of people known through moments; retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from referflow.actions.events import public_payload
from referflow.actions.retention import prune
from referflow.contract import SchemaStore
from referflow.domain.timeutil import utcnow
from referflow.storage.models import Consent, MomentDecision, OutboxEvent, Person, Suppression
from tests.conftest import PROGRAM_CONFIG, make_program
from tests.helpers import iso, link

MOMENTS = {"custom_types": ["webinar_hosted"],
           "rules": {"qbr": {"ask": False},
                     "webinar_hosted": {"when": [{"field": "attendees", "op": "gte", "value": 20}]}},
           "fit": [{"attribute": "seats", "op": "gte", "value": 10}]}


@pytest.fixture()
def program(client):
    return make_program(client, {**PROGRAM_CONFIG, "moments": MOMENTS})


def person(external_id: str = "cus_1", **extra: Any) -> dict[str, Any]:
    return {"external_id": external_id, "email": f"{external_id}@mail.test",
            "attributes": {"seats": 25}, **extra}


def moment(api, kind: str = "first_win", data: dict[str, Any] | None = None, expect: int = 201,
           **body: Any) -> dict[str, Any]:
    payload = {"person": body.pop("who", None) or person(), "moment": kind, "data": data or {},
               "occurred_at": iso(datetime.now(UTC)), **body}
    response = api.post("/v1/moments", payload)
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def events(app, kind: str = "ask.decided") -> list[dict[str, Any]]:
    with app.extensions["referflow"].db.session() as s:
        return [public_payload(e.payload)
                for e in s.scalars(select(OutboxEvent).where(OutboxEvent.type == kind))]


def test_an_ask_enrols_the_advocate_and_emits_ask_decided(program, app):
    decision = moment(program)
    assert (decision["decision"], decision["skip_reason"], decision["channel"]) == ("ask", None, "email")
    assert decision["link"]["url"] == f"https://refer.example.test/r/{decision['link']['code']}"
    assert [o["rule"] for o in decision["outcomes"]] == [
        "moment_rule", "fit", "consent", "suppression", "frequency_cap", "cool_down", "quiet_hours",
        "channel", "link"]
    advocate = program.get(f"/v1/advocates/{decision['link']['advocate_id']}").get_json()
    assert advocate["external_id"] == "cus_1" and advocate["email"] == "cus_1@mail.test"
    (event,) = events(app)
    SchemaStore().validate("event.ask.decided", event)
    assert event["data"]["ask"]["id"] == decision["id"]
    assert event["data"]["person"]["external_id"] == "cus_1"
    assert event["data"]["person"]["timezone"] == "UTC"  # the program's, as none was given
    assert len(events(app, "advocate.link_created")) == 1


def test_an_existing_advocate_keeps_their_link(program):
    existing = link(program, external_id="cus_1", email="cus_1@mail.test")
    decision = moment(program)
    assert decision["link"]["code"] == existing["code"]


def test_the_same_id_again_returns_the_first_decision(program, app):
    first = moment(program, id="evt-42")
    again = moment(program, "nps_response", {"score": 2}, id="evt-42", expect=200)
    assert again == first
    assert len(events(app)) == 1


@pytest.mark.parametrize(("kind", "data", "who", "reason"), [
    ("nps_response", {"score": 7}, person(), "moment_rule_failed"),
    ("qbr", {}, person(), "moment_not_asking"),
    ("webinar_hosted", {"attendees": 3}, person(), "moment_rule_failed"),
    ("renewal", {}, person(attributes={"seats": 2}), "not_a_fit"),
    ("renewal", {}, person(attributes={"seats": 30, "open_support_ticket": True}), "suppressed"),
    ("renewal", {}, {"external_id": "no_mail", "attributes": {"seats": 30}}, "no_email"),
])
def test_skips_record_their_reason_and_emit_nothing(program, app, kind, data, who, reason):
    decision = moment(program, kind, data, who=who)
    assert (decision["decision"], decision["skip_reason"], decision["link"]) == ("skip", reason, None)
    assert events(app) == []


def test_a_custom_moment_type_asks_when_its_rule_holds(program):
    assert moment(program, "webinar_hosted", {"attendees": 40})["decision"] == "ask"


def test_frequency_cap_then_cool_down(program):
    assert moment(program)["decision"] == "ask"
    second = moment(program, "milestone")
    assert second["skip_reason"] == "frequency_capped"
    outcomes = {o["rule"]: o["outcome"] for o in second["outcomes"]}
    assert outcomes["cool_down"] == "cooling_down"


def test_email_consent_withdrawn_falls_back_to_in_app(program):
    program.post("/v1/consents", {"person": {"external_id": "cus_1"}, "channel": "email",
                                  "status": "withdrawn", "source": "preference_center"})
    assert moment(program)["channel"] == "in_app"


def test_quiet_hours_defer_with_a_send_at(client):
    now = datetime.now(UTC)
    start, end = (now - timedelta(hours=1)).strftime("%H:%M"), (now + timedelta(hours=2)).strftime("%H:%M")
    api = make_program(client, {**PROGRAM_CONFIG, "moments": {"quiet_hours": {"start": start, "end": end}}})
    decision = moment(api, who={"external_id": "late", "email": "late@mail.test", "timezone": "UTC"})
    assert decision["decision"] == "ask"
    send_at = datetime.fromisoformat(decision["send_at"])
    assert now < send_at <= now + timedelta(hours=2) and send_at.strftime("%H:%M") == end


def test_a_decline_pauses_asking(client):
    api = make_program(client, {**PROGRAM_CONFIG, "moments": {"caps": {"asks_per_week": 10,
                                                                      "cool_down_days": 0}}})
    ask = moment(api)
    answered = api.post(f"/v1/asks/{ask['id']}/response", {"response": "declined"})
    assert answered.status_code == 200 and answered.get_json()["response"] == "declined"
    later = moment(api, "milestone")
    assert later["skip_reason"] == "suppressed"
    assert "declined" in next(o for o in later["outcomes"] if o["rule"] == "suppression")["detail"]
    refused = api.post(f"/v1/asks/{later['id']}/response", {"response": "accepted"})
    assert refused.status_code == 409 and refused.get_json()["code"] == "not_an_ask"
    assert api.post("/v1/asks/mom_nothing/response", {"response": "declined"}).status_code == 404


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"person": {"external_id": "x"}, "moment": "birthday"}, 422, "unknown_moment"),
    ({"person": {"external_id": "x", "timezone": "Mars/Olympus"}, "moment": "qbr"}, 422,
     "invalid_timezone"),
    ({"person": {"external_id": ""}, "moment": "qbr"}, 422, "validation_failed"),
    ({"person": {"external_id": "x"}, "moment": "QBR!"}, 422, "validation_failed"),
    ({"person": {"external_id": "x"}, "moment": "qbr", "occurred_at": "yesterday"}, 422,
     "validation_failed"),
    ({"person": {"external_id": "x", "email": "not-an-email"}, "moment": "qbr"}, 422,
     "validation_failed"),
    ({"moment": "qbr"}, 422, "validation_failed"),
    ({"person": {"external_id": "x"}, "moment": "qbr", "occurred_at": "2999-01-01T00:00:00Z"}, 422,
     "occurred_in_future"),
    ({"person": {"external_id": "x"}, "moment": "qbr", "data": []}, 422, "validation_failed"),
    ({"person": {"external_id": "x", "attributes": {"seats": "12"}}, "moment": "qbr"}, 422,
     "validation_failed"),
])
def test_bad_moments_are_refused(program, body, status, code):
    response = program.post("/v1/moments", body)
    assert (response.status_code, response.get_json()["code"]) == (status, code)


def test_get_person_shows_asks_consent_and_the_next_time(program):
    assert program.get("/v1/people/nobody/profile").get_json()["code"] == "person_not_found"
    ask = moment(program)
    profile = program.get("/v1/people/cus_1/profile").get_json()
    assert [a["id"] for a in profile["asks"]] == [ask["id"]]
    assert profile["attributes"] == {"seats": 25} and profile["erased"] is False
    next_at = datetime.fromisoformat(profile["next_ask_at"])
    assert next_at - datetime.fromisoformat(ask["decided_at"]) == timedelta(days=30)
    assert profile["ask_blocked_by"] is None
    assert profile["consent"]["channels"]["email"]["allows"] is True
    program.post("/v1/consents", {"person": {"external_id": "cus_1"}, "channel": "email",
                                  "status": "withdrawn", "source": "preference_center"})
    program.post("/v1/consents", {"person": {"external_id": "cus_1"}, "channel": "in_app",
                                  "status": "withdrawn", "source": "preference_center"})
    blocked = program.get("/v1/people/cus_1/profile").get_json()
    assert (blocked["next_ask_at"], blocked["ask_blocked_by"]) == (None, "no_consent")


def test_export_includes_consents_and_asks(program):
    ask = moment(program)
    program.post("/v1/consents", {"person": {"external_id": "cus_1"}, "channel": "sms",
                                  "status": "granted", "source": "checkout", "text_version": "v3"})
    exported = program.get("/v1/people/cus_1").get_json()
    assert [a["id"] for a in exported["asks"]] == [ask["id"]]
    assert [(c["channel"], c["status"], c["text_version"]) for c in exported["consents"]] == [
        ("sms", "granted", "v3")]
    assert exported["person"]["email"] == "cus_1@mail.test"


def test_a_person_known_only_through_moments_can_be_exported_and_erased(program, app):
    who = person("only_moments", attributes={"seats": 2})
    skipped = moment(program, "milestone", {"note": "private text"}, who=who)
    assert skipped["skip_reason"] == "not_a_fit"
    assert program.get("/v1/people/only_moments").get_json()["advocate"] is None
    assert program.client.delete("/v1/people/only_moments", headers=program.headers()).status_code == 200
    assert program.get("/v1/people/only_moments").get_json()["code"] == "person_not_found"
    with app.extensions["referflow"].db.session() as s:
        row = s.scalars(select(MomentDecision)).one()
        assert row.data == {} and all(o["detail"] == "" for o in row.outcomes)
        stored = s.scalars(select(Person)).one()
        assert (stored.external_id, stored.email, stored.attributes) == (f"erased:{stored.id}", None, {})
        assert s.scalars(select(Suppression.reason)).all() == ["erased"]


def test_an_erased_person_is_never_asked_again(program, app):
    moment(program)
    program.post("/v1/consents", {"person": {"external_id": "cus_1"}, "channel": "email",
                                  "status": "granted", "source": "signup"})
    assert program.client.delete("/v1/people/cus_1", headers=program.headers()).status_code == 200
    again = moment(program, "milestone")
    assert again["skip_reason"] == "erased" and again["data"] == {}
    profile = program.get("/v1/people/cus_1/profile").get_json()
    assert profile["erased"] is True and profile["email"] is None and profile["attributes"] == {}
    assert profile["ask_blocked_by"] == "erased"
    refused = program.post("/v1/consents", {"person": {"external_id": "cus_1"}, "channel": "email",
                                            "status": "granted", "source": "signup"})
    assert refused.status_code == 409 and refused.get_json()["code"] == "person_erased"
    with app.extensions["referflow"].db.session() as s:
        evidence = s.scalars(select(Consent)).one()  # kept, without the email's hash
        assert (evidence.status, evidence.source, evidence.email_key) == ("granted", "signup", None)
        payloads = str([e.payload for e in s.scalars(select(OutboxEvent))])
    assert "cus_1@mail.test" not in payloads


def test_retention_drops_old_decisions_data_and_keeps_the_codes(program, app):
    moment(program, "nps_response", {"score": 3, "comment": "slow support"})
    services = app.extensions["referflow"]
    with services.db.session() as s:
        s.execute(update(MomentDecision).values(created_at=utcnow() - timedelta(days=500)))
        s.commit()
        assert prune(s, utcnow(), days=400)["moment_decisions"] == 1
        row = s.scalars(select(MomentDecision)).one()
        assert row.data == {} and row.skip_reason == "moment_rule_failed" and row.pruned_at
        assert [o["outcome"] for o in row.outcomes][0] == "moment_rule_failed"
        assert prune(s, utcnow(), days=400)["moment_decisions"] == 0
