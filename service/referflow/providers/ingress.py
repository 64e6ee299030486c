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


def _object(raw: bytes) -> Any:
    return loads_strict(raw)


def _require(condition: bool, message: str, code: str = "malformed_event") -> None:
    if not condition:
        raise BadRequest(message, code=code)


def stripe(delivery: Delivery, secrets: list[str], settings: Mapping[str, Any]) -> list[ProviderEvent]:
    """Stripe: one event per delivery; dedupe on ``event.id``."""
    signatures.verify_stripe(delivery.raw, delivery.headers.get("Stripe-Signature"), secrets,
                             time.time())
    event = _object(delivery.raw)
    _require(isinstance(event, dict) and isinstance(event.get("id"), str)
             and isinstance(event.get("data", {}).get("object"), dict), "not a Stripe event")
    if event.get("type") not in STRIPE_TYPES:
        raise ValidationFailed(f"unhandled Stripe event type {event.get('type')!r}",
                               code="unknown_topic")
    return [ProviderEvent(event["id"], event["type"], event)]


def shopify(delivery: Delivery, secrets: list[str], settings: Mapping[str, Any]) -> list[ProviderEvent]:
    """Shopify: the topic and event id are headers (``X-`` prefixed or not)."""
    headers = delivery.headers
    signatures.verify_shopify(delivery.raw, headers.get("X-Shopify-Hmac-Sha256")
                              or headers.get("Shopify-Hmac-Sha256"), secrets)
    topic = headers.get("X-Shopify-Topic") or headers.get("Shopify-Topic")
    event_id = (headers.get("X-Shopify-Event-Id") or headers.get("Shopify-Event-Id")
                or headers.get("X-Shopify-Webhook-Id") or headers.get("Shopify-Webhook-Id"))
    _require(bool(event_id), "missing X-Shopify-Event-Id / X-Shopify-Webhook-Id",
             "missing_event_id")
    body = _object(delivery.raw)
    _require(isinstance(body, dict), "not a Shopify resource")
    if topic not in SHOPIFY_TOPICS:
        raise ValidationFailed(f"unhandled Shopify topic {topic!r}", code="unknown_topic")
    return [ProviderEvent(str(event_id), str(topic), body)]


def hubspot(delivery: Delivery, secrets: list[str], settings: Mapping[str, Any]) -> list[ProviderEvent]:
    """HubSpot: a JSON array of events; dedupe on ``eventId``; unknown types are skipped."""
    signatures.verify_hubspot(delivery.method, delivery.url, delivery.raw, delivery.headers,
                              secrets, int(time.time() * 1000),
                              allow_legacy=bool(settings.get("allow_legacy_signatures")))
    events = _object(delivery.raw)
    _require(isinstance(events, list) and all(isinstance(e, dict) and "eventId" in e
                                              for e in events), "not a HubSpot event array")
    known = [e for e in events if e.get("subscriptionType") in HUBSPOT_TYPES]
    if events and not known:
        raise ValidationFailed("no handled HubSpot subscription type", code="unknown_topic")
    return [ProviderEvent(str(e["eventId"]), e["subscriptionType"], e) for e in known]


def klaviyo(delivery: Delivery, secrets: list[str], settings: Mapping[str, Any]) -> list[ProviderEvent]:
    """Klaviyo system webhooks: ``data`` items; the body's webhook id must match the header."""
    signatures.verify_klaviyo(delivery.raw, delivery.headers, secrets, time.time())
    body = _object(delivery.raw)
    _require(isinstance(body, dict) and isinstance(body.get("data"), list), "not a Klaviyo webhook")
    meta_id = (body.get("meta") or {}).get("klaviyo_webhook_id")
    if meta_id != delivery.headers.get("Klaviyo-Webhook-Id"):
        raise BadRequest("meta.klaviyo_webhook_id differs from Klaviyo-Webhook-Id",
                         code="webhook_id_mismatch")
    items = [i for i in body["data"] if isinstance(i, dict) and i.get("external_id")]
    return [ProviderEvent(str(i["external_id"]), str(i.get("topic", "")), i) for i in items]


RECEIVERS: dict[str, Callable[[Delivery, list[str], Mapping[str, Any]], list[ProviderEvent]]] = {
    "stripe": stripe, "shopify": shopify, "hubspot": hubspot, "klaviyo": klaviyo}
