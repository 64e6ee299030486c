"""Outbound webhook subscriptions (also Zapier REST-hook subscribe/unsubscribe) and deliveries."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request

from referflow.actions import webhooks
from referflow.api.operations import Caller, db_session, int_arg, operation
from referflow.domain.timeutil import to_rfc3339
from referflow.storage.models import DeliveryAttempt, OutboxEvent, WebhookDelivery, WebhookSubscription

bp = Blueprint("webhooks", __name__)
# What a subscription request must hold: the API checks its body against it, the dashboard its form.
SUBSCRIBE_REQUEST = "create-webhook-subscription.request"


def _subscription(sub: WebhookSubscription, with_secret: bool = False) -> dict[str, Any]:
    out = {"id": sub.id, "url": sub.url, "events": sub.events, "active": sub.active,
           "disabled_reason": sub.disabled_reason, "failing_since": to_rfc3339(sub.failing_since),
           "created_at": to_rfc3339(sub.created_at)}
    if with_secret:
        out["secret"] = sub.secret
        out["signing_key"] = webhooks.signing_key(sub)
    return out


def _delivery(d: WebhookDelivery, attempts: list[DeliveryAttempt] | None = None) -> dict[str, Any]:
    event = db_session().get(OutboxEvent, d.outbox_id)
    out: dict[str, Any] = {
        "id": d.id, "subscription_id": d.subscription_id, "event_id": event.event_id,
        "event_type": event.type, "status": d.status, "attempts": d.attempts,
        "next_attempt_at": to_rfc3339(d.next_attempt_at), "last_status_code": d.last_status_code,
        "last_error": d.last_error, "delivered_at": to_rfc3339(d.delivered_at),
        "created_at": to_rfc3339(d.created_at)}
    if attempts is not None:
        out["attempt_log"] = [{"at": to_rfc3339(a.at), "status_code": a.status_code,
                               "error": a.error, "duration_ms": a.duration_ms} for a in attempts]
    return out


@operation(bp, "createWebhookSubscription", "POST", "/v1/webhooks", tag="webhooks", status=201,
           request_schema=SUBSCRIBE_REQUEST, response="webhook-subscription",
           summary="Subscribe a URL to events; the signing secret is returned once "
                   "(a URL the program has an active subscription to: 409)")
def create_subscription(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    allow = current_app.extensions["referflow"].settings.allow_private_webhook_urls
    return _subscription(webhooks.create_subscription(db_session(), caller.ctx, body, allow),
                         with_secret=True)


@operation(bp, "listWebhookSubscriptions", "GET", "/v1/webhooks", tag="webhooks",
           response="webhook-subscription-list", summary="List webhook subscriptions")
def list_subscriptions(caller: Caller, body: None) -> dict[str, Any]:
    return {"items": [_subscription(s) for s in webhooks.list_subscriptions(db_session(), caller.ctx)]}


@operation(bp, "deleteWebhookSubscription", "DELETE", "/v1/webhooks/<subscription_id>",
           tag="webhooks", response="webhook-subscription-deleted",
           summary="Delete a webhook subscription (REST-hook unsubscribe)")
def delete_subscription(caller: Caller, body: None, subscription_id: str) -> dict[str, Any]:
    webhooks.delete_subscription(db_session(), caller.ctx, subscription_id)
    return {"id": subscription_id, "deleted": True}


@operation(bp, "listWebhookDeliveries", "GET", "/v1/webhooks/<subscription_id>/deliveries",
           tag="webhooks", response="webhook-delivery-list",
           summary="The latest deliveries of a subscription with every attempt")
def list_deliveries(caller: Caller, body: None, subscription_id: str) -> dict[str, Any]:
    rows = webhooks.deliveries_of(db_session(), caller.ctx, subscription_id)
    return {"items": [_delivery(d, attempts) for d, attempts in rows]}


@operation(bp, "replayWebhookDelivery", "POST", "/v1/webhook-deliveries/<delivery_id>/replay",
           tag="webhooks", response="webhook-delivery",
           summary="Deliver again from the start of the retry schedule")
def replay_delivery(caller: Caller, body: None, delivery_id: str) -> dict[str, Any]:
    return _delivery(webhooks.replay(db_session(), caller.ctx, delivery_id))


@operation(bp, "listEvents", "GET", "/v1/events", tag="webhooks", response="event-list",
           query=("type", "limit"),
           summary="The latest events of the program, newest first (trigger samples and polling)")
def list_events(caller: Caller, body: None) -> dict[str, Any]:
    kind = request.args.get("type")
    return {"items": webhooks.latest_events(db_session(), caller.ctx, kind, int_arg("limit", 10, 1, 100))}
