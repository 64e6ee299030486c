"""Moments in a customer's life, and whether each one asks them to refer (recordMoment).

Load the facts -> ``domain/moments.decide`` -> record the decision with every rule's outcome,
and for an ask the advocate's link and an ``ask.decided`` event, in one transaction. The
decisions of one person are serialised on their ``people`` row, so the frequency caps hold
however many moments arrive at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from referflow.actions import experiments
from referflow.actions.common import ProgramContext
from referflow.actions.consent import consent_dict, history
from referflow.actions.events import emit
from referflow.actions.lifecycle import update_tier_after_moment
from referflow.actions.links import enrol_advocate
from referflow.actions.messaging import Overrides, recipient
from referflow.actions.people import checked_timezone, ensure_person, get_person, update_person
from referflow.domain.codes import new_id
from referflow.domain.moments import Decision, decide, next_ask_at
from referflow.domain.referral import in_the_future
from referflow.domain.timeutil import parse_rfc3339, to_rfc3339, utcnow
from referflow.errors import Conflict, NotFound, ValidationFailed
from referflow.storage.locks import serialise_on
from referflow.storage.models import (
    AskDecision,
    MomentDecision,
    Person,
    Suppression,
)

PROFILE_ASKS = 50  # the latest decisions a profile shows


@dataclass(frozen=True)
class Recorded:
    """A moment's decision, the person it concerns, and whether this call made it."""

    decision: MomentDecision
    person: Person
    created: bool


def record_moment(session: Session, ctx: ProgramContext, body: dict[str, Any],
                  share_base: str) -> Recorded:
    """Record a moment and decide whether it asks; the same ``id`` again returns the first."""
    moment = body["moment"]
    if moment not in ctx.config.moments.types:
        raise ValidationFailed(f"unknown moment type {moment!r}: configure it in moments.custom_types",
                               code="unknown_moment", errors=[{"path": "/moment", "message": moment}])
    checked_timezone(body["person"].get("timezone"))
    occurred_at = _time(body.get("occurred_at"), "/occurred_at")
    request_id = body.get("id")
    if request_id is not None and (first := _by_request(session, ctx, request_id)) is not None:
        return first
    person_id = ensure_person(session, ctx, body["person"]["external_id"])
    try:
        return _decide(session, ctx, person_id, body, occurred_at, share_base)
    except IntegrityError:  # the same id for another person, or an advocate enrolled meanwhile
        session.rollback()
        if request_id is not None and (first := _by_request(session, ctx, request_id)) is not None:
            return first
        return _decide(session, ctx, person_id, body, occurred_at, share_base)


def _time(raw: str | None, path: str) -> datetime:
    """Return when something happened (now when not said); refuse a time in the future."""
    if raw is None:
        return utcnow()
    at = parse_rfc3339(raw)
    if in_the_future(at, utcnow()):
        raise ValidationFailed(f"occurred_at {raw[:40]} is in the future", code="occurred_in_future",
                               errors=[{"path": path, "message": "in the future"}])
    return at


def _by_request(session: Session, ctx: ProgramContext, request_id: str) -> Recorded | None:
    row = session.scalar(select(MomentDecision).where(MomentDecision.program_id == ctx.id,
                                                      MomentDecision.request_id == request_id))
    if row is None:
        return None
    person = session.get(Person, row.person_id)
    assert person is not None
    return Recorded(row, person, created=False)


def _decide(session: Session, ctx: ProgramContext, person_id: str, body: dict[str, Any],
            occurred_at: datetime, share_base: str) -> Recorded:
    serialise_on(session, Person, person_id, "updated_at")
    if body.get("id") is not None and (first := _by_request(session, ctx, body["id"])) is not None:
        return first  # a parallel call with the same id decided while this one waited
    person = session.get(Person, person_id, populate_existing=True)
    assert person is not None
    update_person(ctx, person, body["person"])
    now = utcnow()
    facts = recipient(session, ctx, person, None, now,
                      Overrides(attributes=body["person"].get("attributes")))
    data = body.get("data") or {}
    plan = experiments.plan_moment(session, ctx, person.external_id, body["moment"])
    decision = decide(body["moment"], data, facts, ctx.config, plan.gates)
    row = _row(ctx, person, body, data if person.erased_at is None else {}, occurred_at, decision)
    session.add(row)
    link = None
    if decision.ask:
        link = enrol_advocate(session, ctx, {"advocate": {"external_id": person.external_id,
                                                          "email": person.email}}, share_base)
        row.advocate_id, row.code = link.advocate.id, link.code.code
    row.variants = experiments.expose_moment(session, ctx, plan, decision, person.external_id,
                                             row.advocate_id, link.variant if link else None, now)
    update_tier_after_moment(session, ctx, person.external_id, now)
    if decision.ask:
        session.flush()
        emit(session, ctx.id, "ask.decided", {
            "ask": decision_dict(row, person, share_base, outcomes=False),
            "person": {"id": person.id, "external_id": person.external_id, "email": person.email,
                       "timezone": facts.timezone}})
    session.commit()
    return Recorded(row, person, created=True)


