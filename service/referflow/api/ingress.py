"""Provider webhooks in: receiveStripeWebhook, receiveShopifyWebhook, receiveHubspotWebhook,
receiveKlaviyoWebhook. Verified by the provider's signature (no API key), recorded, 2xx fast."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from flask import Blueprint, current_app, request

from referflow.actions import inbound
from referflow.api.operations import PUBLIC, Caller, db_session, limit_public, operation
from referflow.domain.timeutil import to_rfc3339
from referflow.errors import UnsupportedMediaType
from referflow.providers.receivers import Delivery

bp = Blueprint("ingress", __name__)


def _delivery() -> Delivery:
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("provider webhooks are application/json")
    public = current_app.extensions["referflow"].settings.public_url
    url = f"{public}{request.full_path.rstrip('?')}" if public else request.url
    # werkzeug's Headers is a case-insensitive mapping of str to str, untyped as one
    headers = cast(Mapping[str, str], request.headers)
    return Delivery(raw=request.get_data(cache=True), headers=headers, method=request.method,
                    url=url)


def _receiver(provider: str, operation_id: str, name: str) -> None:
    @operation(bp, operation_id, "POST", f"/v1/ingress/<program_id>/{provider}", auth=PUBLIC,
               tag="ingress", response="ingress-receipt",
               summary=f"Receive {name} webhooks for a program (verified by {name}'s signature)")
    def receive(caller: Caller, body: None, program_id: str) -> dict[str, Any]:
        limit_public("ingress")  # before the signature check: forged floods stop here
        return inbound.receive(db_session(), program_id, provider, _delivery())

    receive.__name__ = f"receive_{provider}"


for _provider, _operation_id, _name in (
        ("stripe", "receiveStripeWebhook", "Stripe"), ("shopify", "receiveShopifyWebhook", "Shopify"),
        ("hubspot", "receiveHubspotWebhook", "HubSpot"),
        ("klaviyo", "receiveKlaviyoWebhook", "Klaviyo")):
    _receiver(_provider, _operation_id, _name)


@operation(bp, "listInboundEvents", "GET", "/v1/inbound-events", tag="ingress",
           response="inbound-event-list",
           summary="The latest provider events received, with what each did or why not")
def list_inbound(caller: Caller, body: None) -> dict[str, Any]:
    rows = inbound.inbound_list(db_session(), caller.ctx.id)
    return {"items": [{"id": r.id, "provider": r.provider, "event_id": r.event_id, "type": r.type,
                       "status": r.status, "outcome": r.outcome,
                       "received_at": to_rfc3339(r.received_at),
                       "processed_at": to_rfc3339(r.processed_at)} for r in rows]}
