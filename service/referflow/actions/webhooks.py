"""Outbound webhooks: subscriptions, fan-out of outbox events, signed deliveries with retries."""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from datetime import datetime, timedelta
from typing import Any

import requests
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from referflow.actions.common import ProgramContext
from referflow.actions.events import EVENT_TYPES, delivered_payload, public_payload, request_id_of
from referflow.actions.sync import plan
from referflow.domain.codes import new_id
from referflow.domain.timeutil import utcnow
from referflow.domain.urls import normal_url
from referflow.errors import BadRequest, Conflict, NotFound, ValidationFailed
from referflow.logs import current_request_id, new_request_id
from referflow.providers import safe_http
from referflow.storage import leases
from referflow.storage.models import (
    DeliveryAttempt,
    DeliveryStatus,
    OutboxEvent,
    WebhookDelivery,
    WebhookSubscription,
)

log = logging.getLogger("referflow.webhooks")

# Seconds to wait after attempt 1, 2, ...: about three days in all, then give up.
BACKOFF = (5, 300, 1800, 7200, 18000, 36000, 36000, 72000, 86400)
DISABLE_AFTER = timedelta(days=3)
TIMEOUT = (3.05, 10)
PENDING, SENDING, SUCCEEDED, FAILED = (DeliveryStatus.PENDING, DeliveryStatus.SENDING,
                                       DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED)


def create_subscription(session: Session, ctx: ProgramContext, body: dict[str, Any],
                        allow_private: bool) -> WebhookSubscription:
    """Subscribe a URL to event types; the signing secret is returned once. 409 for a URL the
    program already has an active subscription to (compared in ``domain.urls.normal_url`` form)."""
    safe_http.check(body["url"], allow_private)  # the same check the sender makes at send time
    unknown = sorted(set(body["events"]) - set(EVENT_TYPES) - {"*"})
    if unknown:
        raise ValidationFailed(f"unknown event types: {', '.join(unknown)}", code="unknown_event_type")
    url_key = normal_url(body["url"])
    _refuse_if_subscribed(session, ctx, url_key)
    # The key is URL-safe text (256 bits), so tools that take an HMAC key as text (n8n's Crypto
    # node) can use it; the whsec_ form is the Standard Webhooks encoding of the same bytes.
    key = secrets.token_urlsafe(32)
    sub = WebhookSubscription(id=new_id("whk"), program_id=ctx.id, url=body["url"], url_key=url_key,
                              events=sorted(set(body["events"])),
                              secret="whsec_" + base64.b64encode(key.encode()).decode())
    session.add(sub)
    try:
        session.commit()
    except IntegrityError:  # a parallel create of the same endpoint committed first
        session.rollback()
        _refuse_if_subscribed(session, ctx, url_key)
        raise
    return sub


def _refuse_if_subscribed(session: Session, ctx: ProgramContext, url_key: str) -> None:
    """Refuse (409) a second active subscription of one endpoint, naming the one there is."""
    existing = session.scalar(select(WebhookSubscription.id).where(
        WebhookSubscription.program_id == ctx.id, WebhookSubscription.url_key == url_key,
        WebhookSubscription.active.is_(True)))
    if existing is not None:
        message = f"webhook subscription {existing} already sends to this URL"
        raise Conflict(message, code="subscription_exists",
                       errors=[{"path": "/url", "message": message, "subscription_id": existing}])


def list_subscriptions(session: Session, ctx: ProgramContext) -> list[WebhookSubscription]:
    """Return the program's subscriptions (deleted ones excluded), oldest first."""
    return list(session.scalars(select(WebhookSubscription).where(
        WebhookSubscription.program_id == ctx.id, WebhookSubscription.deleted_at.is_(None))
        .order_by(WebhookSubscription.created_at)))


def signing_key(sub: WebhookSubscription) -> str:
    """Return the text form of a subscription's secret (the HMAC key as no-code tools take it)."""
    return base64.b64decode(sub.secret.removeprefix("whsec_")).decode()


def get_subscription(session: Session, ctx: ProgramContext, sub_id: str) -> WebhookSubscription:
    """Return one of the program's subscriptions (not deleted); 404 for another program's id."""
    sub = session.scalar(select(WebhookSubscription).where(
        WebhookSubscription.id == sub_id, WebhookSubscription.program_id == ctx.id,
        WebhookSubscription.deleted_at.is_(None)))
    if sub is None:
        raise NotFound("webhook subscription not found", code="subscription_not_found")
    return sub


