"""Owners add and remove webhook endpoints on the dashboard, through the API's use cases.

Every subscription made here points at loopback (the test settings allow private targets, as
the API's tests do); the guard's refusals of inside addresses run on an app that does not,
with IP literals (no DNS) and a connect guard that fails the test on any connection that is
not to loopback: the guard refuses before connecting.
"""

from __future__ import annotations

import base64
import html
import ipaddress
import logging
import re
import socket
from typing import Any

import pytest

from referflow.actions.events import EVENT_TYPES
from referflow.app import create_app
from tests.conftest import make_program
from tests.dashboard_helpers import csrf_token, login, make_user, post_form, text

HOOK = "https://127.0.0.1/hooks/referflow"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test on a name lookup or on a connection to anything but loopback."""
    real_connect, real_resolve = socket.socket.connect, socket.getaddrinfo

    def connect(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            assert ipaddress.ip_address(address[0]).is_loopback, f"connect to {address}"
        real_connect(sock, address)

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        ipaddress.ip_address(host)  # a name would be a DNS query: only IP literals here
        return real_resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", resolve)


@pytest.fixture()
def program(client):
    return make_program(client)


def _as(app, client, program, role="owner", email=None):
    email = email or f"{role}@example.test"
    user = make_user(app, email, role=role, program_ids=program.program_id)
    login(client, email)
    return user


def _url(program, page="webhooks"):
    return f"/dashboard/p/{program.program_id}/{page}"


def _add(client, program, url=HOOK, events=EVENT_TYPES):
    return post_form(client, _url(program), {"url": url, "events": list(events)})


def _subs(program):
    return program.get("/v1/webhooks").get_json()["items"]


def _secret(page: str) -> str | None:
    found = re.search(r'id="new-secret">([^<]+)<', page)
    return found.group(1) if found else None


def test_the_form_offers_every_event_type_ticked(app, client, program):
    _as(app, client, program)
    page = text(client.get(_url(program)))
    boxes = re.findall(r'<input type="checkbox"[^>]*name="events" value="([^"]+)"[^>]*>', page)
    assert boxes == list(EVENT_TYPES)
    assert page.count('name="events"') == page.count(" checked>") == len(EVENT_TYPES)
    assert "<legend>Events to send</legend>" in page and '<label for="add-url">URL</label>' in page


def test_every_box_left_ticked_subscribes_to_every_event_those_added_later_too(app, client, program):
    _as(app, client, program)
    assert _add(client, program).status_code == 201
    [sub] = _subs(program)
    assert sub["events"] == ["*"]  # the API's every event, not today's list
    assert "all, those added later too" in text(client.get(_url(program)))


def test_an_owner_adds_an_endpoint_and_sees_its_secret_once(app, client, program, caplog):
    owner = _as(app, client, program)
    caplog.set_level(logging.INFO, logger="referflow")
    added = _add(client, program, events=["referral.approved", "reward.issued"])
    assert added.status_code == 201
    page = text(added)
    secret = _secret(page)
    assert secret and secret.startswith("whsec_") and "shown only this once" in page
    assert "it receives the events that happen from now on" in page  # the flash
    [sub] = _subs(program)
    assert sub["url"] == HOOK and sub["events"] == ["referral.approved", "reward.issued"]
    assert f"user {owner.id} added webhook subscription {sub['id']} of {program.program_id}" in caplog.text
    assert secret not in caplog.text and HOOK not in caplog.text
    again = text(client.get(_url(program)))
    assert HOOK in again and _secret(again) is None and secret not in again
    assert "it receives the events" not in again  # the flash was shown once too


def test_the_secret_signs_as_the_api_says(app, client, program):
    _as(app, client, program)
    page = text(_add(client, program))
    key = re.search(r'id="new-signing-key">([^<]+)<', page).group(1)
    secret = _secret(page)
    assert base64.b64decode(secret.removeprefix("whsec_")).decode() == html.unescape(key)


@pytest.mark.parametrize(("url", "events", "says"), [
    ("ftp://127.0.0.1/x", EVENT_TYPES, "does not match"),
    ("", EVENT_TYPES, "too short"),
    ("https://127.0.0.1/" + "a" * 2000, EVENT_TYPES, "too long"),
    ("http://127.1/hook", EVENT_TYPES, "not a valid host name"),
    ("http://127.0.0.1:8099\\@127.0.0.2/", EVENT_TYPES, "backslash"),
    ("http://user:pw@127.0.0.1/", EVENT_TYPES, "user name or password"),
    (HOOK, [], "should be non-empty"),
    (HOOK, ["referral.approved", "referral.nope"], "referral.nope"),
])
def test_a_refused_endpoint_is_shown_again_with_why(app, client, program, url, events, says):
    _as(app, client, program)
    refused = _add(client, program, url, events)
    assert refused.status_code == 422
    page = text(refused)
    assert "Not added:" in page and says in html.unescape(page)
    assert f'value="{html.escape(url)}"' in page  # what was typed is kept
    kept = [t for t in EVENT_TYPES if t in events]
    assert page.count(" checked>") == len(kept)
    assert _secret(page) is None and _subs(program) == []


@pytest.fixture()
def strict(settings):
    """An app that refuses inside addresses, as production does."""
    application = create_app(settings.with_overrides(allow_private_webhook_urls=False))
    application.testing = True
    yield application
    application.extensions["referflow"].db.dispose()


@pytest.mark.parametrize("url", [
    "https://10.1.2.3/hook", "https://169.254.169.254/latest/meta-data", "https://127.0.0.1:8080/hook",
    "https://[::1]/hook", "https://[fd00:ec2::254]/", "https://192.168.0.10/x", "https://0.0.0.0/x",
])
def test_the_guard_refuses_inside_addresses_without_connecting(strict, url):
    client = strict.test_client()
    program = make_program(client)
    _as(strict, client, program)
    refused = _add(client, program, url)
    assert refused.status_code == 422
    page = text(refused)
    assert "resolves to a non-public address" in page and 'aria-invalid="true"' in page
    assert _subs(program) == []


@pytest.mark.parametrize("url", ["http://93.184.216.34/hook", "http://127.0.0.1:8080/hook"])
def test_plain_http_is_refused_in_production_with_why(strict, url):
    client = strict.test_client()
    program = make_program(client)
    _as(strict, client, program)
    refused = _add(client, program, url)
    assert refused.status_code == 422
    page = text(refused)
    assert "URL: the URL must use https (plain http is refused in production)" in page
    assert 'aria-invalid="true"' in page and f'value="{url}"' in page
    assert _subs(program) == []


def test_an_endpoint_added_twice_is_refused_naming_the_first(app, client, program):
    _as(app, client, program)
    assert _add(client, program).status_code == 201
    [first] = _subs(program)
    refused = _add(client, program, HOOK.replace("127.0.0.1", "127.0.0.1:443") + "#again",
                   ["referral.approved"])
    assert refused.status_code == 409
    page = text(refused)
    assert "Not added:" in page and 'aria-invalid="true"' in page
    assert f"URL: webhook subscription {first['id']} already sends to this URL" in page
    assert _secret(page) is None and [s["id"] for s in _subs(program)] == [first["id"]]


@pytest.mark.parametrize("role", ["viewer", "reviewer"])
def test_who_may_not_edit_settings_sees_no_form_and_is_refused(app, client, program, role):
    sub = program.post("/v1/webhooks", {"url": HOOK, "events": ["*"]}).get_json()
    _as(app, client, program, role)
    page = text(client.get(_url(program)))
    assert HOOK in page
    assert 'name="url"' not in page and "Add endpoint" not in page and "Remove" not in page
    assert post_form(client, _url(program), {"url": "https://127.0.0.1/other", "events": ["*"]}).status_code == 403
    assert client.get(_url(program, f"webhooks/{sub['id']}/remove")).status_code == 403
    removed = post_form(client, _url(program, f"webhooks/{sub['id']}/remove"), page=_url(program))
    assert removed.status_code == 403
    assert [s["id"] for s in _subs(program)] == [sub["id"]]


def test_forms_without_the_csrf_token_are_refused(app, client, program):
    sub = program.post("/v1/webhooks", {"url": HOOK, "events": ["*"]}).get_json()
    _as(app, client, program)
    csrf_token(client, _url(program))  # the session has a token; these posts do not send it
    added = client.post(_url(program), data={"url": "https://127.0.0.1/other", "events": ["*"]})
    assert added.status_code == 400
    removed = client.post(_url(program, f"webhooks/{sub['id']}/remove"))
    assert removed.status_code == 400
    assert [s["id"] for s in _subs(program)] == [sub["id"]]


def test_an_owner_removes_an_endpoint_after_confirming(app, client, program, caplog):
    owner = _as(app, client, program)
    _add(client, program)
    [sub] = _subs(program)
    listed = text(client.get(_url(program)))
    confirm_url = _url(program, f"webhooks/{sub['id']}/remove")
    assert f'href="{confirm_url}"' in listed
    confirm = client.get(confirm_url)
    assert confirm.status_code == 200
    page = text(confirm)
    assert "Remove this endpoint?" in page and HOOK in page and f'action="{confirm_url}"' in page
    assert _subs(program) != []  # opening the question removes nothing
    caplog.set_level(logging.INFO, logger="referflow")
    removed = post_form(client, confirm_url, page=confirm_url)
    assert removed.status_code == 302 and removed.headers["Location"].endswith(_url(program))
    after = text(client.get(removed.headers["Location"]))
    assert "Endpoint removed" in after and HOOK not in after
    assert _subs(program) == []
    assert f"user {owner.id} removed webhook subscription {sub['id']} of {program.program_id}" in caplog.text
    assert post_form(client, confirm_url, page=_url(program)).status_code == 404  # gone already
    assert client.get(confirm_url).status_code == 404


def test_another_programs_subscription_is_not_found(app, client, program):
    other = make_program(client, name="Other")
    theirs = other.post("/v1/webhooks", {"url": HOOK, "events": ["*"]}).get_json()
    _as(app, client, program)  # owner of the first program only
    foreign = _url(program, f"webhooks/{theirs['id']}/remove")
    assert client.get(foreign).status_code == 404
    assert post_form(client, foreign, page=_url(program)).status_code == 404
    assert [s["id"] for s in _subs(other)] == [theirs["id"]]



def test_an_http_endpoint_from_before_https_was_required_is_shown_as_needing_https(
        app, client, program, strict):
    _as(app, client, program)  # development (private and plain http allowed): subscribed then
    assert _add(client, program, "http://127.0.0.1/hooks/old").status_code == 201
    assert _add(client, program).status_code == 201  # and an https one beside it
    production = strict.test_client()
    _as(strict, production, program, email="owner2@example.test")
    page = text(production.get(_url(program)))
    failing, healthy = page.split("1 healthy")
    assert "1 failing or disabled" in failing and "http://127.0.0.1/hooks/old" in failing
    assert "needs https" in failing and "every delivery is refused in production" in failing
    assert HOOK in healthy and "needs https" not in healthy
    assert "needs https" not in text(client.get(_url(program)))  # allowed where http is
