"""Referral facts out to Klaviyo and HubSpot fakes: events, properties, consent, frequency."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from referflow.app import create_app
from referflow.domain.emails import normalise_email
from referflow.domain.hashing import keyed_hash
from referflow.jobs.runner import tick
from referflow.storage.models import Suppression, SyncTask
from tests.conftest import PROGRAM_CONFIG, SECRET_KEY, make_program
from tests.fakes.hubspot import TOKEN as HUBSPOT_TOKEN
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.klaviyo import API_KEY as KLAVIYO_KEY
from tests.fakes.klaviyo import FakeKlaviyo
from tests.helpers import claim, link, qualify


@pytest.fixture()
def fakes():
    with FakeKlaviyo() as klaviyo, FakeHubSpot() as hubspot:
        yield klaviyo, hubspot


@pytest.fixture()
def synced(settings, fakes):
    klaviyo, hubspot = fakes
    app = create_app(settings.with_overrides(klaviyo_api_base=klaviyo.base,
                                             hubspot_api_base=hubspot.base))
    api = make_program(app.test_client(), {**PROGRAM_CONFIG, "hold_days": 0,
                                           "messaging": {"max_messages_per_week": 10}})
    api.put("/v1/providers/klaviyo", {"credentials": {"api_key": KLAVIYO_KEY}})
    api.put("/v1/providers/hubspot", {"credentials": {"access_token": HUBSPOT_TOKEN}})
    api.app = app
    yield api
    app.extensions["referflow"].db.dispose()


def run(api, times=3):
    services = api.app.extensions["referflow"]
    for _ in range(times):
        tick(services, services.queue)


def test_link_approval_reward_and_decline_reach_klaviyo_and_hubspot(synced, fakes):
    klaviyo, hubspot = fakes
    created = link(synced, external_id="ann", email="ann@example.com")
    referral = claim(synced, created["code"], friend_id="bob", email="bob@example.com")
    qualify(synced, referral["id"])
    synced.post("/v1/gift-cards", {"referral_id": referral["id"]})
    claim(synced, created["code"], friend_id="ann")  # self-referral: rejected
    run(synced)
    got = sorted((e["metric"], e["email"]) for e in klaviyo.events)
    assert got == [("Referral Approved", "ann@example.com"), ("Referral Declined", "ann@example.com"),
                   ("Referral Link Created", "ann@example.com"), ("Reward Issued", "ann@example.com"),
                   ("Reward Issued", "bob@example.com")]
    ann = klaviyo.profiles["ann@example.com"]
    assert ann["referral_code"] == created["code"] and ann["referral_link"] == created["url"]
    assert ann["referrals_approved"] == 1
    declined = next(e for e in klaviyo.events if e["metric"] == "Referral Declined")
    assert declined["properties"]["reason_code"] == "self_referral"
    reward = next(e for e in klaviyo.events if e["email"] == "bob@example.com")
    assert reward["properties"]["amount"] == 1000 and reward["properties"]["currency"] == "EUR"
    assert hubspot.properties == {"referral_code", "referral_link", "referral_tier",
                                  "referrals_approved"}
    assert hubspot.by_email["ann@example.com"]["referral_code"] == created["code"]
    assert hubspot.by_email["ann@example.com"]["referrals_approved"] == "1"
    headers = [c["headers"] for c in klaviyo.calls]
    assert all(h["revision"] == "2024-10-15" for h in headers)
    assert {e["unique_id"][:4] for e in klaviyo.events} == {"evt_"}


def test_unsubscribed_people_get_no_referral_messages(synced, fakes):
    klaviyo, _ = fakes
    with synced.app.extensions["referflow"].db.session() as s:
        s.add(Suppression(program_id=synced.program_id, source="klaviyo", reason="unsubscribed",
                          email_key=keyed_hash(SECRET_KEY, "email", normalise_email("ann@example.com"))))
        s.commit()
    link(synced, external_id="ann", email="Ann@Example.com")
    run(synced)
    assert klaviyo.events == []
    with synced.app.extensions["referflow"].db.session() as s:
        outcomes = [t.outcome for t in s.scalars(select(SyncTask).where(SyncTask.provider == "klaviyo"))]
    assert outcomes == [{"skipped": "suppressed: unsubscribed"}]


def test_frequency_cap_suppresses_and_records(synced, fakes):
    klaviyo, _ = fakes
    synced.put("/v1/program/config", {"config": {**PROGRAM_CONFIG, "hold_days": 0,
                                                 "messaging": {"max_messages_per_week": 3}}})
    code = link(synced, external_id="ann", email="ann@example.com")["code"]
    for i in range(4):  # four declines for the same advocate
        claim(synced, code, friend_id="ann" if i == 0 else f"x{i}", context={"existing_customer": True})
    run(synced)
    assert len([e for e in klaviyo.events if e["email"] == "ann@example.com"]) == 3
    with synced.app.extensions["referflow"].db.session() as s:
        capped = [t.outcome["skipped"] for t in s.scalars(select(SyncTask)) if "skipped" in t.outcome]
    assert len(capped) == 2 and capped[0].startswith("frequency_cap")


def test_klaviyo_throttling_is_retried(synced, fakes):
    from datetime import UTC, datetime

    from sqlalchemy import update

    klaviyo, _ = fakes
    klaviyo.fail_next = [(429, {"Retry-After": "20"})]
    link(synced, external_id="ann", email="ann@example.com")
    run(synced)
    assert klaviyo.events == []
    with synced.app.extensions["referflow"].db.session() as s:
        s.execute(update(SyncTask).values(next_attempt_at=datetime.now(UTC)))
        s.commit()
    run(synced)
    assert [e["metric"] for e in klaviyo.events] == ["Referral Link Created"]


def test_an_existing_hubspot_contact_is_updated_even_when_the_email_needs_escaping(synced, fakes):
    _, hubspot = fakes
    email = "ann#shop/1@example.com"  # '#' and '/' are legal in an address and special in a URL
    hubspot.by_email[email] = {"email": email, "firstname": "Ann"}
    created = link(synced, external_id="ann", email=email)
    run(synced)
    assert hubspot.by_email[email] == {"email": email, "firstname": "Ann", "referral_code": created["code"],
                                       "referral_link": created["url"]}
    assert len(hubspot.by_email) == 1
