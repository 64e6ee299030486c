"""`referflow users disable | enable | reset-password`: the install's admin manages any account."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from referflow.actions import users
from referflow.cli import main
from tests.conftest import make_program
from tests.dashboard_helpers import PASSWORD, login, make_user, text
from tests.live import service_env

NEW_PASSWORD = "a brand new passphrase"


def _cli(database_url, *args, stdin=None):
    return CliRunner().invoke(main, list(args), input=stdin, env=service_env(database_url))


@pytest.fixture()
def program(client):
    return make_program(client)


@pytest.fixture()
def ann(app, program):
    return make_user(app, "Ann@Example.test", role="owner", program_ids=program.program_id)


@pytest.fixture()
def bob(app, client, program):
    """Bob: owner of P and viewer of Q (an agency's login); the CLI manages it whoever owns Q."""
    other = make_program(client, name="Q")
    made = make_user(app, "bob@example.test", role="owner", program_ids=program.program_id)
    with app.extensions["referflow"].db.session() as session:
        users.set_role(session, made.id, other.program_id, "viewer")
    return made


def _signed_in(app, email, password=PASSWORD):
    browser = app.test_client()
    login(browser, email, password)
    return browser


def _is_in(browser, program) -> bool:
    return browser.get(f"/dashboard/p/{program.program_id}/reviews").status_code == 200


def test_disable_ends_every_session_and_enable_lets_the_user_back(app, database_url, program, ann, bob):
    browser = _signed_in(app, bob.email)
    out = _cli(database_url, "users", "disable", "--email", "BOB@example.test")
    assert out.exit_code == 0 and "disabled" in out.output, out.output
    assert not _is_in(browser, program)
    login(app.test_client(), bob.email, expect=401)
    listed = _cli(database_url, "users", "list")
    assert "bob@example.test" in listed.output and "(disabled)" in listed.output
    assert f"owner of {program.program_id}" in listed.output  # the roles stay
    assert '"disabled": true' in _cli(database_url, "users", "list", "--json").output
    out = _cli(database_url, "users", "enable", "--email", "bob@example.test")
    assert out.exit_code == 0 and "enabled" in out.output, out.output
    assert not _is_in(browser, program)
    assert _is_in(_signed_in(app, bob.email), program)


def test_the_last_active_owner_is_not_disabled(app, database_url, program, ann, bob):
    assert _cli(database_url, "users", "disable", "--email", "bob@example.test").exit_code == 0
    out = _cli(database_url, "users", "disable", "--email", "ann@example.test")
    assert out.exit_code != 0 and "last_owner" in out.output and "Traceback" not in out.output
    login(app.test_client(), "ann@example.test")


def test_reset_password_from_stdin_ends_every_session(app, database_url, program, ann, bob):
    browser = _signed_in(app, bob.email)
    out = _cli(database_url, "users", "reset-password", "--email", "bob@example.test", "--password-stdin",
               stdin=NEW_PASSWORD + "\n")
    assert out.exit_code == 0 and "new password set" in out.output, out.output
    assert NEW_PASSWORD not in out.output
    assert not _is_in(browser, program)
    login(app.test_client(), bob.email, PASSWORD, expect=401)
    assert _is_in(_signed_in(app, bob.email, NEW_PASSWORD), program)


def test_reset_password_asks_twice_and_refuses_a_different_repeat(app, database_url, program, ann):
    typo = _cli(database_url, "users", "reset-password", "--email", "ann@example.test",
                stdin=f"{NEW_PASSWORD}\n{NEW_PASSWORD}!\n")
    assert typo.exit_code != 0 and "do not match" in typo.output
    login(app.test_client(), "ann@example.test", PASSWORD)
    out = _cli(database_url, "users", "reset-password", "--email", "ann@example.test",
               stdin=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    assert out.exit_code == 0, out.output
    assert NEW_PASSWORD not in out.output.replace("New password: ", "")  # the prompt hides what is typed
    login(app.test_client(), "ann@example.test", NEW_PASSWORD)


def test_reset_password_takes_no_password_argument(database_url, program, ann):
    out = _cli(database_url, "users", "reset-password", "--email", "ann@example.test", "--password",
               NEW_PASSWORD)
    assert out.exit_code == 2 and "No such option" in out.output


@pytest.mark.parametrize("args, stdin, message", [
    (["reset-password", "--email", "ann@example.test", "--password-stdin"], "short\n", "invalid_password"),
    (["reset-password", "--email", "ann@example.test", "--password-stdin"], "z" * 1025 + "\n", "invalid_password"),
    (["reset-password", "--email", "nobody@example.test", "--password-stdin"], NEW_PASSWORD + "\n",
     "user_not_found"),
    (["disable", "--email", "nobody@example.test"], None, "user_not_found"),
    (["enable", "--email", "nobody@example.test"], None, "user_not_found"),
])
def test_refusals_are_clean_and_change_nothing(app, database_url, program, ann, args, stdin, message):
    browser = _signed_in(app, "ann@example.test")
    out = _cli(database_url, "users", *args, stdin=stdin)
    assert out.exit_code != 0 and message in out.output and "Traceback" not in out.output
    assert _is_in(browser, program)
    assert "Log in" not in text(browser.get("/dashboard/account"))
