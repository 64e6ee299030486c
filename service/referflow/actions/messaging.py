"""The facts a send decision needs, read from storage; every send path asks through here.

``recipient()`` gathers what ``domain/messaging.py`` decides on: consent, the suppression list,
erasure, the asks and messages of the last week, the last decline. The ask decision of a moment,
``checkMessage`` and referflow's own Klaviyo/HubSpot sync all use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from referflow.actions.common import ProgramContext
from referflow.actions.consent import current, history
from referflow.actions.people import checked_timezone, email_key, find_person, is_advocate
from referflow.domain import messaging
from referflow.domain.messaging import WEEK, MessageCheck, Recipient
from referflow.domain.timeutil import utcnow
from referflow.errors import NotFound
from referflow.storage.models import (
    AskDecision,
    AskResponse,
    MomentDecision,
    Person,
    Suppression,
    SyncStatus,
    SyncTask,
)

ERASED = "erased"  # the suppression reason erasure leaves behind for an email


@dataclass(frozen=True)
class Overrides:
    """What a request says about the person now, over what is stored."""

    email: str | None = None
    timezone: str | None = None
    attributes: dict[str, Any] | None = None


def recipient(session: Session, ctx: ProgramContext, person: Person | None, key: str | None,
              now: datetime, given: Overrides = Overrides(), exclude_ask: str | None = None) -> Recipient:
    """Gather what is known about a person (or only their email's key) for a send decision."""
    key = key or (person.email_key if person else None)
    reasons = set(session.scalars(select(Suppression.reason).where(
        Suppression.program_id == ctx.id, Suppression.email_key == key))) if key else set()
    consent = current(history(session, ctx, person.id if person else None, key))
    asks = _recent_asks(session, person, now, exclude_ask)
    stored = person.attributes if person is not None and person.erased_at is None else {}
    return Recipient(
        now=now,
        timezone=given.timezone or (person.timezone if person else None) or ctx.config.timezone,
        attributes={**stored, **(given.attributes or {})},
        has_email=bool(given.email or (person.email if person else None)),
        is_advocate=person is not None and is_advocate(session, ctx, person),
        erased=ERASED in reasons or (person is not None and person.erased_at is not None),
        consent={channel: entry.status for channel, entry in consent.items()},
        suppressions=tuple(sorted(reasons - {ERASED})),
        declined_at=_last(session, person, MomentDecision.responded_at,
                          MomentDecision.response == AskResponse.DECLINED),
        last_ask_at=_last(session, person, MomentDecision.created_at,
                          MomentDecision.decision == AskDecision.ASK, exclude_ask),
        asks_last_week=asks,
        messages_last_week=_messages_sent(session, ctx, key, now) + len(asks),
    )


def _recent_asks(session: Session, person: Person | None, now: datetime,
                 exclude: str | None) -> tuple[tuple[datetime, str], ...]:
    if person is None:
        return ()
    rows = session.execute(select(MomentDecision.created_at, MomentDecision.channel).where(
        MomentDecision.person_id == person.id, MomentDecision.decision == AskDecision.ASK,
        MomentDecision.created_at >= now - WEEK, MomentDecision.id != (exclude or ""))).all()
    return tuple((at, channel or "") for at, channel in rows)


def _last(session: Session, person: Person | None, column: Any, condition: Any,
          exclude: str | None = None) -> datetime | None:
    """Return the latest value of a decision column for the person's decisions that match."""
    if person is None:
        return None
    last: datetime | None = session.scalar(select(func.max(column)).where(
        MomentDecision.person_id == person.id, condition, MomentDecision.id != (exclude or "")))
    return last


def _messages_sent(session: Session, ctx: ProgramContext, key: str | None, now: datetime) -> int:
    """Count the referral messages referflow's Klaviyo sync sent to an email in 7 days."""
    if key is None:
        return 0
    return session.scalar(select(func.count()).select_from(SyncTask).where(
        SyncTask.program_id == ctx.id, SyncTask.provider == "klaviyo",
        SyncTask.recipient_key == key, SyncTask.status == SyncStatus.SENT,
        SyncTask.sent_at >= now - WEEK)) or 0


def person_by_email(session: Session, ctx: ProgramContext, key: str) -> Person | None:
    """Return a (not erased) person with this email key, if any (the newest)."""
    return session.scalar(select(Person).where(
        Person.program_id == ctx.id, Person.email_key == key, Person.erased_at.is_(None))
        .order_by(Person.created_at.desc()).limit(1))


def check_message(session: Session, ctx: ProgramContext, body: dict[str, Any]) -> MessageCheck:
    """Decide whether one message may go to a person now (nothing is recorded)."""
    data = body["person"]
    given = Overrides(email=data.get("email"), timezone=checked_timezone(data.get("timezone")),
                      attributes=data.get("attributes"))
    person = find_person(session, ctx, data["external_id"])
    exclude = body.get("ask_id")
    if exclude is not None and (person is None or session.scalar(select(MomentDecision.id).where(
            MomentDecision.id == exclude, MomentDecision.person_id == person.id)) is None):
        raise NotFound("no ask with that id for this person", code="ask_not_found")
    key = email_key(ctx, given.email) or (person.email_key if person else None)
    facts = recipient(session, ctx, person, key, utcnow(), given, exclude)
    result = messaging.check(body["purpose"], body["channel"], facts, ctx.config)
    session.rollback()
    return result
