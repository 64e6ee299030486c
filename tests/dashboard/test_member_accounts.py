"""A member's account on the Users pages: an owner disables, enables and sets a new password."""

from __future__ import annotations

import logging
import re

import pytest

from referflow.actions import users
from referflow.app import create_app
from referflow.storage.models import User
from tests.conftest import make_program
from tests.dashboard_helpers import PASSWORD, TOKEN, csrf_token, login, make_user, post_form, text

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture()
def program(client):
    return make_program(client, name="P")


@pytest.fixture()
def owner(app, client, program):
    """Ann, owner of P, logged in on ``client``."""
    made = make_user(app, "ann@example.test", role="owner", program_ids=program.program_id)
    login(client, made.email)
    return made


@pytest.fixture()
def bob(app, program):
    """Bob, a reviewer of P only: Ann may manage his account."""
    return make_user(app, "bob@example.test", role="reviewer", program_ids=program.program_id)


def _url(program, page=""):
    return f"/dashboard/p/{program.program_id}/users{page}"


def _account(program, user_id):
    return _url(program, f"/{user_id}")


def _post(client, program, user_id, action, data=None):
    return post_form(client, f"{_account(program, user_id)}/{action}", data,
                     page=_url(program))


def _reset(client, program, user_id, new=NEW_PASSWORD, repeat=None):
    return _post(client, program, user_id, "password",
                 {"new_password": new, "repeat_password": new if repeat is None else repeat})


def _signed_in(app, email, password=PASSWORD):
    browser = app.test_client()
    login(browser, email, password)
    return browser


def _is_in(browser, program) -> bool:
    response = browser.get(f"/dashboard/p/{program.program_id}/reviews")
    assert response.status_code in (200, 302), response.status_code
    return response.status_code == 200


def _flashed(client, response):
    assert response.status_code == 302, text(response)[:500]
    return text(client.get(response.headers["Location"]))


def _disabled(app, user_id) -> bool:
    with app.extensions["referflow"].db.session() as session:
        return users.get_user(session, user_id).disabled


def test_the_members_page_links_each_account_and_shows_who_is_disabled(app, client, program, owner, bob):
    page = text(client.get(_url(program)))
    assert f'href="{_account(program, bob.id)}"' in page and "the account of bob@example.test" in page
    account = text(client.get(_account(program, bob.id)))
    assert "Account of bob@example.test" in account and "Disable account" in account
    assert "Set a new password" in account and 'name="csrf_token"' in account


def test_an_owner_disables_a_member_who_is_out_at_once_and_back_when_enabled(app, client, program, owner, bob):
    laptop, phone = _signed_in(app, bob.email), _signed_in(app, bob.email)
    done = _flashed(client, _post(client, program, bob.id, "disable"))
    assert "Account disabled" in done and 'badge bad">disabled' in done
    assert "bob@example.test" in done  # still a member: the role stays
    assert not _is_in(laptop, program) and not _is_in(phone, program)
    login(app.test_client(), bob.email, expect=401)
    assert _is_in(client, program)  # the owner's own session is untouched
    assert "Enable account" in text(client.get(_account(program, bob.id)))
    assert "Account enabled" in _flashed(client, _post(client, program, bob.id, "enable"))
    assert not _is_in(laptop, program)  # enabling revives no session from before
    assert _is_in(_signed_in(app, bob.email), program)


def _login_page(app, email, password):
    """Log in on a fresh browser; return the status and the page without its CSRF token."""
    response = login(app.test_client(), email, password, expect=None)
    return response.status_code, TOKEN.sub("TOKEN", text(response))


def test_a_disabled_user_logging_in_gets_the_wrong_password_answer(app, client, program, owner, bob):
    wrong = _login_page(app, bob.email, "not the password at all")
    _post(client, program, bob.id, "disable")
    assert _login_page(app, bob.email, PASSWORD) == wrong
    assert wrong[0] == 401 and "do not match an account" in wrong[1]
    nobody = _login_page(app, "nobody@example.test", PASSWORD)
    assert nobody[0] == 401 and nobody[1] == wrong[1].replace(bob.email, "nobody@example.test")


