"""Webhooks: the program's subscriptions, the failing ones first, and replaying deliveries."""

from __future__ import annotations

import logging
from typing import Any

from flask import flash, g, redirect, render_template, url_for
from werkzeug.wrappers import Response

from referflow.actions import webhooks
from referflow.api.operations import db_session
from referflow.dashboard.auth import require
from referflow.dashboard.blueprint import bp
from referflow.storage.models import OutboxEvent

log = logging.getLogger("referflow.dashboard")


@bp.route("/p/<program_id>/webhooks", endpoint="webhooks")
@require("viewer")
def webhooks_page(program_id: str) -> Any:
    """List subscriptions; those failing or disabled come first."""
    subs = webhooks.list_subscriptions(db_session(), g.program_ctx)
    failing = [s for s in subs if s.failing_since is not None or not s.active]
    healthy = [s for s in subs if s not in failing]
    return render_template("dashboard/webhooks.html", failing=failing, healthy=healthy)


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
