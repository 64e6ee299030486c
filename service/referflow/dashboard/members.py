"""Users: the owners of a program list its members, add them with a role, change or remove them,
and manage a member's account (disable, enable, reset the password) when they own all its programs."""

from __future__ import annotations

from typing import Any

from flask import flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from referflow.actions import accounts, users
from referflow.api.operations import db_session
from referflow.dashboard.auth import require
from referflow.dashboard.blueprint import bp
from referflow.domain.roles import Role
from referflow.errors import ApiError, Forbidden, NotFound


def _page(status: int = 200, error: str | None = None, form: dict[str, str] | None = None) -> tuple[str, int]:
    return render_template("dashboard/members.html", members=users.members_of(db_session(), g.program_ctx.id),
                           roles=list(Role), error=error, form=form or {}), status


@bp.route("/p/<program_id>/users", endpoint="users")
@require("owner")
def users_page(program_id: str) -> Any:
    """List the program's members and their roles."""
    return _page()


@bp.route("/p/<program_id>/users", methods=["POST"])
@require("owner")
def users_add(program_id: str) -> Any:
    """Add a member by email (a new account needs an initial password)."""
    email, role = request.form.get("email", "").strip(), request.form.get("role", "")
    try:
        users.add_member(db_session(), program_id, email, role, request.form.get("password") or None)
    except ApiError as exc:
        db_session().rollback()
        return _page(422, exc.message, {"email": email, "role": role})
    flash(f"{email} is now {role} of this program. An existing account keeps its password.", "success")
    return redirect(url_for("dashboard.users", program_id=program_id))


@bp.route("/p/<program_id>/users/<user_id>/role", methods=["POST"])
@require("owner")
def users_set_role(program_id: str, user_id: str) -> Response:
    """Change a member's role (the last owner stays owner)."""
    if users.role_on(db_session(), user_id, program_id) is None:
        flash("That user is not a member of this program.", "error")
    else:
        _try(lambda: users.set_role(db_session(), user_id, program_id, request.form.get("role", "")),
             "Role changed.")
    return redirect(url_for("dashboard.users", program_id=program_id))


@bp.route("/p/<program_id>/users/<user_id>/remove", methods=["POST"])
@require("owner")
def users_remove(program_id: str, user_id: str) -> Response:
    """Take a member off the program (the account stays, with its other programs)."""
    _try(lambda: users.remove_member(db_session(), program_id, user_id), "Member removed.")
    if user_id == g.user.id and users.role_on(db_session(), user_id, program_id) is None:
        return redirect(url_for("dashboard.index"))
    return redirect(url_for("dashboard.users", program_id=program_id))


def _try(change: Any, done: str) -> None:
    try:
        change()
        flash(done, "success")
    except ApiError as exc:
        db_session().rollback()
        flash(exc.message, "error")


def _by(program_id: str) -> accounts.Manager:
    return accounts.Manager(g.user.id, program_id)


def _account_page(user_id: str, status: int = 200, error: str | None = None) -> tuple[str, int]:
    """Render a member's account page; the forms only when this owner may manage the account."""
    try:
        user, refusal = accounts.managed_user(db_session(), user_id, _by(g.program_ctx.id)), None
    except Forbidden as exc:  # a member all the same: show the account and why the forms are not there
        user, refusal = users.get_user(db_session(), user_id), exc.message
    return render_template("dashboard/member_account.html", member=user, refusal=refusal, error=error,
                           role=users.role_on(db_session(), user_id, g.program_ctx.id),
                           min_password=users.MIN_PASSWORD, max_password=users.MAX_PASSWORD), status


@bp.route("/p/<program_id>/users/<user_id>")
@require("owner")
def users_account(program_id: str, user_id: str) -> Any:
    """Show a member's account: disable or enable it, set a new password (or why not)."""
    return _account_page(user_id)


@bp.route("/p/<program_id>/users/<user_id>/disable", methods=["POST"])
@require("owner")
def users_disable(program_id: str, user_id: str) -> Response:
    """Disable a member's account: no login, every session ended; the roles stay."""
    _try(lambda: accounts.disable_user(db_session(), user_id, _by(program_id)),
         "Account disabled: it cannot log in, and every session of it has ended.")
    return redirect(url_for("dashboard.users", program_id=program_id))


@bp.route("/p/<program_id>/users/<user_id>/enable", methods=["POST"])
@require("owner")
def users_enable(program_id: str, user_id: str) -> Response:
    """Let a disabled member's account log in again."""
    _try(lambda: accounts.enable_user(db_session(), user_id, _by(program_id)),
         "Account enabled: it can log in again.")
    return redirect(url_for("dashboard.users", program_id=program_id))


@bp.route("/p/<program_id>/users/<user_id>/password", methods=["POST"])
@require("owner")
def users_reset_password(program_id: str, user_id: str) -> Any:
    """Set a member's new password (typed twice); every session of the account ends."""
    new = request.form.get("new_password", "")
    if new != request.form.get("repeat_password", ""):
        return _account_page(user_id, 422, "the new password and its repeat differ")
    try:
        accounts.reset_password(db_session(), user_id, new, _by(program_id))
    except NotFound:
        raise
    except ApiError as exc:
        db_session().rollback()
        return _account_page(user_id, exc.status, exc.message)
    flash("Password set, and every session of that account ended: pass the password on by a safe "
          "channel.", "success")
    return redirect(url_for("dashboard.users", program_id=program_id))