def test_a_disabled_users_right_password_counts_as_a_failure(settings, program):
    app = create_app(settings.with_overrides(rate_limit_auth_failures="2/minute"))
    try:
        made = make_user(app, "bob@example.test", role="viewer", program_ids=[])
        with app.extensions["referflow"].db.session() as session:
            session.get(User, made.id).disabled = True
            session.commit()
        for _ in range(2):
            login(app.test_client(), made.email, expect=401)
        login(app.test_client(), made.email, expect=429)
    finally:
        app.extensions["referflow"].db.dispose()


def test_an_owner_sets_a_members_new_password_and_every_session_of_theirs_ends(app, client, program, owner, bob):
    browser = _signed_in(app, bob.email)
    done = _flashed(client, _reset(client, program, bob.id))
    assert "Password set" in done and NEW_PASSWORD not in done
    assert not _is_in(browser, program) and _is_in(client, program)
    login(app.test_client(), bob.email, PASSWORD, expect=401)
    # The owner knows it: Bob sets his own before any program page (it must not open a program
    # he joins later that Ann does not own)
    bobs = _signed_in(app, bob.email, NEW_PASSWORD)
    sent = bobs.get(f"/dashboard/p/{program.program_id}/reviews")
    assert sent.status_code == 302 and sent.headers["Location"].endswith("/dashboard/account")
    assert "An owner set this account's password" in text(bobs.get("/dashboard/account"))
    changed = post_form(bobs, "/dashboard/account/password", {
        "current_password": NEW_PASSWORD, "new_password": "bob's very own phrase",
        "repeat_password": "bob's very own phrase"}, page="/dashboard/account")
    assert changed.status_code == 302
    assert _is_in(bobs, program)
    assert "An owner set this account's password" not in text(bobs.get("/dashboard/account"))


def test_a_password_the_admin_sets_is_not_one_to_change(app, client, program, owner, bob):
    from referflow.actions import accounts

    with app.extensions["referflow"].db.session() as session:
        accounts.reset_password(session, bob.id, NEW_PASSWORD)  # `referflow users reset-password`
    assert _is_in(_signed_in(app, bob.email, NEW_PASSWORD), program)


@pytest.mark.parametrize("new, repeat, message", [
    (NEW_PASSWORD, NEW_PASSWORD + "!", "repeat differ"),
    ("too short", None, "12 to 1024 characters"),
    ("y" * 1025, None, "12 to 1024 characters"),
])
def test_a_refused_new_password_changes_nothing(app, client, program, owner, bob, new, repeat, message):
    browser = _signed_in(app, bob.email)
    refused = _reset(client, program, bob.id, new, repeat)
    assert refused.status_code == 422 and message in text(refused)
    assert 'aria-invalid="true"' in text(refused)
    assert _is_in(browser, program)
    login(app.test_client(), bob.email, PASSWORD)


@pytest.fixture()
def agency(app, client, program):
    """Cy: a viewer of P and of Zed's program Q. Ann does not own Q."""
    other = make_program(client, name="Q")
    make_user(app, "zed@example.test", role="owner", program_ids=other.program_id)
    return make_user(app, "cy@example.test", role="viewer", program_ids=[program.program_id, other.program_id])


def test_an_account_that_opens_a_program_the_owner_does_not_own_is_refused(app, client, program, owner, agency):
    browser = _signed_in(app, agency.email)
    account = client.get(_account(program, agency.id))
    assert account.status_code == 200
    page = text(account)
    assert "programs you do not own" in page and "Disable account" not in page
    assert "new_password" not in page
    refused = _flashed(client, _post(client, program, agency.id, "disable"))
    assert "programs you do not own" in refused and not _disabled(app, agency.id)
    reset = _reset(client, program, agency.id)
    assert reset.status_code == 403 and "programs you do not own" in text(reset)
    assert _is_in(browser, program)
    login(app.test_client(), agency.email, PASSWORD)


