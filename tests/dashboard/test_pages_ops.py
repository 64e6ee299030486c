"""The operational pages: reviews (one and in bulk), webhooks and replay, settings, API keys, users."""

from __future__ import annotations

import re

import pytest

from referflow.dashboard import reviews as review_pages
from referflow.jobs.runner import tick
from tests.conftest import make_program
from tests.dashboard_helpers import PASSWORD, login, make_user, post_form, text
from tests.helpers import claim, link
from tests.receiver import Receiver


def _as(app, client, program, role, email=None):
    email = email or f"{role}@example.test"
    user = make_user(app, email, role=role, program_ids=program.program_id)
    login(client, email)
    return user


def _url(program, page):
    return f"/dashboard/p/{program.program_id}/{page}"


def _in_review(api, n):
    code = link(api)["code"]
    made = [claim(api, code, email=f"friend{i}@mailinator.com") for i in range(n)]
    assert {r["status"] for r in made} == {"in_review"}
    return [r["id"] for r in made]


def _status(api, referral_id):
    return api.get(f"/v1/referrals/{referral_id}").get_json()


def _decide(client, program, decision, ids, **fields):
    return post_form(client, _url(program, "reviews/decide"),
                     {"decision": decision, "referral_id": ids, **fields}, page=_url(program, "reviews"))


@pytest.fixture()
def program(client):
    return make_program(client)


# Reviews

def test_empty_queue_says_so(app, client, program):
    _as(app, client, program, "viewer")
    page = client.get(_url(program, "reviews"))
    assert page.status_code == 200 and "the queue is empty" in text(page)


def test_a_viewer_reads_the_queue_but_cannot_decide(app, client, program):
    ids = _in_review(program, 2)
    _as(app, client, program, "viewer")
    page = text(client.get(_url(program, "reviews")))
    assert all(i in page for i in ids) and 'name="referral_id"' not in page
    assert "mailinator" in page  # the friend, for the person deciding
    refused = post_form(client, _url(program, "reviews/decide"), {"decision": "approve", "referral_id": ids},
                        page=_url(program, "reviews"))
    assert refused.status_code == 403 and "Not allowed" in text(refused)
    assert _status(program, ids[0])["status"] == "in_review"


def test_a_reviewer_approves_one_with_a_note_and_history_names_them(app, client, program):
    rid = _in_review(program, 1)[0]
    user = _as(app, client, program, "reviewer", "Rita@Example.test")
    detail = text(client.get(_url(program, f"reviews/{rid}")))
    assert "Approve" in detail and "Decline" in detail
    done = post_form(client, _url(program, "reviews/decide"),
                     {"decision": "approve", "referral_id": rid, "note": "checked the order",
                      "return_to_referral": rid}, page=_url(program, f"reviews/{rid}"))
    assert done.status_code == 302 and done.headers["Location"].endswith(f"reviews/{rid}")
    referral = _status(program, rid)
    assert referral["status"] == "pending"
    last = referral["history"][-1]
    assert last["actor"] == {"type": "dashboard_user", "id": user.id}
    assert last["data"]["note"] == "checked the order"
    shown = text(client.get(done.headers["Location"]))
    assert "1 referral approved." in shown and "Rita@Example.test" in shown and "checked the order" in shown


def test_bulk_decline_with_the_polite_message_and_refusals_reported(app, client, program):
    ids = _in_review(program, 3)
    other = make_program(client, name="Other")
    foreign = _in_review(other, 1)[0]
    user = _as(app, client, program, "owner")
    _decide(client, program, "approve", [ids[0]])
    response = _decide(client, program, "decline", [*ids, foreign], message="Not this time, sorry.")
    page = text(client.get(response.headers["Location"]))
    assert "2 referrals declined." in page and "Not changed:" in page
    assert ids[0] in page and foreign in page
    for rid in ids[1:]:
        referral = _status(program, rid)
        assert referral["status"] == "rejected"
        assert referral["reasons"][-1] == {"code": "declined_in_review", "message": "Not this time, sorry."}
        assert referral["history"][-1]["actor"] == {"type": "dashboard_user", "id": user.id}
    assert _status(other, foreign)["status"] == "in_review"


def test_bulk_decline_without_a_message_sends_the_polite_default(app, client, program):
    rid = _in_review(program, 1)[0]
    _as(app, client, program, "reviewer")
    _decide(client, program, "decline", [rid], message="  ")
    assert _status(program, rid)["reasons"][-1]["message"] == review_pages.reviews.POLITE_DECLINE


