"""Consent as evidence: an append-only history per person and channel, with where it came from.

``setConsent`` appends; the latest entry per channel (by when it was given) is the state. A
provider's opt-out (a Klaviyo unsubscribe, a HubSpot email opt-out) names an email only: it is
kept under the email's keyed hash and counts for every person with that email. Erasure keeps
every entry (that consent existed, for which channel, when, from which source) and drops the
identifiers (``actions/privacy.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from referflow.actions.common import ProgramContext
from referflow.actions.people import email_key, ensure_person, get_person, update_person
from referflow.domain import messaging
from referflow.domain.program import CHANNELS
from referflow.domain.timeutil import to_rfc3339, utcnow
from referflow.errors import Conflict
from referflow.storage.models import Consent, ConsentStatus, Person


def history(session: Session, ctx: ProgramContext, person_id: str | None,
            key: str | None) -> list[Consent]:
    """Return the consent entries of a person or an email key, oldest first."""
    matches = [Consent.person_id == person_id] if person_id else []
    matches += [Consent.email_key == key] if key else []
    if not matches:
        return []
    return list(session.scalars(select(Consent).where(Consent.program_id == ctx.id, or_(*matches))
                                .order_by(Consent.occurred_at, Consent.id)))


def current(entries: list[Consent]) -> dict[str, Consent]:
    """Return the latest entry per channel."""
    latest: dict[str, Consent] = {}
    for entry in entries:
        latest[entry.channel] = entry
    return latest


def set_consent(session: Session, ctx: ProgramContext, body: dict[str, Any]) -> dict[str, Any]:
    """Append a consent entry for a person (created if new); return their consent."""
    person_id = ensure_person(session, ctx, body["person"]["external_id"])
    person = session.get(Person, person_id)
    assert person is not None
    if person.erased_at is not None:
        raise Conflict("this person was erased: referflow keeps nothing new about them",
                       code="person_erased")
    update_person(ctx, person, body["person"])
    now = utcnow()
    session.add(Consent(program_id=ctx.id, person_id=person.id, email_key=person.email_key,
                        channel=body["channel"], status=body["status"], source=body["source"],
                        text_version=body.get("text_version"), occurred_at=now, recorded_at=now))
    session.commit()
    return consent_dict(ctx, person, history(session, ctx, person.id, person.email_key))


def record_email_consent(session: Session, ctx: ProgramContext, email: str, status: ConsentStatus,
                         source: str, occurred_at: datetime | None = None) -> bool:
    """Record a provider's email opt-out or opt-in (caller commits); a repeat of the latest state
    adds nothing. Return whether an entry was added."""
    key = email_key(ctx, email)
    last = current(history(session, ctx, None, key)).get("email")
    if last is not None and last.status == status:
        return False
    now = utcnow()
    session.add(Consent(program_id=ctx.id, person_id=None, email_key=key, channel="email",
                        status=status, source=source[:100], occurred_at=occurred_at or now,
                        recorded_at=now))
    return True


def entry_dict(entry: Consent) -> dict[str, Any]:
    """Dump one consent entry (no identifiers)."""
    return {"channel": entry.channel, "status": entry.status, "source": entry.source,
            "text_version": entry.text_version, "occurred_at": to_rfc3339(entry.occurred_at),
            "recorded_at": to_rfc3339(entry.recorded_at)}


def consent_dict(ctx: ProgramContext, person: Person, entries: list[Consent]) -> dict[str, Any]:
    """Dump a person's consent per channel (the latest entry, the program's mode, whether it
    allows asking) and the full history."""
    latest = current(entries)
    modes = ctx.config.moments.consent
    channels = {}
    for channel in CHANNELS:
        entry = latest.get(channel)
        mode = modes.get(channel, "opt_in")
        status = entry.status if entry is not None else None
        channels[channel] = {"status": status, "mode": mode,
                             "allows": messaging.allowed_by(status, mode),
                             "latest": entry_dict(entry) if entry is not None else None}
    return {"external_id": person.external_id, "channels": channels,
            "history": [entry_dict(e) for e in entries]}


def get_consent(session: Session, ctx: ProgramContext, external_id: str) -> dict[str, Any]:
    """Return a person's consent state and history, or raise 404."""
    person = get_person(session, ctx, external_id)
    return consent_dict(ctx, person, history(session, ctx, person.id, person.email_key))
