"""Dashboard login, sessions, CSRF, rate limits, roles per program, switching, and the CLI."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner

from referflow.actions import users
from referflow.app import create_app
from referflow.cli import main
from referflow.storage.models import User
from tests.conftest import make_program
from tests.dashboard_helpers import PASSWORD, csrf_token, login, make_user, post_form, text
from tests.live import service_env


@pytest.fixture()
def program(client):
    return make_program(client)


def _page(client, program_id, page="reviews"):
    return client.get(f"/dashboard/p/{program_id}/{page}")


def test_login_with_any_case_opens_the_first_program(app, client, program):
    make_user(app, "Ann.Owner@Example.test", role="viewer", program_ids=program.program_id)
    response = login(client, "  ann.owner@EXAMPLE.test")
    assert response.headers["Location"] == "/dashboard/"
    first = client.get("/dashboard/")
    assert first.status_code == 302 and program.program_id in first.headers["Location"]
    page = client.get(first.headers["Location"])
    assert page.status_code == 200 and "Ann.Owner@Example.test" in text(page)


def test_session_cookie_is_httponly_lax_and_secure_over_https(app, program):
    make_user(app, "ann@example.test", program_ids=program.program_id)
    plain = login(app.test_client(), "ann@example.test")
    cookie = plain.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    tls = app.test_client()
    token = csrf_token(tls, "https://dash.example.test/dashboard/login")
    secure = tls.post("https://dash.example.test/dashboard/login",
                      data={"email": "ann@example.test", "password": PASSWORD, "csrf_token": token},
                      headers={"Referer": "https://dash.example.test/dashboard/login"})
    assert secure.status_code == 302 and "; Secure" in secure.headers["Set-Cookie"]


@pytest.mark.parametrize("email, password", [
    ("ann@example.test", "wrong password here"),
    ("nobody@example.test", PASSWORD),
    ("ann@example.test", ""),
    ("ann@example.test", "x" * 5000),
    ("", ""),
])
def test_failed_logins_answer_401_with_one_message(app, client, program, email, password):
    make_user(app, "ann@example.test", program_ids=program.program_id)
    response = login(client, email, password, expect=401)
    assert "do not match an account" in text(response)
    assert "Set-Cookie" not in response.headers or "uid" not in response.headers["Set-Cookie"]
    assert client.get("/dashboard/").headers["Location"].startswith("/dashboard/login")


def test_failures_are_limited_per_email_even_for_the_right_password(settings, program):
    app = create_app(settings.with_overrides(rate_limit_auth_failures="3/minute"))
    try:
        client = app.test_client()
        make_user(app, "ann@example.test", role="owner", program_ids=[])
        for _ in range(3):
            login(client, "ANN@example.test", "wrong password here", expect=401)
        refused = login(client, "ann@example.test", expect=429)
        assert int(refused.headers["Retry-After"]) >= 1
        assert "Content-Security-Policy" in refused.headers and "Slow down" in text(refused)
        other = app.test_client()
        login(other, "bob@example.test", "wrong password here", expect=429)  # same address
    finally:
        app.extensions["referflow"].db.dispose()


def test_missing_or_wrong_csrf_token_is_400(app, client, program):
    make_user(app, "ann@example.test", program_ids=program.program_id)
    bare = client.post("/dashboard/login", data={"email": "ann@example.test", "password": PASSWORD})
    assert bare.status_code == 400 and "reload the page" in text(bare)
    wrong = client.post("/dashboard/login", data={"email": "ann@example.test", "password": PASSWORD,
                                                  "csrf_token": "forged"})
    assert wrong.status_code == 400
    login(client, "ann@example.test")
    decide = client.post(f"/dashboard/p/{program.program_id}/reviews/decide",
                         data={"decision": "approve", "referral_id": "ref_x"})
    assert decide.status_code == 400
    assert client.post("/dashboard/logout").status_code == 400


def test_the_json_api_takes_no_csrf_token(client, program):
    response = program.post("/v1/links", {"advocate": {"external_id": "a1", "email": "a1@mail.test"}})
    assert response.status_code == 201
    assert "Content-Security-Policy" not in response.headers


def test_logout_is_a_post_that_ends_the_session(app, client, program):
    make_user(app, "ann@example.test", program_ids=program.program_id)
    login(client, "ann@example.test")
    assert client.get("/dashboard/logout").status_code == 405
    out = post_form(client, "/dashboard/logout", page=f"/dashboard/p/{program.program_id}/reviews")
    assert out.status_code == 302 and out.headers["Location"] == "/dashboard/login"
    assert _page(client, program.program_id).status_code == 302


def test_not_logged_in_goes_to_login_and_back(app, client, program):
    make_user(app, "ann@example.test", program_ids=program.program_id)
    target = f"/dashboard/p/{program.program_id}/webhooks"
    response = client.get(target)
    assert response.status_code == 302 and "/dashboard/login?next=" in response.headers["Location"]
    token = csrf_token(client)
    back = client.post("/dashboard/login", data={"email": "ann@example.test", "password": PASSWORD,
                                                 "csrf_token": token, "next": target})
    assert back.headers["Location"] == target


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/v1/program",
                                    "/dashboard/\\evil"])
def test_login_never_sends_elsewhere(app, client, program, target):
    make_user(app, "ann@example.test", program_ids=program.program_id)
    token = csrf_token(client)
    response = client.post("/dashboard/login", data={"email": "ann@example.test", "password": PASSWORD,
                                                     "csrf_token": token, "next": target})
    assert response.headers["Location"] == "/dashboard/"


def test_strict_security_headers_on_every_dashboard_response(app, client, program):
    make_user(app, "ann@example.test", program_ids=program.program_id)
    for path in ("/dashboard/login", "/dashboard/nothing/here", "/dashboard/static/dashboard.css"):
        with client.get(path) as response:
            csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/dashboard/nothing/here").status_code == 404
    page = text(client.get("/dashboard/login"))
    assert "<script>" not in page and " style=" not in page and "http://" not in page.replace(
        "http://www.w3.org", "")


def test_passwords_are_argon2_and_rehashed_when_parameters_change(app, client, program):
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    db = app.extensions["referflow"].db
    with db.session() as session:
        user = users.create_user(session, "ann@example.test", PASSWORD, "owner",
                                 [program.program_id], hasher=weak)
        old = user.password_hash
    assert old.startswith("$argon2id$") and PASSWORD not in old
    login(client, "ann@example.test")
    with db.session() as session:
        again = session.get(User, user.id)
        assert again.password_hash != old and not users.HASHER.check_needs_rehash(again.password_hash)
        assert again.last_login_at is not None


def test_disabled_or_removed_users_are_out(app, client, program):
    made = make_user(app, "ann@example.test", role="owner", program_ids=program.program_id)
    make_user(app, "bob@example.test", role="owner", program_ids=program.program_id)
    login(client, "ann@example.test")
    with app.extensions["referflow"].db.session() as session:
        users.remove_user(session, made.id)
    assert _page(client, program.program_id).status_code == 302  # the old cookie opens nothing
    make_user(app, "cy@example.test", role="owner", program_ids=program.program_id)
    with app.extensions["referflow"].db.session() as session:
        session.get(User, users.find_user(session, "CY@example.test").id).disabled = True
        session.commit()
    login(app.test_client(), "cy@example.test", expect=401)


@pytest.mark.parametrize("role, allowed, refused", [
    ("viewer", ["reviews", "webhooks", "settings"], ["users", "settings/keys"]),
    ("reviewer", ["reviews", "webhooks", "settings"], ["users", "settings/keys"]),
    ("owner", ["reviews", "webhooks", "settings", "users", "settings/keys"], []),
])
def test_pages_by_role(app, client, program, role, allowed, refused):
    make_user(app, "ann@example.test", role=role, program_ids=program.program_id)
    login(client, "ann@example.test")
    for page in allowed:
        assert _page(client, program.program_id, page).status_code == 200, page
    for page in refused:
        response = _page(client, program.program_id, page)
        assert response.status_code == 403 and "Not allowed" in text(response), page
    nav = text(_page(client, program.program_id))
    assert ('>Users</a>' in nav) == (role == "owner")
    assert 'aria-current="page">Reviews</a>' in nav


def test_an_agency_switches_programs_and_sees_no_other(app, client):
    x, y, z = (make_program(client, name=n) for n in ("Xeno shop", "Yak shop", "Zed shop"))
    make_user(app, "agency@example.test", role="reviewer", program_ids=[x.program_id, y.program_id])
    make_user(app, "zed@example.test", role="owner", program_ids=z.program_id)
    login(client, "agency@example.test")
    page = text(_page(client, x.program_id, "webhooks"))
    assert "Xeno shop" in page and "Yak shop" in page and "Zed shop" not in page
    switched = client.get(f"/dashboard/switch?program={y.program_id}&section=dashboard.webhooks")
    assert switched.headers["Location"] == f"/dashboard/p/{y.program_id}/webhooks"
    assert client.get(switched.headers["Location"]).status_code == 200
    for page_name in ("reviews", "webhooks", "settings", "users", "webhooks/whk_x"):
        assert _page(client, z.program_id, page_name).status_code == 404
    assert _page(client, "prg_unknown").status_code == 404
    sneaky = client.get(f"/dashboard/switch?program={z.program_id}")
    assert sneaky.headers["Location"] == "/dashboard/"
    odd = client.get(f"/dashboard/switch?program={y.program_id}&section=dashboard.nope")
    assert odd.headers["Location"].startswith(f"/dashboard/p/{y.program_id}/")


def test_a_user_without_programs_sees_a_page_saying_so(app, client):
    make_user(app, "lonely@example.test", role="viewer", program_ids=[])
    login(client, "lonely@example.test")
    page = client.get("/dashboard/")
    assert page.status_code == 200 and "No programs yet" in text(page)


def _cli(database_url, *args, stdin=None):
    return CliRunner().invoke(main, list(args), input=stdin, env=service_env(database_url))


def test_cli_creates_lists_changes_and_removes_users(app, client, database_url):
    x, y = make_program(client, name="X"), make_program(client, name="Y")
    made = _cli(database_url, "users", "create", "--email", "Ann@Example.test", "--role", "owner",
                "--program", x.program_id, "--program", y.program_id, "--password-stdin",
                stdin=PASSWORD + "\n")
    assert made.exit_code == 0, made.output
    login(client, "ann@example.test")
    listed = _cli(database_url, "users", "list", "--json")
    assert '"email": "Ann@Example.test"' in listed.output and PASSWORD not in listed.output
    twice = _cli(database_url, "users", "create", "--email", "ANN@example.test", "--role", "viewer",
                 "--program", x.program_id, "--password-stdin", stdin=PASSWORD + "\n")
    assert twice.exit_code != 0 and "user_exists" in twice.output
    last = _cli(database_url, "users", "set-role", "--email", "ann@example.test",
                "--program", x.program_id, "--role", "viewer")
    assert last.exit_code != 0 and "last_owner" in last.output
    _cli(database_url, "users", "create", "--email", "bob@example.test", "--role", "owner",
         "--program", x.program_id, "--program", y.program_id, "--password-stdin", stdin=PASSWORD + "\n")
    assert _cli(database_url, "users", "set-role", "--email", "ann@example.test", "--program",
                x.program_id, "--role", "viewer").exit_code == 0
    assert _page(client, x.program_id, "users").status_code == 403
    assert _cli(database_url, "users", "remove", "--email", "ann@example.test").exit_code == 0
    assert _page(client, x.program_id).status_code == 302


@pytest.mark.parametrize("args, stdin, message", [
    (["--email", "not-an-email"], PASSWORD + "\n", "invalid_email"),
    (["--email", "a@b.test"], "short\n", "invalid_password"),
    (["--email", "a@b.test", "--program", "prg_nope"], PASSWORD + "\n", "program_not_found"),
])
def test_cli_refuses_bad_input_cleanly(app, client, database_url, args, stdin, message):
    program = make_program(client)
    out = _cli(database_url, "users", "create", "--role", "viewer", "--program", program.program_id,
               "--password-stdin", *args, stdin=stdin)
    assert out.exit_code != 0 and message in out.output and "Traceback" not in out.output


def test_cli_prompt_asks_twice(app, client, database_url):
    program = make_program(client)
    out = _cli(database_url, "users", "create", "--email", "ann@example.test", "--role", "viewer",
               "--program", program.program_id, stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert out.exit_code == 0, out.output
    login(client, "ann@example.test")