@pytest.mark.parametrize("form, status", [
    ({"decision": "approve"}, 302),  # nothing chosen: said on the page
    ({"decision": "maybe", "referral_id": "ref_x"}, 400),
    ({"referral_id": "ref_x"}, 400),
])
def test_bad_decision_forms(app, client, program, form, status):
    _as(app, client, program, "reviewer")
    response = post_form(client, _url(program, "reviews/decide"), form, page=_url(program, "reviews"))
    assert response.status_code == status
    if status == 302:
        assert "Choose at least one referral." in text(client.get(response.headers["Location"]))


def test_the_queue_pages_to_its_end(app, client, program, monkeypatch):
    monkeypatch.setattr(review_pages, "PAGE", 2)
    ids = _in_review(program, 3)
    _as(app, client, program, "viewer")
    first = text(client.get(_url(program, "reviews")))
    cursor = re.search(r'reviews\?after=([a-z0-9_]+)"', first).group(1)
    second = text(client.get(_url(program, f"reviews?after={cursor}")))
    assert ids[2] in second and "Next page" not in second
    end = text(client.get(_url(program, f"reviews?after={ids[2]}")))
    assert "No more referrals in review." in end
    assert client.get(_url(program, "reviews?after=ref_unknown")).status_code == 200


def test_an_unknown_referral_is_a_404_page(app, client, program):
    _as(app, client, program, "viewer")
    response = client.get(_url(program, "reviews/ref_nope"))
    assert response.status_code == 404 and "Not found" in text(response)


# Webhooks

@pytest.fixture()
def receiver():
    with Receiver() as r:
        yield r


def _tick(app):
    services = app.extensions["referflow"]
    tick(services, services.queue)


def _delivered(app, program, receiver):
    sub = program.post("/v1/webhooks", {"url": receiver.url, "events": ["referral.claimed"]}).get_json()
    claim(program, link(program)["code"])
    _tick(app)
    delivery = program.get(f"/v1/webhooks/{sub['id']}/deliveries").get_json()["items"][0]
    return sub, delivery


def test_webhooks_page_lists_subscriptions_and_failing_endpoints_first(app, client, program):
    _as(app, client, program, "viewer")
    assert "No webhook subscriptions" in text(client.get(_url(program, "webhooks")))
    program.post("/v1/webhooks", {"url": "http://127.0.0.1:9/nothing-listens", "events": ["*"]})
    program.post("/v1/webhooks", {"url": "https://127.0.0.1/fine", "events": ["referral.approved"]})
    claim(program, link(program)["code"])
    _tick(app)
    page = text(client.get(_url(program, "webhooks")))
    assert page.index("Failing endpoints") < page.index("nothing-listens") < page.index("/fine")
    assert "failing" in page and "healthy" in page


def test_a_reviewer_replays_a_delivery(app, client, program, receiver):
    sub, delivery = _delivered(app, program, receiver)
    _as(app, client, program, "reviewer")
    page = text(client.get(_url(program, f"webhooks/{sub['id']}")))
    assert delivery["id"] in page and "referral.claimed" in page and "Replay" in page
    replayed = post_form(client, _url(program, f"webhooks/deliveries/{delivery['id']}/replay"),
                         page=_url(program, f"webhooks/{sub['id']}"))
    assert replayed.status_code == 302
    assert "will be sent again" in text(client.get(replayed.headers["Location"]))
    _tick(app)
    assert len(receiver.requests) == 2 and receiver.requests[0]["body"] == receiver.requests[1]["body"]


def test_viewers_and_other_programs_cannot_replay(app, client, program, receiver):
    sub, delivery = _delivered(app, program, receiver)
    _as(app, client, program, "viewer")
    page = text(client.get(_url(program, f"webhooks/{sub['id']}")))
    assert "Replay" not in page
    path = _url(program, f"webhooks/deliveries/{delivery['id']}/replay")
    assert post_form(client, path, page=_url(program, "webhooks")).status_code == 403
    other = make_program(client, name="Other")
    stranger = app.test_client()
    _as(app, stranger, other, "owner", "stranger@example.test")
    foreign = f"/dashboard/p/{other.program_id}/webhooks/deliveries/{delivery['id']}/replay"
    assert post_form(stranger, foreign, page=f"/dashboard/p/{other.program_id}/webhooks").status_code == 404
    assert stranger.get(f"/dashboard/p/{other.program_id}/webhooks/{sub['id']}").status_code == 404
    assert len(receiver.requests) == 1


