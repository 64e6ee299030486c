"""Who is looking: login, logout, ``@logged_in`` and ``@require(role)`` for the pages of one program.

A session holds the user's id and session stamp (actions/users.py): a new stamp (a password
change, "sign out everywhere") ends every session holding the old one.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, current_app, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from referflow.actions import users
from referflow.actions.common import Actor, load_program
from referflow.api.operations import db_session
from referflow.dashboard.blueprint import bp
from referflow.domain.roles import allows, at_least

View = Callable[..., Any]
USER_KEY = "uid"
STAMP_KEY = "stamp"
LOGIN_ACTOR = "dashboard_user"


def current_user() -> Any:
    """Return the logged-in, active user of this request (or None), cached on ``g``."""
    if "user" not in g:
        g.user = _session_user()
    return g.user


def _session_user() -> Any:
    user_id, stamp = session.get(USER_KEY), session.get(STAMP_KEY)
    if not isinstance(user_id, str):
        return None
    user = users.session_user(db_session(), user_id, stamp) if isinstance(stamp, str) else None
    if user is None:  # signed out elsewhere, removed, disabled, or a cookie from before stamps
        session.clear()
    return user


def start_session(user: Any) -> None:
    """Log ``user`` in on this browser: a fresh session (and CSRF token) with their stamp."""
    session.clear()
    session[USER_KEY] = user.id
    session[STAMP_KEY] = user.session_stamp
    session.permanent = True
    g.user = user


def failure_buckets(email: str) -> list[tuple[str, str]]:
    """Return where a wrong password is counted: this address and this email."""
    return [("dashboard-ip", request.remote_addr or "-"), ("dashboard-email", users.login_key(email))]


def refuse_if_over(buckets: list[tuple[str, str]]) -> None:
    """Answer 429 when a bucket has had too many wrong passwords (even for a right one now)."""
    limits = current_app.extensions["referflow"].limits
    for bucket in buckets:
        limits.refuse_if_over(limits.auth_failures, *bucket)


def count_failure(buckets: list[tuple[str, str]]) -> None:
    """Count a wrong password in each bucket."""
    limits = current_app.extensions["referflow"].limits
    for bucket in buckets:
        limits.count(limits.auth_failures, *bucket)


def actor() -> Actor:
    """Return the history actor of the logged-in user: the id, never the email."""
    return Actor(LOGIN_ACTOR, current_user().id)


def can(permission: str) -> bool:
    """Tell whether the user's role on the current program has ``permission`` (for templates)."""
    return allows(g.get("role"), permission)


def logged_in(fn: View) -> View:
    """Let through any logged-in user (pages of the account, not of a program)."""

    @wraps(fn)
    def view(**kwargs: Any) -> Any:
        if current_user() is None:
            back = request.full_path.rstrip("?") if request.method == "GET" else None
            return redirect(url_for("dashboard.login", next=back))
        return fn(**kwargs)

    return view


def require(role: str) -> Callable[[View], View]:
    """Let through users with at least ``role`` on the program named in the URL.

    Sets ``g.user``, ``g.role``, ``g.program_ctx`` and ``g.programs`` (id, name) for the switcher.
    Not logged in: to the login page. Not a member: 404 (other programs are not revealed).
    Member with a weaker role: 403.
    """

    def decorate(fn: View) -> View:
        @wraps(fn)
        def view(program_id: str, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")))
            if user.must_change_password:  # an owner set it: a password of their own first
                return redirect(url_for("dashboard.account"))
            mine = users.memberships(db_session(), user.id)
            g.programs = [(m.program_id, m.program_name) for m in mine]
            g.role = next((m.role for m in mine if m.program_id == program_id), None)
            if g.role is None:
                abort(404)
            g.program_ctx = load_program(db_session(), program_id,
                                         current_app.extensions["referflow"].settings.secret_key)
            if not at_least(g.role, role):
                abort(403)
            return fn(program_id=program_id, **kwargs)

        return view

    return decorate


def _safe_next(target: str | None) -> str:
    """Return a local dashboard path to go to after login (never another site)."""
    if target and target.startswith("/dashboard/") and not target.startswith("//") \
            and "\\" not in target:
        return target
    return url_for("dashboard.index")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Show the login form; check the email and password, slowly and within limits."""
    if request.method == "GET":
        if current_user() is not None:
            return redirect(_safe_next(request.args.get("next")))
        return render_template("dashboard/login.html", next=request.args.get("next", ""))
    email = request.form.get("email", "")[:users.MAX_EMAIL]
    buckets = failure_buckets(email)
    refuse_if_over(buckets)
    user = users.authenticate(db_session(), email, request.form.get("password", ""))
    if user is None:
        count_failure(buckets)
        return render_template("dashboard/login.html", next=request.form.get("next", ""),
                               email=email, error="That email and password do not match an account."), 401
    start_session(user)
    return redirect(_safe_next(request.form.get("next")))


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    """Forget the login."""
    session.clear()
    return redirect(url_for("dashboard.login"))
