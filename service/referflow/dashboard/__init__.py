"""The dashboard: server-rendered pages under /dashboard/ for the people who run programs.

Pages call use cases (``actions/``), never SQL. Each page of a program lives under
``/dashboard/p/<program_id>/`` and is guarded by ``auth.require(role)``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BuildError
from werkzeug.wrappers import Response

from referflow.actions import users
from referflow.api.operations import db_session
from referflow.dashboard import (  # noqa: F401 (pages)
    account,
    insights,
    members,
    program_settings,
    reviews,
    security,
    webhooks,
)
from referflow.dashboard.auth import can, current_user
from referflow.dashboard.blueprint import bp
from referflow.domain.roles import at_least
from referflow.errors import ApiError, TooManyRequests

# The page modules above register their views on bp when imported.
log = logging.getLogger("referflow.dashboard")

# The navigation of a program: (endpoint, label, weakest role that sees it). Pages not built yet
# are skipped. A sub-page whose endpoint starts with "<endpoint>_" marks its entry as current.
NAV = (
    ("dashboard.overview", "Overview", "viewer"),
    ("dashboard.referrals", "Referrals", "viewer"),
    ("dashboard.reviews", "Reviews", "viewer"),
    ("dashboard.advocates", "Advocates", "viewer"),
    ("dashboard.rewards", "Rewards", "viewer"),
    ("dashboard.webhooks", "Webhooks", "viewer"),
    ("dashboard.settings", "Settings", "viewer"),
    ("dashboard.users", "Users", "owner"),
)
ERROR_TEXT = {
    400: "The request could not be used. If you sent a form, reload the page and try again.",
    403: "Your role on this program does not allow that.",
    404: "There is nothing here, or it belongs to a program you are not a member of.",
    405: "That address does not take this kind of request.",
    429: "Too many attempts. Wait a little and try again.",
}


def init_app(app: Flask) -> None:
    """Register the dashboard: its pages, sessions, CSRF and security headers."""
    security.init_app(app, app.extensions["referflow"].settings)
    app.register_blueprint(bp)


def nav_items() -> list[dict[str, Any]]:
    """Return the current program's navigation entries the user may open."""
    ctx = g.get("program_ctx")
    if ctx is None:
        return []
    endpoint = request.endpoint or ""
    items = []
    for name, label, role in NAV:
        if not at_least(g.get("role"), role):
            continue
        try:
            url = url_for(name, program_id=ctx.id)
        except BuildError:  # a page not built (yet)
            continue
        # a section's own pages (forms, detail pages) live under its address: aria-current
        # "page" on the section's page itself, "true" on the pages within it
        within = endpoint.startswith(name + "_") or request.path.startswith(url.rstrip("/") + "/")
        current = "page" if endpoint == name else "true" if within else None
        items.append({"endpoint": name, "label": label, "url": url, "current": current})
    return items


def section() -> str:
    """Return the nav endpoint of the page being shown (the switcher keeps it)."""
    current = [item["endpoint"] for item in nav_items() if item["current"]]
    return current[0] if current else ""


@bp.app_template_filter("when")
def when(value: datetime | None) -> str:
    """Format a time for people: UTC, to the minute."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "–"


@bp.context_processor
def _globals() -> dict[str, Any]:
    return {"nav_items": nav_items, "can": can, "section": section}


@bp.before_request
def _check_csrf() -> None:
    security.protect()


def first_page(program_id: str) -> str:
    """Return the URL of the first page of a program that exists."""
    for name, _label, _role in NAV:
        try:
            return url_for(name, program_id=program_id)
        except BuildError:
            continue
    return url_for("dashboard.index")


@bp.route("/")
def index() -> Any:
    """Open the first program of the user, or say there is none."""
    user = current_user()
    if user is None:
        return redirect(url_for("dashboard.login"))
    mine = users.memberships(db_session(), user.id)
    if not mine:
        return render_template("dashboard/no_programs.html")
    return redirect(first_page(mine[0].program_id))


@bp.route("/switch")
def switch() -> Response:
    """Open another program (the header's switcher), on the same page when it has one."""
    user = current_user()
    if user is None:
        return redirect(url_for("dashboard.login"))
    program_id = request.args.get("program", "")
    if users.role_on(db_session(), user.id, program_id) is None:
        return redirect(url_for("dashboard.index"))
    page = request.args.get("section", "")
    if page in {name for name, _label, _role in NAV}:
        try:
            return redirect(url_for(page, program_id=program_id))
        except BuildError:
            pass
    return redirect(first_page(program_id))


@bp.route("/<path:_rest>")
def not_found(_rest: str) -> Any:
    """Answer unknown dashboard addresses with the HTML 404 page (405 for a form's address)."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    try:
        endpoint, _args = adapter.match(method="POST")
    except HTTPException:
        endpoint = None
    status = 405 if endpoint not in (None, "dashboard.not_found") else 404
    return _error_page(status, ERROR_TEXT[status])


def _error_page(status: int, message: str) -> tuple[str, int]:
    return render_template("dashboard/error.html", status=status, message=message), status


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Any:
    body, status = _error_page(exc.status, exc.message if exc.status != 404 else ERROR_TEXT[404])
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else {}
    return body, status, headers


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Any:
    status = exc.code or 500
    return _error_page(status, ERROR_TEXT.get(status, exc.description or exc.name))


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Any:
    log.exception("unhandled dashboard error: %s", type(exc).__name__)
    return _error_page(500, "Something went wrong on our side. The error is logged.")