# Settings

def test_viewers_read_the_config_and_reviewers_cannot_edit_it(app, client, program):
    _as(app, client, program, "reviewer")
    page = text(client.get(_url(program, "settings")))
    assert "shop.example.test" in page and 'name="config"' not in page
    refused = post_form(client, _url(program, "settings"), {"form": "common", "hold_days": "3"})
    assert refused.status_code == 403
    assert program.get("/v1/program").get_json()["config"]["hold_days"] == 14


def test_owner_edits_common_fields_and_sees_versions_side_by_side(app, client, program):
    _as(app, client, program, "owner")
    page = text(client.get(_url(program, "settings")))
    values = dict(re.findall(r'name="([a-z_]+)" type="(?:number|url|text)"\s+(?:min="0" inputmode="numeric")?\s*'
                             r'value="([^"]*)"', page))
    assert values["hold_days"] == "14"
    saved = post_form(client, _url(program, "settings"), {**values, "form": "common", "hold_days": "7"})
    assert saved.status_code == 302
    after = text(client.get(saved.headers["Location"]))
    assert "Saved as version 2." in after and "<code>/hold_days</code>" in after
    assert "Version 1" in after and "Version 2" in after
    assert program.get("/v1/program").get_json()["config"]["hold_days"] == 7
    same = post_form(client, _url(program, "settings"), {**values, "form": "common", "hold_days": "7"})
    assert "Nothing changed" in text(client.get(same.headers["Location"]))
    compared = text(client.get(_url(program, "settings?a=2&b=1")))
    assert "Changed between 2 and 1" in compared
    assert client.get(_url(program, "settings?a=99&b=x")).status_code == 200


@pytest.mark.parametrize("form, message", [
    ({"form": "raw", "config": '{"landing_url": "ftp://nope"}'}, "landing_url"),
    ({"form": "raw", "config": "landing_url: [unclosed"}, "not valid JSON or YAML"),
    ({"form": "raw", "config": "[1, 2]"}, "must be an object"),
    ({"form": "raw", "config": '{"landing_url": "https://x.test/", "timezone": "Mars/Base"}'}, "unknown timezone"),
    ({"form": "raw", "config": '{"landing_url": "https://x.test/", "unknown_key": 1}'}, "unknown_key"),
    ({"form": "common", "landing_url": "https://x.test/", "hold_days": "seven"}, "whole number"),
    ({"form": "common", "landing_url": "https://x.test/", "hold_days": "9999"}, "hold_days"),
    ({"form": "common", "landing_url": ""}, "landing_url"),
])
def test_an_invalid_config_is_shown_next_to_the_form_and_not_saved(app, client, program, form, message):
    _as(app, client, program, "owner")
    response = post_form(client, _url(program, "settings"), form)
    assert response.status_code == 422
    page = text(response)
    assert "Not saved" in page and message in page and 'aria-invalid="true"' in page
    got = program.get("/v1/program").get_json()
    assert got["config_version"] == 1 and got["config"]["landing_url"].startswith("https://shop.")


def test_owner_saves_yaml(app, client, program):
    _as(app, client, program, "owner")
    yaml_text = "landing_url: https://new.example.test/\ncurrency: EUR\nhold_days: 3\n"
    saved = post_form(client, _url(program, "settings"), {"form": "raw", "config": yaml_text})
    assert saved.status_code == 302
    config = program.get("/v1/program").get_json()["config"]
    assert config["landing_url"] == "https://new.example.test/" and config["hold_days"] == 3


# API keys

