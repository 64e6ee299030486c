"""Revocable dashboard sessions: a password change or "sign out everywhere" ends the other ones."""

from __future__ import annotations

import pytest

from referflow.actions import users
from referflow.app import create_app
from referflow.storage.models import User
from tests.conftest import make_program
from tests.dashboard_helpers import PASSWORD, csrf_token, login, make_user, post_form, text

NEW_PASSWORD = "a new and longer passphrase"
ACCOUNT = "/dashboard/account"


@pytest.fixture()
def program(client):
    return make_program(client)


@pytest.fixture()
def ann(app, program):
    return make_user(app, "ann@example.test", role="owner", program_ids=program.program_id)


def _reviews(client, program):
    return client.get(f"/dashboard/p/{program.program_id}/reviews")


def _is_in(client, program) -> bool:
    response = _reviews(client, program)
    assert response.status_code in (200, 302), response.status_code
    if response.status_code == 302:
        assert response.headers["Location"].startswith("/dashboard/login")
    return response.status_code == 200


def _change_password(client, current=PASSWORD, new=NEW_PASSWORD, repeat=None):
    return post_form(client, f"{ACCOUNT}/password", {
        "current_password": current, "new_password": new,
        "repeat_password": new if repeat is None else repeat}, page=ACCOUNT)


def _logged_in_twice(app, email="ann@example.test"):
    first, second = app.test_client(), app.test_client()
    login(first, email)
    login(second, email)
    return first, second


def test_the_account_page_is_linked_from_every_page_and_needs_a_login(app, client, program, ann):
    anonymous = client.get(ACCOUNT)
    assert anonymous.status_code == 302 and anonymous.headers["Location"] == \
        "/dashboard/login?next=/dashboard/account"
    login(client, ann.email)
    assert f'href="{ACCOUNT}"' in text(_reviews(client, program))
    page = text(client.get(ACCOUNT))
    assert "Change your password" in page and "Sign out everywhere" in page and ann.email in page
    assert f'action="{ACCOUNT}/sign-out-everywhere"' in page and 'name="csrf_token"' in page


def test_a_password_change_keeps_this_session_and_ends_every_other(app, program, ann):
    mine, other = _logged_in_twice(app)
    before = mine.get_cookie("referflow_session").value
    changed = _change_password(mine)
    assert changed.status_code == 302 and changed.headers["Location"] == ACCOUNT
    assert "Password changed" in text(mine.get(ACCOUNT))
    assert _is_in(mine, program)
    assert not _is_in(other, program)
    stale = app.test_client()  # this browser's cookie from before the change: re-issued, not kept
    stale.set_cookie("referflow_session", before)
    assert not _is_in(stale, program)
    login(app.test_client(), ann.email, PASSWORD, expect=401)
    login(other, ann.email, NEW_PASSWORD)
    assert _is_in(other, program)


@pytest.mark.parametrize("current, new, repeat, status, message", [
    ("wrong password here", NEW_PASSWORD, None, 401, "current password is not right"),
    ("x" * 5000, NEW_PASSWORD, None, 401, "current password is not right"),
    (PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "!", 422, "repeat differ"),
    (PASSWORD, "too short", None, 422, "12 to 1024 characters"),
    (PASSWORD, "y" * 1025, None, 422, "12 to 1024 characters"),
])
def test_a_refused_password_change_changes_nothing(app, program, ann, current, new, repeat, status,
                                                    message):
    mine, other = _logged_in_twice(app)
    refused = _change_password(mine, current, new, repeat)
    assert refused.status_code == status and message in text(refused)
    assert 'aria-invalid="true"' in text(refused)
    assert _is_in(mine, program) and _is_in(other, program)
    login(app.test_client(), ann.email, PASSWORD)


def test_wrong_current_passwords_count_against_the_login_limit(settings, program):
    app = create_app(settings.with_overrides(rate_limit_auth_failures="3/minute"))
    try:
        made = make_user(app, "ann@example.test", role="owner", program_ids=[])
        client = app.test_client()
        login(client, made.email)
        for _ in range(3):
            assert _change_password(client, "wrong password here").status_code == 401
        assert _change_password(client).status_code == 429  # the right one too, for now
        login(app.test_client(), made.email, expect=429)
    finally:
        app.extensions["referflow"].db.dispose()


