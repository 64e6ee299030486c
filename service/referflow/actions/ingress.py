"""Provider events in: record verified events (dedupe), then map each to a referral action.

Decision rules for out-of-order delivery: an event that needs a referral (or a charge/order)
not seen yet waits, and is tried again when that customer is claimed (or the reference is
recorded), or on a backoff, until the program's grace period (at least one day) runs out; then
it expires, and the outcome says so. Duplicates are recorded once and answered 2xx.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from referflow.actions.common import Actor, load_program
from referflow.domain.timeutil import to_rfc3339, utcnow
from referflow.errors import ApiError, Conflict, NotFound
from referflow.providers.ingress import RECEIVERS, Delivery
from referflow.storage.models import InboundEvent, Program, ProviderConfig, ProviderRef

PENDING, WAITING, PROCESSED, IGNORED, EXPIRED = "pending", "waiting", "processed", "ignored", "expired"
RETRY = (60, 300, 1800, 3600, 3 * 3600, 6 * 3600)


class Waiting(Exception):
    """The event needs something not seen yet (a claim, a charge): try again later."""

    def __init__(self, subject: str, reason: str):
        super().__init__(reason)
        self.subject, self.reason = subject, reason


def receive(session: Session, program_id: str, provider: str,
            delivery: Delivery) -> dict[str, int]:
    """Verify a provider delivery and record its events; duplicates are counted, not redone."""
    if session.get(Program, program_id) is None:
        raise NotFound("program not found", code="program_not_found")
    config = session.get(ProviderConfig, (program_id, provider))
    if config is None or not config.webhook_secrets:
        raise Conflict(f"{provider} is not configured for this program: set webhook_secrets "
                       "with configureProvider", code="provider_not_configured")
    events = RECEIVERS[provider](delivery, list(config.webhook_secrets), config.settings or {})
    now, duplicates = utcnow(), 0
    for event in events:
        try:
            with session.begin_nested():
                session.add(InboundEvent(program_id=program_id, provider=provider,
                                         event_id=event.event_id, type=event.type,
                                         payload=event.payload, status=PENDING,
                                         next_attempt_at=now, received_at=now))
        except IntegrityError:
            duplicates += 1
    session.commit()
    return {"received": len(events), "duplicates": duplicates}


def due_inbound(session: Session, now: datetime, limit: int = 200) -> list[tuple[int, int]]:
    """Return (id, attempts) of inbound events due to be processed."""
    rows = session.execute(select(InboundEvent.id, InboundEvent.attempts).where(
        InboundEvent.status.in_((PENDING, WAITING)), InboundEvent.next_attempt_at <= now)
        .order_by(InboundEvent.id).limit(limit)).all()
    session.rollback()
    return [(i, a) for i, a in rows]


def process(session: Session, secret: str, inbound_id: int) -> str | None:
    """Map one recorded event to its referral action; idempotent (the actions dedupe too)."""
    from referflow.actions.mappings import HANDLERS

    now = utcnow()
    taken = session.execute(update(InboundEvent).where(
        InboundEvent.id == inbound_id, InboundEvent.status.in_((PENDING, WAITING)),
        InboundEvent.next_attempt_at <= now)
        .values(next_attempt_at=now + timedelta(minutes=5))
        .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
    session.commit()
    if taken != 1:
        return None
    event = session.get(InboundEvent, inbound_id)
    assert event is not None
    ctx = load_program(session, event.program_id, secret)
    actor = Actor("provider", f"{event.provider}:{event.event_id}")
    try:
        outcome = HANDLERS[(event.provider, event.type)](session, ctx, event.payload, actor)
        status = IGNORED if outcome.get("ignored") else PROCESSED
    except Waiting as wait:
        return _wait(session, ctx.config.late_claim_grace_days, inbound_id, wait, now)
    except ApiError as exc:  # e.g. an unknown referral code: nothing to do, and it says why
        session.rollback()
        status, outcome = IGNORED, {"ignored": exc.code, "message": exc.message}
    event = session.get(InboundEvent, inbound_id)
    assert event is not None
    event.status, event.outcome, event.processed_at = status, outcome, utcnow()
    event.attempts += 1
    session.commit()
    return status


def _wait(session: Session, grace_days: int, inbound_id: int, wait: Waiting, now: datetime) -> str:
    session.rollback()
    event = session.get(InboundEvent, inbound_id)
    assert event is not None
    event.attempts += 1
    event.subject = wait.subject
    event.wait_until = event.wait_until or event.received_at + timedelta(days=max(grace_days, 1))
    if now >= event.wait_until:
        event.status, event.processed_at = EXPIRED, now
        event.outcome = {"expired": wait.reason, "waited_until": to_rfc3339(event.wait_until)}
    else:
        event.status, event.outcome = WAITING, {"waiting_for": wait.reason}
        event.next_attempt_at = now + timedelta(seconds=RETRY[min(event.attempts, len(RETRY)) - 1])
    session.commit()
    return event.status


def wake(session: Session, program_id: str, *subjects: str) -> None:
    """Make events waiting for these subjects due now (a claim or a reference arrived)."""
    session.execute(update(InboundEvent).where(
        InboundEvent.program_id == program_id, InboundEvent.status == WAITING,
        InboundEvent.subject.in_(subjects)).values(next_attempt_at=utcnow())
        .execution_options(synchronize_session=False))


def remember(session: Session, program_id: str, provider: str, customer: str,
             *refs: str | None) -> None:
    """Record which customer charges/orders/payment intents belong to; wake who waited for them."""
    known = [r for r in refs if r]
    for ref in known:
        if session.get(ProviderRef, (program_id, provider, ref)) is None:
            session.add(ProviderRef(program_id=program_id, provider=provider, ref=ref,
                                    customer=customer))
    if known:
        wake(session, program_id, *[f"ref:{r}" for r in known])


def customer_of(session: Session, program_id: str, provider: str, ref: str) -> str:
    """Return the customer of a reference, or wait for it."""
    row = session.get(ProviderRef, (program_id, provider, ref))
    if row is None:
        raise Waiting(f"ref:{ref}", f"{provider} object {ref} not seen yet")
    return row.customer


def inbound_list(session: Session, program_id: str, limit: int = 50) -> list[InboundEvent]:
    """Return the latest inbound events of a program."""
    return list(session.scalars(select(InboundEvent).where(InboundEvent.program_id == program_id)
                                .order_by(InboundEvent.id.desc()).limit(limit)))