def test_an_owner_cannot_disable_or_reset_their_own_account(app, client, program, owner):
    make_user(app, "otto@example.test", role="owner", program_ids=program.program_id)  # not the last owner
    page = text(client.get(_account(program, owner.id)))
    assert "your own account" in page and "Disable account" not in page
    assert "your own account" in _flashed(client, _post(client, program, owner.id, "disable"))
    reset = _reset(client, program, owner.id)
    assert reset.status_code == 403 and "your own account" in text(reset)
    assert _is_in(client, program) and not _disabled(app, owner.id)
    login(app.test_client(), owner.email, PASSWORD)


def test_an_owner_disables_a_fellow_owner_and_stays_in(app, client, program, owner):
    """The last-owner rule never stops an owner here: they own every program of the account."""
    other = _signed_in(app, owner.email)
    otto = make_user(app, "otto@example.test", role="owner", program_ids=program.program_id)
    assert "Account disabled" in _flashed(client, _post(client, program, otto.id, "disable"))
    assert _is_in(other, program)


def test_an_account_outside_the_program_is_not_found(app, client, program, owner, agency):
    other = make_program(client, name="R")
    outsider = make_user(app, "out@example.test", role="viewer", program_ids=other.program_id)
    for user_id in (outsider.id, "usr_nobody"):
        assert client.get(_account(program, user_id)).status_code == 404
        assert _reset(client, program, user_id).status_code == 404
        assert "not a member of this program" in _flashed(client, _post(client, program, user_id, "disable"))
    assert not _disabled(app, outsider.id)


@pytest.mark.parametrize("action", ["disable", "enable", "password"])
def test_each_account_form_needs_the_csrf_token_and_an_owner(app, client, program, owner, bob, action):
    assert client.post(f"{_account(program, bob.id)}/{action}", data={
        "new_password": NEW_PASSWORD, "repeat_password": NEW_PASSWORD}).status_code == 400
    reviewer = _signed_in(app, bob.email)
    assert reviewer.get(_account(program, owner.id)).status_code == 403
    token = csrf_token(reviewer, f"/dashboard/p/{program.program_id}/reviews")
    assert reviewer.post(f"{_account(program, owner.id)}/{action}", data={
        "csrf_token": token, "new_password": NEW_PASSWORD, "repeat_password": NEW_PASSWORD}).status_code == 403
    assert not _disabled(app, owner.id) and not _disabled(app, bob.id)
    login(app.test_client(), owner.email, PASSWORD)


def test_each_change_is_logged_with_the_owners_id_never_an_email(app, client, program, owner, bob, caplog):
    caplog.set_level(logging.INFO, logger="referflow.users")
    _post(client, program, bob.id, "disable")
    _post(client, program, bob.id, "enable")
    _reset(client, program, bob.id)
    lines = [r.getMessage() for r in caplog.records if r.name == "referflow.users"]
    by = f"by user {owner.id} (owner of {program.program_id})"
    assert [line for line in lines if by in line] == [
        f"user {bob.id} disabled {by}", f"user {bob.id} enabled {by}", f"user {bob.id}: password reset {by}"]
    assert not [r for r in caplog.records if re.search(r"@example\.test|" + NEW_PASSWORD, r.getMessage())]


def test_an_account_the_admin_disabled_shows_why_and_stays_disabled(app, client, program, owner, bob):
    from referflow.actions import accounts

    with app.extensions["referflow"].db.session() as session:
        accounts.disable_user(session, bob.id)  # `referflow users disable`: the install's admin
    page = text(client.get(_account(program, bob.id)))
    assert "Disabled by the install's admin" in page and "Enable account" not in page
    refused = _flashed(client, _post(client, program, bob.id, "enable"))  # a hand-made POST
    assert "only the admin can enable it" in refused and _disabled(app, bob.id)
