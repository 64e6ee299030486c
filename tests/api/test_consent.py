"""Consent as evidence (setConsent, getConsent), checkMessage, provider opt-outs writing consent,
and referflow's own sync obeying the same send rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from referflow.app import create_app
from referflow.storage.models import Consent, SyncTask
from tests.api.test_ingress import fixture as load_fixture
from tests.api.test_ingress import (  # noqa: F401  (the fixtures hubspot and shop)
    hubspot,
    hubspot_headers,
    klaviyo_headers,
    run_jobs,
    send,
    shop,
)
from tests.api.test_sync import run
from tests.conftest import PROGRAM_CONFIG, make_program
from tests.fakes.hubspot import TOKEN as HUBSPOT_TOKEN
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.klaviyo import API_KEY as KLAVIYO_KEY
from tests.fakes.klaviyo import FakeKlaviyo
from tests.helpers import claim, link


def consent(api, channel="email", status="granted", external_id="cus_1", **extra):
    body = {"person": {"external_id": external_id, "email": f"{external_id}@mail.test"},
            "channel": channel, "status": status, "source": "signup_form", **extra}
    return api.post("/v1/consents", body)


def check(api, channel="email", purpose="ask", external_id="cus_1", **extra):
    response = api.post("/v1/messages/check", {"person": {"external_id": external_id, **extra.pop(
        "person", {})}, "channel": channel, "purpose": purpose, **extra})
    return response


def test_consent_is_an_append_only_history_with_timestamps(api):
    assert api.get("/v1/consents/cus_1").get_json()["code"] == "person_not_found"
    first = consent(api, text_version="2026-01")
    assert first.status_code == 201
    assert consent(api, status="withdrawn").status_code == 201
    state = api.get("/v1/consents/cus_1").get_json()
    assert [(h["status"], h["text_version"]) for h in state["history"]] == [
        ("granted", "2026-01"), ("withdrawn", None)]
    assert all(datetime.fromisoformat(h["occurred_at"]) for h in state["history"])
    email = state["channels"]["email"]
    assert (email["status"], email["mode"], email["allows"]) == ("withdrawn", "opt_out", False)
    sms = state["channels"]["sms"]
    assert (sms["status"], sms["mode"], sms["allows"], sms["latest"]) == (None, "opt_in", False, None)


@pytest.mark.parametrize(("body", "code"), [
    ({"person": {"external_id": "x"}, "channel": "fax", "status": "granted", "source": "s"},
     "validation_failed"),
    ({"person": {"external_id": "x"}, "channel": "email", "status": "maybe", "source": "s"},
     "validation_failed"),
    ({"person": {"external_id": "x"}, "channel": "email", "status": "granted"}, "validation_failed"),
    ({"person": {"external_id": "x"}, "channel": "email", "status": "granted", "source": ""},
     "validation_failed"),
])
def test_bad_consent_is_refused(api, body, code):
    response = api.post("/v1/consents", body)
    assert (response.status_code, response.get_json()["code"]) == (422, code)


def test_check_message_by_purpose_and_channel(api):
    unknown = check(api).get_json()  # nobody stored and no email given: email cannot reach them
    assert (unknown["send"], unknown["reason"], unknown["send_at"]) == (False, "no_channel", None)
    assert [o["rule"] for o in unknown["outcomes"]] == [
        "consent", "suppression", "frequency_cap", "cool_down", "quiet_hours", "channel"]
    assert check(api, person={"email": "cus_1@mail.test"}).get_json()["send"] is True
    assert check(api, "sms").get_json()["reason"] == "no_consent"  # sms is opt-in
    consent(api, "sms")
    assert check(api, "sms").get_json()["send"] is True
    consent(api, "email", "withdrawn")
    assert check(api).get_json()["reason"] == "no_consent"
    assert check(api, purpose="transactional").get_json()["send"] is True
    ticket = check(api, "in_app", person={"attributes": {"open_support_ticket": True}})
    assert ticket.get_json()["reason"] == "suppressed"
    assert check(api, "in_app", "reward", person={"attributes": {"open_support_ticket": True}}
                 ).get_json()["send"] is True


def test_check_message_for_a_decided_ask_does_not_count_it_against_itself(api):
    ask = api.post("/v1/moments", {"person": {"external_id": "cus_1", "email": "cus_1@mail.test"},
                                   "moment": "first_win"}).get_json()
    assert ask["decision"] == "ask"
    assert check(api).get_json()["reason"] == "frequency_capped"
    assert check(api, ask_id=ask["id"]).get_json()["send"] is True
    other = check(api, ask_id=ask["id"], external_id="someone_else")
    assert (other.status_code, other.get_json()["code"]) == (404, "ask_not_found")


def test_check_message_waits_out_quiet_hours(client):
    now = datetime.now(UTC)
    quiet = {"start": (now - timedelta(hours=1)).strftime("%H:%M"),
             "end": (now + timedelta(hours=1)).strftime("%H:%M")}
    api = make_program(client, {**PROGRAM_CONFIG, "moments": {"quiet_hours": quiet}})
    answer = check(api, "in_app").get_json()
    assert (answer["send"], answer["reason"]) == (False, "quiet_hours")
    assert datetime.fromisoformat(answer["send_at"]).strftime("%H:%M") == quiet["end"]
    assert check(api, "in_app", "transactional").get_json()["send"] is True


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"person": {"external_id": "x"}, "channel": "email", "purpose": "spam"}, 422, "validation_failed"),
    ({"person": {"external_id": "x"}, "channel": "telex", "purpose": "ask"}, 422, "validation_failed"),
    ({"person": {"external_id": "x", "timezone": "Nowhere/Land"}, "channel": "email",
      "purpose": "ask"}, 422, "invalid_timezone"),
    ({"person": {"external_id": "x"}, "channel": "email", "purpose": "ask", "ask_id": "mom_x"}, 404,
     "ask_not_found"),
])
def test_bad_checks_are_refused(api, body, status, code):
    response = api.post("/v1/messages/check", body)
    assert (response.status_code, response.get_json()["code"]) == (status, code)


def test_klaviyo_unsubscribe_withdraws_email_consent(shop):  # noqa: F811
    body = load_fixture("klaviyo_unsubscribed.json")
    assert send(shop, "klaviyo", body, klaviyo_headers(body)).status_code == 200
    run_jobs(shop)
    ask = check(shop, person={"email": "ann@example.com"}).get_json()
    assert ask["reason"] == "no_consent"
    with shop.app.extensions["referflow"].db.session() as s:
        entry = s.scalars(select(Consent)).one()
        assert (entry.channel, entry.status, entry.person_id) == ("email", "withdrawn", None)
        assert entry.source == "klaviyo:event:klaviyo.unsubscribed_from_email_marketing"


def test_hubspot_email_opt_out_withdraws_and_opt_in_grants(shop, hubspot):  # noqa: F811
    hubspot.contacts["123"] = {"email": "carol@example.com"}
    url = f"https://refer.example.test/v1/ingress/{shop.program_id}/hubspot"
    for i, value in enumerate(("true", "true", "false")):
        body = load_fixture("hubspot_contact_property_change.json")
        body[0].update(eventId=1000 + i, propertyName="hs_email_optout", propertyValue=value)
        assert send(shop, "hubspot", body, hubspot_headers(body, url)).status_code == 200
        run_jobs(shop)
    with shop.app.extensions["referflow"].db.session() as s:
        statuses = [(c.status, c.source) for c in s.scalars(select(Consent).order_by(Consent.id))]
    assert statuses == [("withdrawn", "hubspot:hs_email_optout"), ("granted", "hubspot:hs_email_optout")]


@pytest.fixture()
def synced(settings):
    with FakeKlaviyo() as klaviyo, FakeHubSpot() as hub:
        app = create_app(settings.with_overrides(klaviyo_api_base=klaviyo.base,
                                                 hubspot_api_base=hub.base))
        api = make_program(app.test_client(), {**PROGRAM_CONFIG, "hold_days": 0})
        api.put("/v1/providers/klaviyo", {"credentials": {"api_key": KLAVIYO_KEY}})
        api.put("/v1/providers/hubspot", {"credentials": {"access_token": HUBSPOT_TOKEN}})
        api.app, api.klaviyo, api.hubspot = app, klaviyo, hub
        yield api
        app.extensions["referflow"].db.dispose()


def test_the_sync_obeys_withdrawn_consent_for_messages_not_for_properties(synced):
    consent(synced, "email", "withdrawn", external_id="ann")
    link(synced, external_id="ann", email="ann@mail.test")
    run(synced)
    assert synced.klaviyo.events == []
    assert synced.klaviyo.profiles == {}
    assert synced.hubspot.by_email["ann@mail.test"]["referral_code"]  # a CRM fact, not a message
    with synced.app.extensions["referflow"].db.session() as s:
        skipped = [t.outcome for t in s.scalars(select(SyncTask).where(SyncTask.provider == "klaviyo"))]
    assert skipped == [{"skipped": "no_consent: email: withdrawn (opt_out)"}]


def test_the_sync_defers_messages_in_quiet_hours(settings):
    now = datetime.now(UTC)
    quiet = {"start": (now - timedelta(hours=1)).strftime("%H:%M"),
             "end": (now + timedelta(hours=1)).strftime("%H:%M")}
    with FakeKlaviyo() as klaviyo:
        app = create_app(settings.with_overrides(klaviyo_api_base=klaviyo.base))
        api = make_program(app.test_client(), {**PROGRAM_CONFIG, "moments": {"quiet_hours": quiet}})
        api.put("/v1/providers/klaviyo", {"credentials": {"api_key": KLAVIYO_KEY}})
        api.app = app
        code = link(api, external_id="ann", email="ann@mail.test")["code"]
        claim(api, code, friend_id="ann")  # self-referral: a "Referral Declined" message
        run(api)
        with app.extensions["referflow"].db.session() as s:
            tasks = s.scalars(select(SyncTask)).all()
            assert {t.status for t in tasks} == {"pending"}
            assert all(t.outcome["deferred"] == "quiet_hours" and t.next_attempt_at > now for t in tasks)
        assert klaviyo.events == []
        app.extensions["referflow"].db.dispose()


def test_the_sync_sends_the_link_as_an_ask_like_the_workflows_do(synced):
    """``Referral Link Created`` asks the customer to share: purpose ``ask`` (the n8n new-customer
    workflow checks it the same way), so the ask cap applies; reward messages are not asks."""
    asked = synced.post("/v1/moments", {"person": {"external_id": "ann", "email": "ann@mail.test"},
                                        "moment": "first_win"}).get_json()
    assert asked["decision"] == "ask"  # Ann was asked this week
    code = link(synced, external_id="ann", email="ann@mail.test")["code"]
    link(synced, external_id="bob", email="bob@mail.test")
    claim(synced, code, friend_id="ann")  # self-referral: "Referral Declined", a reward message
    run(synced)
    with synced.app.extensions["referflow"].db.session() as s:
        tasks = s.scalars(select(SyncTask).where(SyncTask.provider == "klaviyo")
                          .order_by(SyncTask.id)).all()
        outcomes = [t.outcome for t in tasks]
    assert outcomes[0] == {"skipped": outcomes[0]["skipped"]}
    assert outcomes[0]["skipped"].startswith("frequency_capped")
    sent = sorted((e["metric"], e["email"]) for e in synced.klaviyo.events)
    assert sent == [("Referral Declined", "ann@mail.test"), ("Referral Link Created", "bob@mail.test")]