def delete_subscription(session: Session, ctx: ProgramContext, sub_id: str) -> None:
    """Unsubscribe (idempotent for the caller: a second delete is a 404)."""
    sub = get_subscription(session, ctx, sub_id)
    sub.deleted_at, sub.active = utcnow(), False
    session.commit()


def fan_out(session: Session, outbox_id: int) -> list[str]:
    """Create one delivery per matching subscription and mark the event done; idempotent."""
    event = session.get(OutboxEvent, outbox_id)
    if event is None or event.done_at is not None:
        return []
    # A subscription receives the events that happened after it was made, not a backlog.
    subs = session.scalars(select(WebhookSubscription).where(
        WebhookSubscription.program_id == event.program_id, WebhookSubscription.active.is_(True),
        WebhookSubscription.created_at <= event.created_at))
    now = utcnow()
    created = []
    for sub in subs:
        if "*" in sub.events or event.type in sub.events:
            delivery = WebhookDelivery(id=new_id("msg"), program_id=event.program_id,
                                       subscription_id=sub.id, outbox_id=event.id, status=PENDING,
                                       next_attempt_at=now, created_at=now)
            session.add(delivery)
            created.append(delivery.id)
    plan(session, event)
    event.done_at = now
    try:
        session.commit()
    except IntegrityError:  # a concurrent fan-out of the same event won
        session.rollback()
        return []
    return created


def deliver(session: Session, delivery_id: str, allow_private: bool,
            lease_seconds: float = 60.0) -> str | None:
    """Send one delivery attempt; record it; schedule the retry. Returns the new status."""
    now = utcnow()
    delivery = leases.take(session, WebhookDelivery, delivery_id, now, lease_seconds, SENDING)
    if delivery is None:
        return None
    sub = session.get(WebhookSubscription, delivery.subscription_id)
    event = session.get(OutboxEvent, delivery.outbox_id)
    assert sub is not None and event is not None
    if not sub.active:
        return _finish(session, delivery, FAILED, None, "subscription inactive", 0)
    status_code, error, elapsed = _post(sub, delivery, event, delivered_payload(session, event),
                                       allow_private)
    if status_code is not None and 200 <= status_code < 300:
        sub.failing_since = None
        return _finish(session, delivery, SUCCEEDED, status_code, None, elapsed)
    if status_code == 410:  # the receiver says: this subscription is gone (Zapier semantics)
        sub.active, sub.deleted_at, sub.disabled_reason = False, now, "receiver answered 410 Gone"
        return _finish(session, delivery, FAILED, status_code, "410 Gone: unsubscribed", elapsed)
    return _retry_or_give_up(session, sub, delivery, status_code, error, elapsed, now)


def _post(sub: WebhookSubscription, delivery: WebhookDelivery, event: OutboxEvent,
          payload: dict[str, Any], allow_private: bool) -> tuple[int | None, str | None, int]:
    # Compact, sorted, UTF-8 (no \u escapes): JSON.stringify(JSON.parse(body)) gives it back
    # byte for byte, so no-code receivers can rebuild the signed content from the parsed body.
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True,
                      ensure_ascii=False)
    # The request that caused the event (or the sweep that did), for the receiver's logs and ours.
    request_id = request_id_of(event) or current_request_id() or new_request_id()
    started = time.monotonic()
    try:
        timestamp = utcnow()
        headers = {"content-type": "application/json; charset=utf-8",
                   "user-agent": "referflow-webhooks/1",
                   "webhook-id": delivery.id, "webhook-timestamp": str(int(timestamp.timestamp())),
                   "webhook-signature": Webhook(sub.secret).sign(delivery.id, timestamp, body),
                   "referflow-request-id": request_id}
        # Checked again at send time (DNS may have changed), and the connection goes to exactly
        # the address this check resolved: a refused URL is a failed attempt, not an exception.
        response = safe_http.post(sub.url, body.encode("utf-8"), headers, TIMEOUT, allow_private)
        return response.status_code, None, int((time.monotonic() - started) * 1000)
    except (requests.RequestException, ValidationFailed) as exc:
        return None, f"{type(exc).__name__}: {str(exc)[:200]}", int((time.monotonic() - started) * 1000)


