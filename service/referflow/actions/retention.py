"""Data retention: personal data older than the retention period is pruned; money facts stay.

Pruned: the keyed hashes of link clicks (the click itself stays, for counts), the payloads of
provider webhook events that are settled, and the payloads of outbox events whose deliveries and
provider syncs are settled, and the data and rule details of moment decisions (the decision
and its reason codes stay). Referrals, their history, gift cards and ledger entries are kept:
they are the record of money owed and paid; consent entries are kept: they are the evidence of
consent (erasure on request handles people, see privacy).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session

from referflow.actions import sync, webhooks
from referflow.actions.events import blank_payload
from referflow.actions.inbound import EXPIRED, IGNORED, PROCESSED
from referflow.actions.moments import prune_decisions
from referflow.storage import leases
from referflow.storage.models import Click, InboundEvent, OutboxEvent, SyncTask, WebhookDelivery

BATCH = 500


def prune(session: Session, now: datetime, days: int) -> dict[str, int]:
    """Prune one batch of each kind older than ``days``; return how many rows were pruned."""
    cutoff = now - timedelta(days=days)
    counts = {"clicks": _clicks(session, cutoff), "inbound_events": _inbound(session, cutoff, now),
              "outbox_events": _outbox(session, cutoff, now),
              "moment_decisions": prune_decisions(session, cutoff, now, BATCH)}
    session.commit()
    return counts


def _clicks(session: Session, cutoff: datetime) -> int:
    ids = list(session.scalars(select(Click.id).where(
        Click.created_at < cutoff,
        or_(Click.ip_key.is_not(None), Click.net_key.is_not(None), Click.ua_key.is_not(None))).limit(BATCH)))
    if ids:
        session.execute(update(Click).where(Click.id.in_(ids)).values(ip_key=None, net_key=None, ua_key=None))
    return len(ids)


def _inbound(session: Session, cutoff: datetime, now: datetime) -> int:
    rows = list(session.scalars(select(InboundEvent).where(
        InboundEvent.received_at < cutoff, InboundEvent.pruned_at.is_(None),
        InboundEvent.status.in_((PROCESSED, IGNORED, EXPIRED))).limit(BATCH)))
    for row in rows:
        row.payload, row.pruned_at = {"pruned": True}, now
    return len(rows)


def _outbox(session: Session, cutoff: datetime, now: datetime) -> int:
    open_delivery = exists().where(WebhookDelivery.outbox_id == OutboxEvent.id,
                                   WebhookDelivery.status.in_((webhooks.PENDING, webhooks.SENDING)))
    open_sync = exists().where(SyncTask.outbox_id == OutboxEvent.id,
                               SyncTask.status.in_((leases.PENDING, sync.WORKING)))
    rows = list(session.scalars(select(OutboxEvent).where(
        OutboxEvent.done_at.is_not(None), OutboxEvent.done_at < cutoff, OutboxEvent.pruned_at.is_(None),
        ~open_delivery, ~open_sync).limit(BATCH)))
    for row in rows:
        blank_payload(row, pruned=True)
        row.pruned_at = now
    return len(rows)
