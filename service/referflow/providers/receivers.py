"""Provider webhooks in: verify on the raw body, split into events, name the dedupe key."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from referflow.errors import BadRequest, ValidationFailed
from referflow.jsonbody import loads_strict
from referflow.providers import signatures

STRIPE_TYPES = ("checkout.session.completed", "customer.created", "invoice.paid",
                "charge.succeeded", "charge.refunded", "refund.created", "charge.dispute.created")
SHOPIFY_TOPICS = ("customers/create", "orders/paid", "refunds/create")
HUBSPOT_TYPES = ("contact.creation", "contact.propertyChange", "deal.propertyChange")


@dataclass(frozen=True)
class Delivery:
    """What a provider sent, as the ingress needs it."""

    raw: bytes
    headers: Mapping[str, str]
    method: str
    url: str


@dataclass(frozen=True)
class ProviderEvent:
    """One event of a delivery: dedupe id, type and payload."""

    event_id: str
    type: str
    payload: dict[str, Any]


# inbound_events.event_id holds 255 characters, but the audit's actor id ("klaviyo:" + id) 200.
MAX_EVENT_ID = 190
MAX_TYPE = 100  # inbound_events.type


def _require(condition: bool, message: str, path: str = "/", code: str = "malformed_event") -> None:
    """Refuse a verified delivery whose shape is wrong at the top (422, a stable code)."""
    if not condition:
        raise ValidationFailed(message, code=code, errors=[{"path": path, "message": message}])


def _event_id(value: Any, path: str, missing: str = "missing_event_id") -> str:
    """Return a dedupe id (a non-empty string or an integer of at most MAX_EVENT_ID characters)."""
    _require(value is not None and value != "", f"{path} is missing", path, missing)
    ok = isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    _require(ok and len(str(value)) <= MAX_EVENT_ID,
             f"{path} must be a string or an integer of at most {MAX_EVENT_ID} characters", path)
    return str(value)


def stripe(delivery: Delivery, secrets: list[str], settings: Mapping[str, Any]) -> list[ProviderEvent]:
    """Stripe: one event per delivery; dedupe on ``event.id``."""
    signatures.verify_stripe(delivery.raw, delivery.headers.get("Stripe-Signature"), secrets,
                             time.time())
    event = loads_strict(delivery.raw)
    _require(isinstance(event, dict), "a Stripe event is a JSON object")
    event_id = _event_id(event.get("id"), "/id", "malformed_event")  # no id: not a Stripe event
    _require(isinstance(event["id"], str), "/id must be the Stripe event id (a string)", "/id")
    data = event.get("data")
    _require(isinstance(data, dict) and isinstance(data.get("object"), dict),
             "/data/object must be an object", "/data/object")
    if event.get("type") not in STRIPE_TYPES:
        raise ValidationFailed(f"unhandled Stripe event type {str(event.get('type'))[:100]!r}",
                               code="unknown_topic")
    return [ProviderEvent(event_id, event["type"], event)]


def shopify(delivery: Delivery, secrets: list[str], settings: Mapping[str, Any]) -> list[ProviderEvent]:
    """Shopify: the topic and event id are headers (``X-`` prefixed or not)."""
    headers = delivery.headers
    signatures.verify_shopify(delivery.raw, headers.get("X-Shopify-Hmac-Sha256")
                              or headers.get("Shopify-Hmac-Sha256"), secrets)
    topic = headers.get("X-Shopify-Topic") or headers.get("Shopify-Topic")
    event_id = _event_id(headers.get("X-Shopify-Event-Id") or headers.get("Shopify-Event-Id")
                         or headers.get("X-Shopify-Webhook-Id") or headers.get("Shopify-Webhook-Id"),
                         "X-Shopify-Event-Id")
    body = loads_strict(delivery.raw)
    _require(isinstance(body, dict), "a Shopify resource is a JSON object")
    if topic not in SHOPIFY_TOPICS:
        raise ValidationFailed(f"unhandled Shopify topic {str(topic)[:100]!r}", code="unknown_topic")
    return [ProviderEvent(event_id, str(topic), body)]


def hubspot(delivery: Delivery, secrets: list[str], settings: Mapping[str, Any]) -> list[ProviderEvent]:
    """HubSpot: a JSON array of events; dedupe on ``eventId``; unknown types are skipped."""
    signatures.verify_hubspot(delivery.method, delivery.url, delivery.raw, delivery.headers,
                              secrets, int(time.time() * 1000),
                              allow_legacy=bool(settings.get("allow_legacy_signatures")))
    events = loads_strict(delivery.raw)
    _require(isinstance(events, list) and all(isinstance(e, dict) for e in events),
             "a HubSpot delivery is a JSON array of event objects")
    ids = [_event_id(e.get("eventId"), f"/{i}/eventId") for i, e in enumerate(events)]
    known = [(i, e) for i, e in zip(ids, events, strict=True)
             if isinstance(e.get("subscriptionType"), str) and e["subscriptionType"] in HUBSPOT_TYPES]
    if events and not known:
        raise ValidationFailed("no handled HubSpot subscription type", code="unknown_topic")
    return [ProviderEvent(i, e["subscriptionType"], e) for i, e in known]


def klaviyo(delivery: Delivery, secrets: list[str], settings: Mapping[str, Any]) -> list[ProviderEvent]:
    """Klaviyo system webhooks: ``data`` items; the body's webhook id must match the header."""
    signatures.verify_klaviyo(delivery.raw, delivery.headers, secrets, time.time())
    body = loads_strict(delivery.raw)
    _require(isinstance(body, dict) and isinstance(body.get("data"), list),
             "a Klaviyo webhook is a JSON object with a data array", "/data")
    meta = body.get("meta")
    meta_id = meta.get("klaviyo_webhook_id") if isinstance(meta, dict) else None
    if meta_id != delivery.headers.get("Klaviyo-Webhook-Id"):
        raise BadRequest("meta.klaviyo_webhook_id differs from Klaviyo-Webhook-Id",
                         code="webhook_id_mismatch")
    events = []
    for n, item in enumerate(body["data"]):
        if isinstance(item, dict) and item.get("external_id"):
            topic = item.get("topic", "")
            _require(isinstance(topic, str) and len(topic) <= MAX_TYPE,
                     f"/data/{n}/topic must be a string of at most {MAX_TYPE} characters",
                     f"/data/{n}/topic")
            events.append(ProviderEvent(_event_id(item["external_id"], f"/data/{n}/external_id"),
                                        topic, item))
    return events


RECEIVERS: dict[str, Callable[[Delivery, list[str], Mapping[str, Any]], list[ProviderEvent]]] = {
    "stripe": stripe, "shopify": shopify, "hubspot": hubspot, "klaviyo": klaviyo}