def _retry_or_give_up(session: Session, sub: WebhookSubscription, delivery: WebhookDelivery,
                      status_code: int | None, error: str | None, elapsed: int,
                      now: datetime) -> str:
    sub.failing_since = sub.failing_since or now
    if now - sub.failing_since > DISABLE_AFTER:
        sub.active = False
        sub.disabled_reason = f"failing since {sub.failing_since.isoformat()}; disabled"
        log.warning("webhook subscription %s disabled after failing for days", sub.id)
    if delivery.attempts + 1 > len(BACKOFF) or not sub.active:
        return _finish(session, delivery, FAILED, status_code, error or f"HTTP {status_code}", elapsed)
    leases.retry_later(delivery, now, BACKOFF)
    return _record(session, delivery, status_code, error or f"HTTP {status_code}", elapsed)


def _finish(session: Session, delivery: WebhookDelivery, status: str, status_code: int | None,
            error: str | None, elapsed: int) -> str:
    leases.settle(delivery, status)
    if status == SUCCEEDED:
        delivery.delivered_at = utcnow()
    return _record(session, delivery, status_code, error, elapsed)


def _record(session: Session, delivery: WebhookDelivery, status_code: int | None,
            error: str | None, elapsed: int) -> str:
    delivery.last_status_code, delivery.last_error = status_code, error
    session.add(DeliveryAttempt(delivery_id=delivery.id, at=utcnow(), status_code=status_code,
                                error=error, duration_ms=elapsed))
    session.commit()
    return delivery.status


def replay(session: Session, ctx: ProgramContext, delivery_id: str) -> WebhookDelivery:
    """Send a delivery again from the start of the retry schedule."""
    delivery = session.scalar(select(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.program_id == ctx.id))
    if delivery is None:
        raise NotFound("delivery not found", code="delivery_not_found")
    delivery.status, delivery.attempts, delivery.next_attempt_at = PENDING, 0, utcnow()
    delivery.lease_until = None
    session.commit()
    return delivery


def deliveries_of(session: Session, ctx: ProgramContext, sub_id: str,
                  limit: int = 50) -> list[tuple[WebhookDelivery, list[DeliveryAttempt]]]:
    """Return a subscription's latest deliveries with their attempts (404 for others' ids)."""
    if session.scalar(select(WebhookSubscription.id).where(
            WebhookSubscription.id == sub_id, WebhookSubscription.program_id == ctx.id)) is None:
        raise NotFound("webhook subscription not found", code="subscription_not_found")
    rows = list(session.scalars(select(WebhookDelivery).where(
        WebhookDelivery.subscription_id == sub_id, WebhookDelivery.program_id == ctx.id)
        .order_by(WebhookDelivery.created_at.desc()).limit(limit)))
    return [(d, list(session.scalars(select(DeliveryAttempt).where(
        DeliveryAttempt.delivery_id == d.id).order_by(DeliveryAttempt.id)))) for d in rows]


def due_work(session: Session, now: datetime, limit: int = 500) -> tuple[list[int], list[tuple[str, str]]]:
    """Return undone outbox ids, and (delivery id, job generation) of deliveries due to be sent."""
    outbox = list(session.scalars(select(OutboxEvent.id).where(OutboxEvent.done_at.is_(None))
                                  .order_by(OutboxEvent.id).limit(limit)))
    return outbox, leases.due(session, WebhookDelivery, now, SENDING, limit)


def latest_events(session: Session, ctx: ProgramContext, kind: str | None, limit: int) -> list[dict[str, Any]]:
    """Return the program's latest event payloads, newest first (optionally of one type)."""
    if kind is not None and kind not in EVENT_TYPES:
        raise BadRequest(f"unknown event type {kind!r}", code="invalid_query")
    query = select(OutboxEvent.payload).where(OutboxEvent.program_id == ctx.id)
    if kind is not None:
        query = query.where(OutboxEvent.type == kind)
    return [public_payload(p) for p in session.scalars(query.order_by(OutboxEvent.id.desc()).limit(limit))]


def request_id_of_event(session: Session, outbox_id: int) -> str | None:
    """Return the id of the request that caused an outbox event (None: none did, or no such event)."""
    event = session.get(OutboxEvent, outbox_id)
    return request_id_of(event) if event is not None else None


def request_id_of_delivery(session: Session, delivery_id: str) -> str | None:
    """Return the id of the request that caused a delivery's event."""
    outbox_id = session.scalar(select(WebhookDelivery.outbox_id).where(WebhookDelivery.id == delivery_id))
    return request_id_of_event(session, outbox_id) if outbox_id is not None else None