def test_owner_makes_a_key_shown_once_and_revokes_it(app, client, program):
    _as(app, client, program, "owner")
    made = post_form(client, _url(program, "settings/keys"), {"label": "n8n prod", "scope": "read"})
    assert made.status_code == 201
    secret = re.search(r'id="new-key">(rfk_[^<]+)<', text(made)).group(1)
    assert made.headers["Cache-Control"] == "no-store"
    assert client.get("/v1/program", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    listing = text(client.get(_url(program, "settings/keys")))
    assert secret not in listing and secret[:10] in listing and "n8n prod" in listing
    key_id = next(k["id"] for k in program.get("/v1/api-keys").get_json()["items"] if k["label"] == "n8n prod")
    revoked = post_form(client, _url(program, f"settings/keys/{key_id}/revoke"), page=_url(program, "settings/keys"))
    assert revoked.status_code == 302
    assert client.get("/v1/program", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert "revoked" in text(client.get(_url(program, "settings/keys")))


def test_key_forms_refuse_bad_scopes_strangers_and_reviewers(app, client, program):
    other = make_program(client, name="Other")
    other_key = other.get("/v1/api-keys").get_json()["items"][0]["id"]
    _as(app, client, program, "owner")
    bad = post_form(client, _url(program, "settings/keys"), {"scope": "root"})
    assert bad.status_code == 302 and "Choose one of the listed scopes." in text(client.get(bad.headers["Location"]))
    foreign = post_form(client, _url(program, f"settings/keys/{other_key}/revoke"), page=_url(program, "settings/keys"))
    assert foreign.status_code == 404
    assert other.get("/v1/program").status_code == 200
    reviewer = app.test_client()
    _as(app, reviewer, program, "reviewer")
    assert post_form(reviewer, _url(program, "settings/keys"), {"scope": "read"},
                     page=_url(program, "reviews")).status_code == 403


# Users

def test_owner_adds_changes_and_removes_members(app, client, program):
    other = make_program(client, name="Other")
    make_user(app, "agency@example.test", role="owner", program_ids=other.program_id)
    _as(app, client, program, "owner")
    added = post_form(client, _url(program, "users"),
                      {"email": "New.Person@Example.test", "role": "reviewer", "password": PASSWORD})
    assert added.status_code == 302
    existing = post_form(client, _url(program, "users"), {"email": "AGENCY@example.test", "role": "viewer"})
    assert existing.status_code == 302
    page = text(client.get(_url(program, "users")))
    assert "New.Person@Example.test" in page and "agency@example.test" in page
    newcomer = app.test_client()
    login(newcomer, "new.person@example.test")
    assert newcomer.get(_url(program, "reviews")).status_code == 200
    agency = app.test_client()
    login(agency, "agency@example.test")
    assert agency.get(_url(program, "webhooks")).status_code == 200  # their old password still works
    agency_id = re.search(r'users/(usr_[a-z0-9]+)/role"[^>]*>\s*<input[^>]*>\s*<label for="role-usr_[a-z0-9]+"'
                          r' class="visually-hidden">Role of agency@', page).group(1)
    post_form(client, _url(program, f"users/{agency_id}/role"), {"role": "owner"}, page=_url(program, "users"))
    assert agency.get(_url(program, "users")).status_code == 200
    post_form(client, _url(program, f"users/{agency_id}/remove"), page=_url(program, "users"))
    assert agency.get(_url(program, "webhooks")).status_code == 404
    assert agency.get(f"/dashboard/p/{other.program_id}/webhooks").status_code == 200


@pytest.mark.parametrize("form, message", [
    ({"email": "nobody@example.test", "role": "viewer"}, "give an initial password"),
    ({"email": "nobody@example.test", "role": "viewer", "password": "short"}, "12 to 1024"),
    ({"email": "not an email", "role": "viewer", "password": PASSWORD}, "email address"),
    ({"email": "x@example.test", "role": "god", "password": PASSWORD}, "role must be one of"),
])
def test_adding_a_member_with_bad_input_says_why(app, client, program, form, message):
    _as(app, client, program, "owner")
    response = post_form(client, _url(program, "users"), form)
    assert response.status_code == 422 and message in text(response)


def test_the_last_owner_stays(app, client, program):
    owner = _as(app, client, program, "owner")
    demoted = post_form(client, _url(program, f"users/{owner.id}/role"), {"role": "viewer"},
                        page=_url(program, "users"))
    assert "at least one owner" in text(client.get(demoted.headers["Location"]))
    removed = post_form(client, _url(program, f"users/{owner.id}/remove"), page=_url(program, "users"))
    assert "at least one owner" in text(client.get(removed.headers["Location"]))
    assert client.get(_url(program, "users")).status_code == 200
    missing = post_form(client, _url(program, "users/usr_nobody/role"), {"role": "viewer"}, page=_url(program, "users"))
    assert "not a member" in text(client.get(missing.headers["Location"]))


def test_reviewers_cannot_manage_members(app, client, program):
    _as(app, client, program, "reviewer")
    assert client.get(_url(program, "users")).status_code == 403
    response = post_form(client, _url(program, "users"), {"email": "x@example.test", "role": "owner",
                                                          "password": PASSWORD}, page=_url(program, "reviews"))
    assert response.status_code == 403
