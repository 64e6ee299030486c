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
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from referflow.actions.common import Actor, ProgramContext, load_program
from referflow.contract import FORMATS, StrictValidator
from referflow.domain import money
from referflow.domain.timeutil import parse_rfc3339, to_rfc3339, utcnow
from referflow.errors import ApiError, Conflict, NotFound
from referflow.providers.ingress import RECEIVERS, Delivery
from referflow.storage.models import InboundEvent, Program, ProviderConfig, ProviderRef

log = logging.getLogger("referflow.ingress")
PENDING, WAITING, PROCESSED, IGNORED, EXPIRED = "pending", "waiting", "processed", "ignored", "expired"
RETRY = (60, 300, 1800, 3600, 3 * 3600, 6 * 3600)
MAX_FAILURES = len(RETRY)  # unexpected errors: about 4.5 hours of retries, then expired
Outcome = dict[str, Any]
Handler = Callable[[Session, ProgramContext, dict[str, Any], Actor], Outcome]
Shape = dict[str, Any]


class Waiting(Exception):
    """The event needs something not seen yet (a claim, a charge): try again later."""

    def __init__(self, subject: str, reason: str):
        super().__init__(reason)
        self.subject, self.reason = subject, reason


class InvalidEvent(Exception):
    """The payload lacks or garbles a field its mapping reads: settle it with the reasons, never retry."""

    def __init__(self, problems: list[dict[str, str]]):
        self.problems = [{"path": p["path"], "message": p["message"][:300]} for p in problems[:20]]
        super().__init__("; ".join(f"{p['path']}: {p['message']}" for p in self.problems))

    @classmethod
    def at(cls, path: str, message: str) -> InvalidEvent:
        """Return the problem of one field."""
        return cls([{"path": path, "message": message}])

    def outcome(self) -> Outcome:
        """Return the settled outcome that says why."""
        return {"ignored": "invalid_event", "message": str(self)[:1000], "errors": self.problems}


# -- Shapes: what a mapping reads, checked before it acts ---------------------------------------

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # no provider event of ours is older
MAX_ID = 190  # object ids: "order:" / "ref:" + id must still fit the 200-character columns
ID: Shape = {"type": "string", "minLength": 1, "maxLength": MAX_ID}
NUMERIC_ID: Shape = {"type": ["integer", "string"], "minimum": 1, "maximum": 2**63 - 1,
                     "minLength": 1, "maxLength": MAX_ID}  # Shopify and HubSpot: 64-bit integers
TEXT: Shape = {"type": "string"}
CURRENCY: Shape = {"type": "string", "pattern": "^[A-Za-z]{3}$"}
DECIMAL: Shape = {"type": ["string", "integer"]}  # exact in the currency: checked by minor_units
UNIX_TIME: Shape = {"type": "integer", "minimum": int(EARLIEST.timestamp()), "maximum": 4102444800}
RFC3339: Shape = {"type": "string", "format": "date-time"}


def obj(*required: str, **fields: Shape) -> Shape:
    """Return the shape of an object with these fields (``required`` among them)."""
    return {"type": "object", "required": list(required), "properties": fields}


def maybe(shape: Shape) -> Shape:
    """Return ``shape``, or null."""
    kinds = shape["type"] if isinstance(shape["type"], list) else [shape["type"]]
    return {**shape, "type": [*kinds, "null"]}


def array_of(shape: Shape) -> Shape:
    """Return the shape of a list of ``shape`` items, or null."""
    return {"type": ["array", "null"], "items": shape}


def reads(shape: Shape) -> Callable[[Handler], Handler]:
    """Declare the shape a mapping reads: a payload that does not fit is refused before it acts."""
    validator = StrictValidator(shape, format_checker=FORMATS)

    def declare(handler: Handler) -> Handler:
        @wraps(handler)
        def checked(s: Session, ctx: ProgramContext, payload: dict[str, Any], actor: Actor) -> Outcome:
            problems = [{"path": "/" + "/".join(map(str, e.absolute_path)), "message": e.message}
                        for e in validator.iter_errors(payload)]
            if problems:
                raise InvalidEvent(sorted(problems, key=lambda p: p["path"]))
            return handler(s, ctx, payload, actor)

        checked.shape = shape  # type: ignore[attr-defined]
        return checked

    return declare


def minor_units(amount: str | int, currency: str, path: str) -> int:
    """Return a decimal amount in exact minor units, or refuse the event."""
    try:
        return money.to_minor(amount, currency)
    except ValueError as exc:
        raise InvalidEvent.at(path, str(exc)) from exc


def unix_time(seconds: int, path: str) -> str:
    """Return a Unix time (seconds) as RFC 3339, or refuse the event when out of range."""
    return _in_range(datetime.fromtimestamp(seconds, UTC), path)


def rfc3339_time(text: str, path: str) -> str:
    """Return an RFC 3339 time in UTC, or refuse the event when malformed or out of range."""
    try:
        parsed = parse_rfc3339(text)
    except (TypeError, ValueError) as exc:
        raise InvalidEvent.at(path, f"{str(text)[:40]!r} is not an RFC 3339 time: {exc}") from exc
    return _in_range(parsed, path)


def _in_range(value: datetime, path: str) -> str:
    if not EARLIEST <= value <= utcnow() + timedelta(days=1):
        raise InvalidEvent.at(path, f"{to_rfc3339(value)} is not between {EARLIEST.year} and tomorrow")
    return to_rfc3339(value) or ""


# -- Recording and processing -------------------------------------------------------------------


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
    # Deferred on purpose: mappings -> referrals -> ingress.wake would be circular; it goes when
    # wake/remember/customer_of move to a module of their own (referrals.py imports wake).
    from referflow.actions.mappings import HANDLERS  # noqa: PLC0415

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
    except InvalidEvent as invalid:  # the payload will not change: say why, once
        session.rollback()
        status, outcome = IGNORED, invalid.outcome()
    except ApiError as exc:  # e.g. an unknown referral code: nothing to do, and it says why
        session.rollback()
        status, outcome = IGNORED, {"ignored": exc.code, "message": exc.message}
    except Exception as exc:  # a bug or an outage: retry on the backoff, then give up
        log.exception("inbound event %s failed", inbound_id)
        return _failed(session, inbound_id, exc, now)
    event = session.get(InboundEvent, inbound_id)
    assert event is not None
    event.status, event.outcome, event.processed_at = status, outcome, utcnow()
    event.attempts += 1
    session.commit()
    return status


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
        event.next_attempt_at = now + timedelta(seconds=RETRY[failures - 1])
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