def test_sign_out_everywhere_ends_every_session_this_one_too(app, program, ann):
    mine, other = _logged_in_twice(app)
    out = post_form(mine, f"{ACCOUNT}/sign-out-everywhere", page=ACCOUNT)
    assert out.status_code == 302 and out.headers["Location"] == "/dashboard/login"
    assert "signed out everywhere" in text(mine.get("/dashboard/login"))
    assert not _is_in(mine, program) and not _is_in(other, program)
    assert other.get(ACCOUNT).status_code == 302
    login(other, ann.email)  # the password is unchanged: a new login works
    assert _is_in(other, program) and not _is_in(mine, program)


def test_sign_out_everywhere_needs_the_csrf_token(app, program, ann):
    mine, other = _logged_in_twice(app)
    assert mine.post(f"{ACCOUNT}/sign-out-everywhere").status_code == 400
    assert _is_in(mine, program) and _is_in(other, program)


def test_a_revoked_session_posts_nothing(app, program, ann):
    """A form still open in a signed-out browser (its CSRF token valid) only leads to the login."""
    mine, other = _logged_in_twice(app)
    token = csrf_token(other, ACCOUNT)  # the form is open there
    post_form(mine, f"{ACCOUNT}/sign-out-everywhere", page=ACCOUNT)
    late = other.post(f"{ACCOUNT}/password", data={
        "csrf_token": token, "current_password": PASSWORD, "new_password": NEW_PASSWORD,
        "repeat_password": NEW_PASSWORD})
    assert late.status_code == 302 and late.headers["Location"] == "/dashboard/login"
    login(app.test_client(), ann.email, PASSWORD)  # unchanged


@pytest.mark.parametrize("stamp", ["missing", None, 7, "", "forged-stamp"])
@pytest.mark.parametrize("page", ["/dashboard/", "reviews", ACCOUNT, "/dashboard/login"])
def test_a_cookie_without_the_right_stamp_is_logged_out_once_cleanly(app, program, ann, stamp, page):
    """Cookies made before stamps hold only the user id: logged out, the cookie dropped, no 500."""
    client = app.test_client()
    login(client, ann.email)
    with client.session_transaction() as state:
        if stamp == "missing":
            del state["stamp"]
        else:
            state["stamp"] = stamp
    url = f"/dashboard/p/{program.program_id}/{page}" if page == "reviews" else page
    response = client.get(url)
    assert response.status_code == (200 if page == "/dashboard/login" else 302)
    if response.status_code == 302:
        assert response.headers["Location"].startswith("/dashboard/login")
    with client.session_transaction() as state:
        assert "uid" not in state
    assert "Log in" in text(client.get("/dashboard/login"))
    login(client, ann.email)
    assert _is_in(client, program)


def test_a_disabled_or_removed_user_is_out_of_every_session(app, program, ann):
    mine, other = _logged_in_twice(app)
    db = app.extensions["referflow"].db
    with db.session() as session:
        session.get(User, ann.id).disabled = True
        session.commit()
    assert not _is_in(mine, program) and not _is_in(other, program)
    assert other.get(ACCOUNT).status_code == 302
    # a viewer: with Ann disabled, an owner would be the program's last active one, kept
    make_user(app, "bob@example.test", role="viewer", program_ids=program.program_id)
    bob = app.test_client()
    login(bob, "bob@example.test")
    with db.session() as session:
        users.remove_user(session, users.find_user(session, "bob@example.test").id)
    assert not _is_in(bob, program)


def test_stamps_are_random_and_new_on_every_change(app, program, ann):
    db = app.extensions["referflow"].db
    with db.session() as session:
        first = session.get(User, ann.id).session_stamp
        second = users.end_sessions(session, ann.id).session_stamp
        third = users.change_password(session, ann.id, PASSWORD, NEW_PASSWORD).session_stamp
    assert len({first, second, third}) == 3 and all(len(s) >= 22 for s in (first, second, third))
    other = make_user(app, "bob@example.test", program_ids=program.program_id)
    with db.session() as session:
        assert session.get(User, other.id).session_stamp != third
