"""Provider events in: record verified events (dedupe), then map each to a referral action.

Decision rules for out-of-order delivery: an event that needs a referral (or a charge/order)
not seen yet waits, and is tried again when that customer is claimed (or the reference is
recorded), or on a backoff, until the program's grace period (at least one day) runs out; then
it expires, and the outcome says so. Duplicates are recorded once and answered 2xx.

Every recorded event settles. One whose payload does not have the shape its mapping reads
(``InvalidEvent``) is ignored at once with the reasons (``invalid_event``). One whose mapping
fails unexpectedly is tried again on the same backoff, and expires after ``MAX_FAILURES``
failures with the last error in its outcome.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from referflow.actions.common import Actor, load_program
from referflow.actions.event_shapes import InvalidEvent
from referflow.actions.mappings import HANDLERS
from referflow.actions.provider_refs import Waiting
from referflow.domain.timeutil import to_rfc3339, utcnow
from referflow.errors import ApiError, Conflict, NotFound, RetryableProviderError
from referflow.providers.receivers import RECEIVERS, Delivery
from referflow.services import Services
from referflow.storage import leases
from referflow.storage.inserts import insert_new
from referflow.storage.models import InboundEvent, InboundStatus, Program, ProviderConfig

log = logging.getLogger("referflow.inbound")
PENDING, WAITING, PROCESSED = InboundStatus.PENDING, InboundStatus.WAITING, InboundStatus.PROCESSED
IGNORED, EXPIRED = InboundStatus.IGNORED, InboundStatus.EXPIRED
RETRY = (60, 300, 1800, 3600, 3 * 3600, 6 * 3600)
MAX_FAILURES = len(RETRY)  # unexpected errors: about 4.5 hours of retries, then expired
OUTAGE_BUDGET = timedelta(days=3)  # a provider outage (5xx, 429, timeout) is retried this long


_PROVIDER_SETTINGS = select(Program.id, ProviderConfig.webhook_secrets,
                            ProviderConfig.settings).outerjoin(
    ProviderConfig, (ProviderConfig.program_id == Program.id)
    & (ProviderConfig.provider == bindparam("provider"))).where(
    Program.id == bindparam("program_id"))
EVENT_KEY = ("program_id", "provider", "event_id")


def receive(session: Session, program_id: str, provider: str,
            delivery: Delivery) -> dict[str, int]:
    """Verify a provider delivery and record its events; duplicates are counted, not redone.

    Nothing else happens in the request: the mapping runs in the background (``process``). Two
    statements: the program with its provider settings, then one INSERT of every event that
    skips the ids already recorded (``ON CONFLICT DO NOTHING``) and returns the new ones.
    """
    connection = session.connection()  # Core all through: no ORM bookkeeping for two statements
    found = connection.execute(_PROVIDER_SETTINGS, {"program_id": program_id,
                                                    "provider": provider}).first()
    if found is None:
        raise NotFound("program not found", code="program_not_found")
    _, secrets, settings = found
    if not secrets:
        raise Conflict(f"{provider} is not configured for this program: set webhook_secrets "
                       "with configureProvider", code="provider_not_configured")
    events = RECEIVERS[provider](delivery, list(secrets), settings or {})
    now, recorded = utcnow(), 0
    if events:
        statement = insert_new(connection.dialect.name, InboundEvent, EVENT_KEY)
        recorded = len(connection.execute(statement, [
            {"program_id": program_id, "provider": provider, "event_id": event.event_id,
             "type": event.type, "payload": event.payload, "status": PENDING, "attempts": 0,
             "outcome": {}, "next_attempt_at": now, "received_at": now}
            for event in events]).all())
    session.commit()
    return {"received": len(events), "duplicates": len(events) - recorded}


def due_inbound(session: Session, now: datetime, limit: int = 200) -> list[tuple[int, int]]:
    """Return (id, attempts) of inbound events due to be processed."""
    rows = session.execute(select(InboundEvent.id, InboundEvent.attempts).where(
        InboundEvent.status.in_((PENDING, WAITING)), InboundEvent.next_attempt_at <= now)
        .order_by(InboundEvent.id).limit(limit)).all()
    session.rollback()
    return [(i, a) for i, a in rows]


def process(session: Session, services: Services, inbound_id: int) -> str | None:
    """Map one recorded event to its referral action; idempotent (the actions dedupe too)."""
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
    ctx = load_program(session, event.program_id, services.settings.secret_key)
    actor = Actor("provider", f"{event.provider}:{event.event_id}")
    try:
        outcome = HANDLERS[(event.provider, event.type)](session, ctx, event.payload, actor,
                                                               services)
        status = IGNORED if outcome.get("ignored") else PROCESSED
    except Waiting as wait:
        return _wait(session, ctx.config.late_claim_grace_days, inbound_id, wait, now)
    except InvalidEvent as invalid:  # the payload will not change: say why, once
        session.rollback()
        status, outcome = IGNORED, invalid.outcome()
    except ApiError as exc:  # e.g. an unknown referral code: nothing to do, and it says why
        session.rollback()
        status, outcome = IGNORED, {"ignored": exc.code, "message": exc.message}
    except RetryableProviderError as exc:  # HubSpot down or throttling: not the event's fault
        log.warning("inbound event %s: provider unavailable, retrying", inbound_id)
        return _provider_outage(session, inbound_id, exc, now)
    except Exception as exc:  # a bug: retry on the backoff, then give up
        log.exception("inbound event %s failed", inbound_id)
        return _failed(session, inbound_id, exc, now)
    event = session.get(InboundEvent, inbound_id)
    assert event is not None
    event.status, event.outcome, event.processed_at = status, outcome, utcnow()
    event.attempts += 1
    session.commit()
    return status


def _provider_outage(session: Session, inbound_id: int, exc: RetryableProviderError,
                     now: datetime) -> str:
    """Retry as the provider asks (Retry-After) for up to OUTAGE_BUDGET, then expire with why."""
    session.rollback()
    event = session.get(InboundEvent, inbound_id)
    assert event is not None
    event.attempts += 1
    error = str(exc)[:500]
    if now - event.received_at > OUTAGE_BUDGET:
        event.status, event.processed_at = EXPIRED, now
        event.outcome = {"expired": f"provider unavailable for over {OUTAGE_BUDGET.days} days",
                         "error": error}
    else:
        event.status = PENDING
        event.next_attempt_at = leases.next_try(now, RETRY, event.attempts, exc.retry_after)
        event.outcome = {"retrying": error, "retry_at": to_rfc3339(event.next_attempt_at)}
    session.commit()
    return event.status


def _failed(session: Session, inbound_id: int, exc: Exception, now: datetime) -> str:
    session.rollback()
    event = session.get(InboundEvent, inbound_id)
    assert event is not None
    failures = int((event.outcome or {}).get("failures", 0)) + 1
    error = f"{type(exc).__name__}: {exc}"[:500]
    event.attempts += 1
    if failures >= MAX_FAILURES:
        event.status, event.processed_at = EXPIRED, now
        event.outcome = {"expired": f"failed {failures} times", "error": error,
                         "failures": failures}
    else:
        event.status = PENDING
        event.next_attempt_at = leases.next_try(now, RETRY, failures)
        event.outcome = {"error": error, "failures": failures,
                         "retry_at": to_rfc3339(event.next_attempt_at)}
    session.commit()
    return event.status


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
        event.next_attempt_at = leases.next_try(now, RETRY, event.attempts)
    session.commit()
    return event.status


def inbound_list(session: Session, program_id: str, limit: int = 50) -> list[InboundEvent]:
    """Return the latest inbound events of a program."""
    return list(session.scalars(select(InboundEvent).where(InboundEvent.program_id == program_id)
                                .order_by(InboundEvent.id.desc()).limit(limit)))
