"""Data-subject requests: export everything about a person, or erase their identifiers.

Erasure keeps the money facts (referrals' statuses and amounts, gift cards and their ledger)
and removes who they were: external ids become ``erased:<id>``, emails and names go, hashed
identifiers (marks, email keys) are deleted. Two keyed hashes stay, so that an erased person is
never asked again: the person's customer-id hash (``people.external_key``) and their emails'
hashes on the suppression list (reason ``erased``). Consent evidence stays without identifiers
(that consent was given or withdrawn, for which channel, when, from which source); moment
decisions keep what was decided and why, without the moment's data.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, cast, delete, select
from sqlalchemy.orm import Session

from referflow.actions import rollups
from referflow.actions.common import Actor, ProgramContext
from referflow.actions.consent import entry_dict, history
from referflow.actions.events import blank_payload
from referflow.actions.messaging import ERASED
from referflow.actions.moments import decision_dict, strip_decision
from referflow.actions.people import find_person
from referflow.domain.timeutil import to_rfc3339, utcnow
from referflow.errors import NotFound
from referflow.storage.models import (
    Advocate,
    AdvocateEvent,
    GiftCard,
    IdentityMark,
    KnownCustomer,
    MomentDecision,
    OutboxEvent,
    Person,
    Referral,
    Suppression,
)


def _find(session: Session, ctx: ProgramContext,
          external_id: str) -> tuple[Advocate | None, list[Referral], Person | None]:
    advocate = session.scalar(select(Advocate).where(Advocate.program_id == ctx.id,
                                                     Advocate.external_id == external_id))
    as_friend = list(session.scalars(select(Referral).where(
        Referral.program_id == ctx.id, Referral.friend_external_id == external_id)))
    person = find_person(session, ctx, external_id)
    if person is not None and person.erased_at is not None:
        person = None  # an erased person has nothing left to export or erase
    if advocate is None and not as_friend and person is None:
        raise NotFound("nobody with that external id in this program", code="person_not_found")
    return advocate, as_friend, person


def _redact_events(session: Session, ctx: ProgramContext, ids: list[str]) -> None:
    """Replace the payloads of outbox events that mention these ids (opaque ids never collide)."""
    for object_id in ids:
        rows = session.scalars(select(OutboxEvent).where(
            OutboxEvent.program_id == ctx.id,
            cast(OutboxEvent.payload, String).like(f"%{object_id}%")))
        for row in rows:
            blank_payload(row, erased=True)


def export_person(session: Session, ctx: ProgramContext, external_id: str) -> dict[str, Any]:
    """Return what referflow holds about one person (as advocate and as friend)."""
    advocate, as_friend, person = _find(session, ctx, external_id)
    cards: list[GiftCard] = []
    if advocate is not None:
        cards += session.scalars(select(GiftCard).where(GiftCard.advocate_id == advocate.id))
    for referral in as_friend:
        cards += session.scalars(select(GiftCard).where(GiftCard.referral_id == referral.id,
                                                        GiftCard.side == "friend"))
    return {
        "external_id": external_id,
        "advocate": None if advocate is None else {
            "id": advocate.id, "email": advocate.email, "name": advocate.name,
            "tier": advocate.tier, "flagged": advocate.flagged,
            "created_at": to_rfc3339(advocate.created_at)},
        "referred_as_friend": [{"referral_id": r.id, "status": r.status, "email": r.friend_email,
                                "created_at": to_rfc3339(r.created_at)} for r in as_friend],
        "gift_cards": [{"id": c.id, "amount": c.amount, "balance": c.balance,
                        "currency": c.currency, "status": c.status} for c in cards],
        **_moments_export(session, ctx, person),
    }


def _moments_export(session: Session, ctx: ProgramContext, person: Person | None) -> dict[str, Any]:
    """The person's stored facts, consent history and every moment decision."""
    if person is None:
        return {"person": None, "consents": [], "asks": []}
    decisions = session.scalars(select(MomentDecision).where(MomentDecision.person_id == person.id)
                                .order_by(MomentDecision.created_at, MomentDecision.id))
    return {
        "person": {"email": person.email, "timezone": person.timezone,
                   "attributes": person.attributes, "created_at": to_rfc3339(person.created_at)},
        "consents": [entry_dict(e) for e in history(session, ctx, person.id, person.email_key)],
        "asks": [decision_dict(d, person, None) for d in decisions],
    }


def erase_person(session: Session, ctx: ProgramContext, external_id: str,
                 actor: Actor) -> dict[str, Any]:
    """Remove a person's identifiers, keeping the ledger's money facts."""
    advocate, as_friend, person = _find(session, ctx, external_id)
    email_keys = {r.friend_email_key for r in as_friend} | {advocate.email_key if advocate else None}
    email_keys |= {person.email_key if person else None}
    _tombstones(session, ctx, {k for k in email_keys if k})
    known = session.scalars(delete(KnownCustomer).where(
        KnownCustomer.program_id == ctx.id,
        KnownCustomer.external_id.in_([external_id])
        | KnownCustomer.email_key.in_([k for k in email_keys if k]))
        .returning(KnownCustomer.created_at)).all()
    rollups.remove_known_customers(session, ctx.id, known)
    for referral in as_friend:
        referral.friend_external_id = f"erased:{referral.id}"
        referral.friend_email = None
        referral.friend_email_key = None
        session.execute(delete(IdentityMark).where(IdentityMark.referral_id == referral.id))
    if advocate is not None:
        advocate.external_id = f"erased:{advocate.id}"
        advocate.email = advocate.email_key = advocate.name = None
        session.execute(delete(IdentityMark).where(IdentityMark.advocate_id == advocate.id,
                                                   IdentityMark.subject == "advocate"))
        session.add(AdvocateEvent(advocate_id=advocate.id, program_id=ctx.id, at=utcnow(),
                                  action="erased", actor_type=actor.type, actor_id=actor.id))
    if person is not None:
        _erase_moments(session, ctx, person)
    _redact_events(session, ctx, [r.id for r in as_friend] + ([advocate.id] if advocate else [])
                   + ([person.id] if person else []))
    session.commit()
    return {"erased": True, "advocate": advocate is not None, "referrals": len(as_friend)}


def _tombstones(session: Session, ctx: ProgramContext, email_keys: set[str]) -> None:
    """Put the erased person's email hashes on the suppression list: never messaged again."""
    listed = set(session.scalars(select(Suppression.email_key).where(
        Suppression.program_id == ctx.id, Suppression.email_key.in_(email_keys)))) if email_keys else set()
    for key in sorted(email_keys - listed):
        session.add(Suppression(program_id=ctx.id, email_key=key, reason=ERASED, source="erasure"))


def _erase_moments(session: Session, ctx: ProgramContext, person: Person) -> None:
    """Drop the person's identifiers; keep the consent evidence and the decisions' codes."""
    now = utcnow()
    for entry in history(session, ctx, person.id, person.email_key):
        entry.person_id, entry.email_key = person.id, None
    for decision in session.scalars(select(MomentDecision).where(
            MomentDecision.person_id == person.id)):
        strip_decision(decision, now)
    person.external_id = f"erased:{person.id}"
    person.email = person.email_key = person.timezone = None
    person.attributes = {}
    person.erased_at = now
