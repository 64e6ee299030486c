"""The user's own account: change the password, sign out everywhere (docs/dashboard.md)."""

from __future__ import annotations

from typing import Any

from flask import flash, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from referflow.actions import users
from referflow.api.operations import db_session
from referflow.dashboard.auth import (
    count_failure,
    failure_buckets,
    logged_in,
    refuse_if_over,
    start_session,
)
from referflow.dashboard.blueprint import bp
from referflow.errors import ApiError, Unauthorized


def _page(status: int = 200, error: str | None = None) -> tuple[str, int]:
    return render_template("dashboard/account.html", error=error,
                           min_password=users.MIN_PASSWORD, max_password=users.MAX_PASSWORD), status


@bp.route("/account")
@logged_in
def account() -> Any:
    """Show the account: its password form and the sign-out-everywhere button."""
    return _page()


@bp.route("/account/password", methods=["POST"])
@logged_in
def account_password() -> Any:
    """Change the password (the current one first, within the login's limits); this session
    stays, every other one ends."""
    new = request.form.get("new_password", "")
    if new != request.form.get("repeat_password", ""):
        return _page(422, "the new password and its repeat differ")
    buckets = failure_buckets(g.user.email)
    refuse_if_over(buckets)
    try:
        user = users.change_password(db_session(), g.user.id, request.form.get("current_password", ""), new)
    except Unauthorized as exc:
        count_failure(buckets)
        return _page(401, exc.message)
    except ApiError as exc:
        db_session().rollback()
        return _page(422, exc.message)
    start_session(user)
    flash("Password changed. Every other session of this account is signed out.", "success")
    return redirect(url_for("dashboard.account"))


@bp.route("/account/sign-out-everywhere", methods=["POST"])
@logged_in
def account_sign_out_everywhere() -> Response:
    """End every session of the account, this one included."""
    users.end_sessions(db_session(), g.user.id)
    session.clear()
    flash("You are signed out everywhere, on this browser too.", "success")
    return redirect(url_for("dashboard.login"))
