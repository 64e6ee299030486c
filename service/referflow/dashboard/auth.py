"""Who is looking: login, logout, and ``@require(role)`` for the pages of one program."""

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
LOGIN_ACTOR = "dashboard_user"


def current_user() -> Any:
    """Return the logged-in, active user of this request (or None), cached on ``g``."""
    if "user" not in g:
        user_id = session.get(USER_KEY)
        g.user = users.active_user(db_session(), user_id) if isinstance(user_id, str) else None
    return g.user


def actor() -> Actor:
    """Return the history actor of the logged-in user: the id, never the email."""
    return Actor(LOGIN_ACTOR, current_user().id)


def can(permission: str) -> bool:
    """Tell whether the user's role on the current program has ``permission`` (for templates)."""
    return allows(g.get("role"), permission)


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
    password = request.form.get("password", "")
    limits = current_app.extensions["referflow"].limits
    buckets = [("dashboard-ip", request.remote_addr or "-"), ("dashboard-email", users.login_key(email))]
    for bucket in buckets:
        limits.refuse_if_over(limits.auth_failures, *bucket)
    user = users.authenticate(db_session(), email, password)
    if user is None:
        for bucket in buckets:
            limits.count(limits.auth_failures, *bucket)
        return render_template("dashboard/login.html", next=request.form.get("next", ""),
                               email=email, error="That email and password do not match an account."), 401
    session.clear()  # a fresh session (and CSRF token) for the logged-in user
    session[USER_KEY] = user.id
    session.permanent = True
    return redirect(_safe_next(request.form.get("next")))


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    """Forget the login."""
    session.clear()
    return redirect(url_for("dashboard.login"))