def _row(ctx: ProgramContext, person: Person, body: dict[str, Any], data: dict[str, Any],
         occurred_at: datetime, decision: Decision) -> MomentDecision:
    return MomentDecision(
        id=new_id("mom"), program_id=ctx.id, person_id=person.id, request_id=body.get("id"),
        moment=body["moment"], data=data, occurred_at=occurred_at, decision=decision.verdict,
        skip_reason=decision.skip_reason, channel=decision.channel, send_at=decision.send_at,
        outcomes=[o.to_dict() for o in decision.outcomes], config_version=ctx.program.config_version,
        created_at=utcnow())


def decision_dict(row: MomentDecision, person: Person, share_base: str | None,
                  outcomes: bool = True) -> dict[str, Any]:
    """Dump a moment's decision (the shape of moment-decision.json)."""
    out: dict[str, Any] = {
        "id": row.id, "external_id": person.external_id, "moment": row.moment,
        "occurred_at": to_rfc3339(row.occurred_at), "decided_at": to_rfc3339(row.created_at),
        "decision": row.decision, "skip_reason": row.skip_reason, "channel": row.channel,
        "send_at": to_rfc3339(row.send_at), "data": row.data,
        "link": None if row.code is None else {
            "advocate_id": row.advocate_id, "code": row.code,
            "url": f"{share_base}/r/{row.code}" if share_base else None},
        "response": row.response, "responded_at": to_rfc3339(row.responded_at),
        "config_version": row.config_version,
        "variants": experiments.public_variants(row.variants),
        "message": experiments.ask_message(row.variants),
    }
    if outcomes:
        out["outcomes"] = row.outcomes
    return out


def respond_to_ask(session: Session, ctx: ProgramContext, ask_id: str,
                   body: dict[str, Any]) -> Recorded:
    """Record what the person did with an ask (accepted, declined); a decline pauses asking."""
    row = session.scalar(select(MomentDecision).where(MomentDecision.program_id == ctx.id,
                                                      MomentDecision.id == ask_id))
    if row is None:
        raise NotFound("no ask with that id", code="ask_not_found")
    if row.decision != AskDecision.ASK:
        raise Conflict(f"this moment skipped ({row.skip_reason}): there is no ask to answer",
                       code="not_an_ask")
    at = _time(body.get("occurred_at"), "/occurred_at")
    if row.response != body["response"]:
        row.response, row.responded_at = body["response"], at
        session.commit()
    person = session.get(Person, row.person_id)
    assert person is not None
    return Recorded(row, person, created=False)


def profile(session: Session, ctx: ProgramContext, external_id: str,
            share_base: str | None) -> dict[str, Any]:
    """Return a person's consents, suppressions, latest asks and when they may next be asked."""
    person = get_person(session, ctx, external_id)
    now = utcnow()
    facts = recipient(session, ctx, person, None, now)
    when, blocked = next_ask_at(facts, ctx.config)
    rows = session.scalars(select(MomentDecision).where(MomentDecision.person_id == person.id)
                           .order_by(MomentDecision.created_at.desc(), MomentDecision.id)
                           .limit(PROFILE_ASKS))
    suppressions: list[Suppression] = list(session.scalars(select(Suppression).where(
        Suppression.program_id == ctx.id, Suppression.email_key == person.email_key)
        .order_by(Suppression.id))) if person.email_key else []
    return {
        "external_id": person.external_id, "email": person.email, "timezone": person.timezone,
        "attributes": person.attributes, "erased": person.erased_at is not None,
        "consent": consent_dict(ctx, person, history(session, ctx, person.id, person.email_key)),
        "suppressions": [{"reason": s.reason, "source": s.source,
                          "created_at": to_rfc3339(s.created_at)} for s in suppressions],
        "asks": [decision_dict(r, person, share_base) for r in rows],
        "next_ask_at": to_rfc3339(when), "ask_blocked_by": blocked,
    }


def prune_decisions(session: Session, cutoff: datetime, now: datetime, batch: int) -> int:
    """Drop the data and rule details of decisions older than ``cutoff`` (caller commits)."""
    rows = list(session.scalars(select(MomentDecision).where(
        MomentDecision.created_at < cutoff, MomentDecision.pruned_at.is_(None)).limit(batch)))
    for row in rows:
        strip_decision(row, now)
    return len(rows)


def strip_decision(row: MomentDecision, now: datetime) -> None:
    """Keep what was decided and why (codes); drop the moment's data and the rules' details."""
    row.data = {}
    row.outcomes = [{"rule": o["rule"], "outcome": o["outcome"], "detail": ""} for o in row.outcomes]
    row.pruned_at = now
