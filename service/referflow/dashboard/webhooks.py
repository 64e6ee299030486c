"""Webhooks: the program's subscriptions, the failing ones first; owners add and remove
endpoints (with the API's use cases: one URL guard, one secret); replaying deliveries."""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from referflow.actions import webhooks
from referflow.actions.events import EVENT_TYPES
from referflow.api.operations import db_session
from referflow.api.webhooks import SUBSCRIBE_REQUEST
from referflow.dashboard.auth import require
from referflow.dashboard.blueprint import bp
from referflow.errors import ApiError, Conflict, ValidationFailed
from referflow.providers.safe_http import HTTPS_REQUIRED, REFUSED, refused_for_plain_http
from referflow.storage.models import OutboxEvent

log = logging.getLogger("referflow.dashboard")
# The form field a refusal without a path is about (the URL guard's, the event-type check's).
REFUSAL_FIELD = {REFUSED: "url", HTTPS_REQUIRED: "url", "unknown_event_type": "events"}


def _page(status: int = 200, form: dict[str, Any] | None = None, errors: list[dict[str, str]] | None = None,
          created: Any = None) -> tuple[str, int]:
    subs = webhooks.list_subscriptions(db_session(), g.program_ctx)
    allow_private = current_app.extensions["referflow"].settings.allow_private_webhook_urls
    # http endpoints subscribed before production took https only: every delivery is refused
    needs_https = {s.id for s in subs if s.active and refused_for_plain_http(s.url, allow_private)}
    failing = [s for s in subs if s.failing_since is not None or not s.active or s.id in needs_https]
    healthy = [s for s in subs if s not in failing]
    return render_template(
        "dashboard/webhooks.html", failing=failing, healthy=healthy, needs_https=needs_https,
        event_types=EVENT_TYPES,
        form=form or {"url": "", "events": list(EVENT_TYPES)}, errors=errors or [], created=created,
        signing_key=webhooks.signing_key(created) if created else None), status


@bp.route("/p/<program_id>/webhooks", endpoint="webhooks")
@require("viewer")
def webhooks_page(program_id: str) -> Any:
    """List subscriptions; those failing or disabled come first. Owners get the form that adds one."""
    return _page()


@bp.route("/p/<program_id>/webhooks", methods=["POST"])
@require("owner")
def webhooks_add(program_id: str) -> Any:
    """Subscribe an endpoint as the API does; show its signing secret this once (never stored)."""
    form = {"url": request.form.get("url", "").strip(), "events": request.form.getlist("events")}
    # Every box ticked is every event, those added to referflow later too: the API's "*".
    body = {**form, "events": ["*"]} if set(form["events"]) == set(EVENT_TYPES) else form
    services = current_app.extensions["referflow"]
    try:
        services.schemas.validate(SUBSCRIBE_REQUEST, body)  # the API's request contract
        sub = webhooks.create_subscription(db_session(), g.program_ctx, body,
                                           services.settings.allow_private_webhook_urls)
    except (ValidationFailed, Conflict) as exc:  # a refused URL or events; a URL subscribed already
        db_session().rollback()
        return _page(exc.status, form, _errors(exc))
    log.info("user %s added webhook subscription %s of %s", g.user.id, sub.id, program_id)
    flash(f"Endpoint {sub.url} added: it receives the events that happen from now on.", "success")
    return _page(201, created=sub)


def _errors(exc: ApiError) -> list[dict[str, str]]:
    """Return the refusal's messages, each with the form field it is about ("" for none)."""
    found = [(str(e.get("path", "")), str(e.get("message", ""))) for e in exc.errors if isinstance(e, dict)]
    if not found:
        return [{"field": REFUSAL_FIELD.get(exc.code, ""), "message": exc.message}]
    return [{"field": path.partition("/")[2].partition("/")[0], "message": message} for path, message in found]


@bp.route("/p/<program_id>/webhooks/<subscription_id>/remove")
@require("owner")
def webhooks_remove_confirm(program_id: str, subscription_id: str) -> Any:
    """Ask before removing an endpoint (a page of its own: no script needed)."""
    sub = webhooks.get_subscription(db_session(), g.program_ctx, subscription_id)
    return render_template("dashboard/webhook_remove.html", sub=sub)


@bp.route("/p/<program_id>/webhooks/<subscription_id>/remove", methods=["POST"])
@require("owner")
def webhooks_remove(program_id: str, subscription_id: str) -> Response:
    """Remove an endpoint as the API does: nothing more is sent to it."""
    webhooks.delete_subscription(db_session(), g.program_ctx, subscription_id)
    log.info("user %s removed webhook subscription %s of %s", g.user.id, subscription_id, program_id)
    flash("Endpoint removed: nothing more is sent to it.", "success")
    return redirect(url_for("dashboard.webhooks", program_id=program_id))


@bp.route("/p/<program_id>/webhooks/<subscription_id>")
@require("viewer")
def webhooks_deliveries(program_id: str, subscription_id: str) -> Any:
    """Show a subscription's latest deliveries with every attempt."""
    rows = webhooks.deliveries_of(db_session(), g.program_ctx, subscription_id)
    sub = next((s for s in webhooks.list_subscriptions(db_session(), g.program_ctx)
                if s.id == subscription_id), None)  # None: deleted since
    events = {d.outbox_id: db_session().get(OutboxEvent, d.outbox_id) for d, _attempts in rows}
    return render_template("dashboard/deliveries.html", subscription_id=subscription_id, sub=sub,
                           rows=rows, events=events)


@bp.route("/p/<program_id>/webhooks/deliveries/<delivery_id>/replay", methods=["POST"])
@require("reviewer")
def webhooks_replay(program_id: str, delivery_id: str) -> Response:
    """Send a delivery again from the start of its retry schedule."""
    delivery = webhooks.replay(db_session(), g.program_ctx, delivery_id)
    log.info("user %s replayed delivery %s of %s", g.user.id, delivery.id, program_id)
    flash(f"Delivery {delivery.id} will be sent again shortly.", "success")
    return redirect(url_for("dashboard.webhooks_deliveries", program_id=program_id,
                            subscription_id=delivery.subscription_id))
