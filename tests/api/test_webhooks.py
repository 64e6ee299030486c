"""Outbound webhooks in the embedded default: subscribe, sign, deliver, retry, disable, replay."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from referflow.app import create_app
from referflow.jobs.runner import tick
from referflow.storage.models import WebhookDelivery, WebhookSubscription
from tests.conftest import make_program
from tests.helpers import approved_referral, claim, link, qualify
from tests.receiver import Receiver


@pytest.fixture()
def receiver():
    with Receiver() as r:
        yield r


def _tick(app):
    services = app.extensions["referflow"]
    tick(services, services.queue)


def _subscribe(api, url, events=("*",)):
    response = api.post("/v1/webhooks", {"url": url, "events": list(events)})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_subscription_lifecycle(api):
    sub = _subscribe(api, "https://127.0.0.1/a", ["referral.approved"])  # a name would be resolved
    assert sub["secret"].startswith("whsec_") and sub["active"] is True
    listed = api.get("/v1/webhooks").get_json()["items"]
    assert [s["id"] for s in listed] == [sub["id"]] and "secret" not in listed[0]
    deleted = api.client.delete(f"/v1/webhooks/{sub['id']}", headers=api.headers())
    assert deleted.get_json() == {"id": sub["id"], "deleted": True}
    again = api.client.delete(f"/v1/webhooks/{sub['id']}", headers=api.headers())
    assert again.status_code == 404 and again.get_json()["code"] == "subscription_not_found"
    assert api.get("/v1/webhooks").get_json()["items"] == []


@pytest.mark.parametrize(("url", "code"), [
    ("https://127.0.0.1:8080/hook", "url_not_allowed"), ("https://localhost/hook", "url_not_allowed"),
    ("https://10.1.2.3/hook", "url_not_allowed"), ("https://192.168.0.10/x", "url_not_allowed"),
    ("https://169.254.169.254/latest/meta-data", "url_not_allowed"), ("https://[::1]/x", "url_not_allowed"),
    ("https://[fe80::1]/x", "url_not_allowed"), ("https://0.0.0.0/x", "url_not_allowed"),
    # production takes https only, refused before the address is looked at
    ("http://127.0.0.1:8080/hook", "https_required"), ("http://93.184.216.34/hook", "https_required"),
])
def test_private_targets_and_plain_http_are_refused_unless_allowed(settings, url, code):
    strict = create_app(settings.with_overrides(allow_private_webhook_urls=False))
    api = make_program(strict.test_client())
    response = api.post("/v1/webhooks", {"url": url, "events": ["*"]})
    assert response.status_code == 422
    assert response.get_json()["code"] == code
    assert api.get("/v1/webhooks").get_json()["items"] == []
    strict.extensions["referflow"].db.dispose()


FIRST = "https://127.0.0.1/hooks/a?b=1"


@pytest.mark.parametrize(("url", "again"), [
    (FIRST, FIRST), (FIRST, "https://127.0.0.1:443/hooks/a?b=1"), (FIRST, "https://127.0.0.1/hooks/a?b=1#part"),
    ("http://127.0.0.1:80/x", "http://127.0.0.1/x"), ("https://[fe80::a]/x", "https://[FE80::A]:443/x"),
    ("https://127.0.0.1", "https://127.0.0.1/"),  # the request line of both is "POST /"
])
def test_a_second_subscription_of_one_endpoint_is_refused_naming_the_first(api, url, again):
    first = _subscribe(api, url, ["referral.approved"])
    refused = api.post("/v1/webhooks", {"url": again, "events": ["*"]})
    assert refused.status_code == 409, refused.get_json()
    body = refused.get_json()
    assert body["code"] == "subscription_exists" and first["id"] in body["message"]
    assert body["errors"] == [{"path": "/url", "message": body["message"], "subscription_id": first["id"]}]
    assert [s["id"] for s in api.get("/v1/webhooks").get_json()["items"]] == [first["id"]]


@pytest.mark.parametrize("other", [
    "https://127.0.0.1/hooks/A?b=1", "https://127.0.0.1/hooks/a?b=2", "https://127.0.0.1/hooks/a",
    "https://127.0.0.1/hooks/a/?b=1", "https://127.0.0.1:8443/hooks/a?b=1",
    "http://127.0.0.1/hooks/a?b=1", "https://127.0.0.2/hooks/a?b=1",
])
def test_another_path_query_port_scheme_or_host_is_another_endpoint(api, other):
    _subscribe(api, FIRST)
    _subscribe(api, other)
    assert len(api.get("/v1/webhooks").get_json()["items"]) == 2


def test_programs_may_share_an_endpoint(api, client):
    other = make_program(client, name="Other")
    assert _subscribe(api, FIRST)["id"] != _subscribe(other, FIRST)["id"]


def test_a_deleted_or_disabled_subscription_leaves_its_endpoint_free(api, app):
    deleted = _subscribe(api, FIRST)
    api.client.delete(f"/v1/webhooks/{deleted['id']}", headers=api.headers())
    disabled = _subscribe(api, FIRST)  # subscribed again once deleted
    with app.extensions["referflow"].db.session() as s:  # as the sender disables a failing one
        s.execute(update(WebhookSubscription).where(WebhookSubscription.id == disabled["id"])
                  .values(active=False, disabled_reason="failing since ...; disabled"))
        s.commit()
    third = _subscribe(api, FIRST)
    listed = {s["id"]: s["active"] for s in api.get("/v1/webhooks").get_json()["items"]}
    assert listed == {disabled["id"]: False, third["id"]: True}
    assert api.post("/v1/webhooks", {"url": FIRST, "events": ["*"]}).get_json()["errors"][0][
        "subscription_id"] == third["id"]


@pytest.mark.parametrize("body", [
    {"url": "ftp://example.test/x", "events": ["*"]},
    {"url": "https://example.test/x", "events": ["referral.nope"]},
    {"url": "https://example.test/x", "events": []},
])
def test_bad_subscriptions_are_refused(api, body):
    assert api.post("/v1/webhooks", body).status_code == 422


def test_lifecycle_events_arrive_signed_and_verifiable(api, app, receiver):
    sub = _subscribe(api, receiver.url)
    referral = approved_referral(api)
    api.post("/v1/gift-cards", {"referral_id": referral["id"]})
    _tick(app)
    types = [e["type"] for e in receiver.events()]
    assert types == ["advocate.link_created", "referral.claimed", "referral.qualified", "referral.approved",
                     "reward.issued", "reward.issued", "referral.rewarded"]
    schemas = app.extensions["referflow"].schemas
    for request, event in zip(receiver.requests, receiver.events(), strict=True):
        assert Webhook(sub["secret"]).verify(request["body"], _lower(request["headers"]))
        schemas.validate(f"event.{event['type']}", event)
        assert event["id"].startswith("evt_") and event["program_id"] == api.program_id
    first = receiver.requests[0]
    tampered = first["body"].replace(b"\"type\"", b"\"typo\"")
    assert tampered != first["body"]
    with pytest.raises(WebhookVerificationError):
        Webhook(sub["secret"]).verify(tampered, _lower(first["headers"]))
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(first["body"], _lower(first["headers"]))


def _lower(headers):
    return {k.lower(): v for k, v in headers.items()}


def test_only_subscribed_event_types_are_delivered(api, app, receiver):
    _subscribe(api, receiver.url, ["referral.rejected"])
    claim(api, link(api)["code"])
    claim(api, link(api, external_id="me")["code"], friend_id="me")
    _tick(app)
    assert [e["type"] for e in receiver.events()] == ["referral.rejected"]


def test_failed_delivery_is_retried_with_backoff_and_logged(api, app, receiver):
    sub = _subscribe(api, receiver.url, ["referral.claimed"])
    receiver.statuses = [500]
    claim(api, link(api)["code"])
    before = datetime.now(UTC)
    _tick(app)
    deliveries = api.get(f"/v1/webhooks/{sub['id']}/deliveries").get_json()["items"]
    assert deliveries[0]["status"] == "pending" and deliveries[0]["last_status_code"] == 500
    wait = datetime.fromisoformat(deliveries[0]["next_attempt_at"]) - before
    assert timedelta(seconds=4) <= wait <= timedelta(seconds=6)  # 5 s +- 10 % jitter
    _tick(app)  # not due yet: nothing sent
    assert len(receiver.requests) == 1
    _make_due(app)
    _tick(app)
    got = api.get(f"/v1/webhooks/{sub['id']}/deliveries").get_json()["items"][0]
    assert got["status"] == "succeeded" and got["attempts"] == 2
    assert [a["status_code"] for a in got["attempt_log"]] == [500, 204]
    ids = {r["headers"]["webhook-id"] for r in receiver.requests}
    assert ids == {got["id"]}  # the same message id on every retry: receivers can dedupe


def _make_due(app):
    with app.extensions["referflow"].db.session() as s:
        s.execute(update(WebhookDelivery).values(next_attempt_at=datetime.now(UTC)))
        s.commit()


def test_unreachable_endpoint_records_the_error(api, app):
    sub = _subscribe(api, "http://127.0.0.1:9/nothing-listens", ["referral.claimed"])
    claim(api, link(api)["code"])
    _tick(app)
    got = api.get(f"/v1/webhooks/{sub['id']}/deliveries").get_json()["items"][0]
    assert got["status"] == "pending" and got["last_status_code"] is None
    assert "ConnectionError" in got["last_error"]


def test_gone_unsubscribes(api, app, receiver):
    sub = _subscribe(api, receiver.url)
    receiver.status = 410
    claim(api, link(api)["code"])
    _tick(app)
    assert api.get("/v1/webhooks").get_json()["items"] == []
    with app.extensions["referflow"].db.session() as s:
        assert s.get(WebhookSubscription, sub["id"]).disabled_reason.startswith("receiver answered 410")


def test_endpoint_failing_for_days_is_disabled_and_gives_up(api, app, receiver):
    sub = _subscribe(api, receiver.url)
    receiver.status = 503
    claim(api, link(api)["code"])
    _tick(app)
    with app.extensions["referflow"].db.session() as s:
        s.execute(update(WebhookSubscription).values(
            failing_since=datetime.now(UTC) - timedelta(days=3, minutes=1)))
        s.commit()
    _make_due(app)
    _tick(app)
    listed = api.get("/v1/webhooks").get_json()["items"][0]
    assert listed["active"] is False and "disabled" in listed["disabled_reason"]
    delivery = api.get(f"/v1/webhooks/{sub['id']}/deliveries").get_json()["items"][0]
    assert delivery["status"] == "failed"


def test_schedule_ends_after_about_three_days(api, app, receiver):
    from referflow.actions.webhooks import BACKOFF

    assert timedelta(days=2.5) < timedelta(seconds=sum(BACKOFF)) < timedelta(days=3.5)
    sub = _subscribe(api, receiver.url, ["referral.claimed"])
    receiver.status = 500
    claim(api, link(api)["code"])
    for _ in range(len(BACKOFF) + 3):
        _make_due(app)
        _tick(app)
    got = api.get(f"/v1/webhooks/{sub['id']}/deliveries").get_json()["items"][0]
    assert got["status"] == "failed" and got["attempts"] == len(BACKOFF) + 1
    assert len(receiver.requests) == len(BACKOFF) + 1


def test_replay_delivers_again(api, app, receiver):
    sub = _subscribe(api, receiver.url, ["referral.claimed"])
    claim(api, link(api)["code"])
    _tick(app)
    delivery = api.get(f"/v1/webhooks/{sub['id']}/deliveries").get_json()["items"][0]
    replayed = api.post(f"/v1/webhook-deliveries/{delivery['id']}/replay")
    assert replayed.get_json()["status"] == "pending"
    _tick(app)
    assert len(receiver.requests) == 2
    assert receiver.requests[0]["body"] == receiver.requests[1]["body"]
    other = make_program(api.client, name="Other")
    assert other.post(f"/v1/webhook-deliveries/{delivery['id']}/replay").status_code == 404


def test_events_are_written_with_the_change_even_without_subscribers(api, app, receiver):
    referral = claim(api, link(api)["code"])
    qualify(api, referral["id"])
    _tick(app)  # no subscription yet: events are done, nothing delivered
    _subscribe(api, receiver.url)
    _tick(app)
    assert receiver.requests == []
    from referflow.storage.models import OutboxEvent

    with app.extensions["referflow"].db.session() as s:
        events = s.query(OutboxEvent).order_by(OutboxEvent.id).all()
        assert [e.type for e in events] == ["advocate.link_created", "referral.claimed",
                                            "referral.qualified"]
        assert all(e.done_at for e in events)
        assert json.dumps(events[0].payload)


def test_signing_key_is_the_text_form_of_the_secret_and_bodies_are_utf8(api, app, receiver):
    import base64
    import hashlib
    import hmac

    sub = _subscribe(api, receiver.url, ["advocate.link_created"])
    assert base64.b64decode(sub["secret"][6:]).decode() == sub["signing_key"]
    api.post("/v1/links", {"advocate": {"external_id": "zoe", "email": "zoe@example.com",
                                        "name": "Zoë Åström"}})
    _tick(app)
    request = receiver.requests[0]
    assert "Zoë Åström".encode() in request["body"]  # UTF-8, not \\u escapes
    rebuilt = json.dumps(json.loads(request["body"]), separators=(",", ":"), ensure_ascii=False)
    assert rebuilt.encode() == request["body"]  # what JSON.stringify gives back in n8n
    headers = _lower(request["headers"])
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{rebuilt}"
    expected = base64.b64encode(hmac.new(sub["signing_key"].encode(), signed.encode(),
                                         hashlib.sha256).digest()).decode()
    assert f"v1,{expected}" in headers["webhook-signature"].split(" ")


def test_latest_events_newest_first_by_type_and_only_the_programs_own(api, client):
    code = link(api, "adv-events")["code"]
    claim(api, code, "friend-events")
    other = make_program(client, name="Other")
    link(other, "adv-other")
    events = api.get("/v1/events").get_json()["items"]
    assert [e["type"] for e in events] == ["referral.claimed", "advocate.link_created"]
    assert all(e["program_id"] == api.program_id for e in events)
    claimed = api.get("/v1/events?type=referral.claimed&limit=1").get_json()["items"]
    assert [e["data"]["referral"]["friend"]["external_id"] for e in claimed] == ["friend-events"]
    for query in ("type=referral.nope", "limit=0", "limit=101", "limit=x"):
        response = api.get(f"/v1/events?{query}")
        assert response.status_code == 400 and response.get_json()["code"] == "invalid_query", query


def test_a_new_subscription_gets_what_happens_next_not_the_backlog(api, app, receiver):
    link(api, "adv-before")  # its event is still waiting for the background fan-out
    _subscribe(api, receiver.url, ["advocate.link_created"])
    link(api, "adv-after")
    _tick(app)
    bodies = [json.loads(r["body"]) for r in receiver.requests]
    assert [b["data"]["advocate"]["external_id"] for b in bodies] == ["adv-after"]
