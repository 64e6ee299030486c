"""Referral lifecycle: claim, qualify, reverse, and the release of held referrals."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from referflow.actions.common import (
    Actor,
    ProgramContext,
    get_referral_row,
    history_of,
    move,
    reason,
    record,
    retry_on_concurrent_update,
)
from referflow.actions.eligibility import claim_facts, marks_of, save_marks
from referflow.actions.giftcards import void_referral_cards
from referflow.actions.lifecycle import enter_hold_or_approve, flag_advocate, release_if_due
from referflow.actions.provider_refs import wake
from referflow.domain import fraud
from referflow.domain import referral as states
from referflow.domain.codes import new_id, normalise_code
from referflow.domain.timeutil import parse_rfc3339, to_rfc3339, utcnow
from referflow.errors import Conflict, NotFound, ValidationFailed
from referflow.storage.locks import serialise_on
from referflow.storage.models import Advocate, Click, ProcessedEvent, Referral, ReferralCode, ReferralHistory

VERDICT_STATUS = {fraud.REJECT: states.REJECTED, fraud.REVIEW: states.IN_REVIEW,
                  fraud.ALLOW: states.PENDING}


def claim_referral(session: Session, ctx: ProgramContext, body: dict[str, Any],
                   actor: Actor) -> tuple[Referral, bool]:
    """Create a referral for a friend, or return the one they already have (first claim wins)."""
    friend_id = body["friend"]["external_id"]
    existing = find_referral_of_friend(session, ctx, friend_id)
    if existing is not None:
        return existing, False
    try:
        return _create_referral(session, ctx, body, actor), True
    except IntegrityError:
        session.rollback()  # a concurrent claim for the same friend won
        winner = find_referral_of_friend(session, ctx, friend_id)
        assert winner is not None
        return winner, False


def find_referral_of_friend(session: Session, ctx: ProgramContext,
                            friend_id: str) -> Referral | None:
    """Return a friend's referral in this program (by their external id), or None."""
    return session.scalar(select(Referral).where(
        Referral.program_id == ctx.id, Referral.friend_external_id == friend_id))


def _resolve_code(session: Session, ctx: ProgramContext,
                  body: dict[str, Any]) -> tuple[ReferralCode, Click | None]:
    click = None
    if "click_id" in body:
        click = session.scalar(select(Click).where(Click.id == body["click_id"],
                                                   Click.program_id == ctx.id))
        if click is None and "code" not in body:
            raise NotFound("unknown click id", code="unknown_click")
    raw = body.get("code") or (click.code if click else "")
    code = session.get(ReferralCode, normalise_code(raw)[:32])
    if code is None or code.program_id != ctx.id:
        raise NotFound("unknown referral code", code="unknown_code")
    if click is not None and click.code != code.code:
        click = None  # the click was for someone else's link: the typed code wins
    return code, click


def _create_referral(session: Session, ctx: ProgramContext, body: dict[str, Any],
                     actor: Actor) -> Referral:
    code, click = _resolve_code(session, ctx, body)
    # Velocity counts this advocate's recent claims: parallel claims must see each other.
    serialise_on(session, Advocate, code.advocate_id, "flagged")
    advocate = session.get(Advocate, code.advocate_id)
    assert advocate is not None
    now = utcnow()
    context = body.get("context", {})
    marks = marks_of(ctx, context, click)
    facts = claim_facts(session, ctx, advocate, code, click, body, marks, now)
    signals, outcomes = fraud.evaluate(facts)
    status = VERDICT_STATUS[fraud.verdict(signals, ctx.config.review)]
    referral = Referral(
        id=new_id("ref"), program_id=ctx.id, advocate_id=advocate.id, code=code.code,
        click_id=click.id if click else None, friend_external_id=body["friend"]["external_id"],
        friend_email=body["friend"]["email"].strip(), friend_email_key=facts.friend_email_key,
        status=status, reasons=signals, created_at=now, updated_at=now,
        review_deadline=now + timedelta(hours=ctx.config.review.deadline_hours)
        if status == states.IN_REVIEW else None,
    )
    session.add(referral)
    session.flush()
    save_marks(session, ctx, advocate.id, "friend", marks, referral.id, now)
    wake(session, ctx.id, referral.friend_external_id)  # provider events that waited for it
    record(session, ctx, referral, "claimed", actor, reasons=signals, data={
        "code": code.code, "click_id": referral.click_id, "rules": outcomes,
        "inputs": {**{f"{kind}_hash": key[:16] for kind, key in marks.items()},
                   **({"existing_customer": facts.existing_customer}
                      if facts.existing_customer else {}),
                   **({"purchased_at": to_rfc3339(facts.purchased_at)}
                      if facts.purchased_at else {})},
    })
    session.commit()
    return referral


def apply_late_signal(session: Session, ctx: ProgramContext, referral: Referral,
                      signal: fraud.Signal, actor: Actor) -> str:
    """Judge a signal raised after the claim by the program's review policy, as at claim time.

    ``allow`` records it; ``review`` and ``reject`` move a pending or held referral on. A referral
    already past approval is not moved: its signal is recorded for the audit.
    """
    decided = fraud.verdict([signal], ctx.config.review)
    referral.reasons = [*referral.reasons, signal]
    data = {"verdict": decided}
    if decided == fraud.ALLOW or referral.status not in (states.PENDING, states.HELD):
        record(session, ctx, referral, "signal_after_claim", actor, from_status=referral.status,
               reasons=[signal], data=data)
        return decided
    target = VERDICT_STATUS[decided]
    if target == states.IN_REVIEW:
        referral.review_deadline = utcnow() + timedelta(hours=ctx.config.review.deadline_hours)
    move(session, ctx, referral, target, "signal_after_claim", actor, reasons=[signal], data=data)
    return decided


def _first_time(session: Session, ctx: ProgramContext, source: str, event_id: str,
                referral_id: str | None) -> bool:
    """Record an external event id; False when it was already recorded (a duplicate)."""
    session.add(ProcessedEvent(program_id=ctx.id, source=source, event_id=event_id,
                               referral_id=referral_id))
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return False
    return True


@retry_on_concurrent_update
def qualify_referral(session: Session, ctx: ProgramContext, body: dict[str, Any],
                     actor: Actor) -> Referral:
    """Apply a qualifying event (first order / paid invoice); a repeated event id does nothing."""
    referral = _find_for_event(session, ctx, body)
    event = body["event"]
    occurred_at = _event_time(event["occurred_at"])
    if not _first_time(session, ctx, "qualify", event["id"], referral.id):
        return get_referral_row(session, ctx, referral.id)
    facts = {"event_id": event["id"], "type": event["type"], "amount": event["amount"],
             "currency": event["currency"], "occurred_at": to_rfc3339(occurred_at)}
    if referral.status not in (states.PENDING, states.IN_REVIEW) or referral.qualifying_event_id:
        _ignore(session, ctx, referral, actor, facts,
                reason("not_pending", f"The referral is {referral.status}, already past qualifying."))
        return referral
    decision = states.decide_qualification(ctx.config, event["type"], event["amount"],
                                           event["currency"], occurred_at)
    if decision.status == states.PENDING:
        _ignore(session, ctx, referral, actor, facts,
                reason(decision.reason or "", decision.message or ""))
        return referral
    _store_qualification(referral, facts, occurred_at, decision.hold_until)
    if referral.status == states.IN_REVIEW:  # decided when the review ends
        record(session, ctx, referral, "qualified_in_review", actor, from_status=referral.status,
               data={"event": facts, "hold_until": to_rfc3339(decision.hold_until)})
    else:
        enter_hold_or_approve(session, ctx, referral, actor, "qualified", {"event": facts})
    session.commit()
    return referral


def _event_time(raw: str) -> datetime:
    occurred_at = parse_rfc3339(raw)
    if states.in_the_future(occurred_at, utcnow()):
        raise ValidationFailed(f"occurred_at {raw[:40]} is in the future", code="occurred_in_future",
                               errors=[{"path": "/event/occurred_at", "message": "in the future"}])
    return occurred_at


def _ignore(session: Session, ctx: ProgramContext, referral: Referral, actor: Actor,
            facts: dict[str, Any], why: dict[str, str]) -> None:
    record(session, ctx, referral, "qualify_ignored", actor, from_status=referral.status,
           reasons=[why], data={"event": facts})
    session.commit()


def _find_for_event(session: Session, ctx: ProgramContext, body: dict[str, Any]) -> Referral:
    if "referral_id" in body:
        return get_referral_row(session, ctx, body["referral_id"])
    return referral_of_friend(session, ctx, body["friend_external_id"])


def read_referral(session: Session, ctx: ProgramContext,
                  referral_id: str) -> tuple[Referral, list[ReferralHistory]]:
    """Return a referral (its due hold released on read) and its history."""
    referral = get_referral_row(session, ctx, referral_id)
    release_if_due(session, ctx, referral)
    return referral, history_of(session, referral.id)


def referral_of_friend(session: Session, ctx: ProgramContext, friend_id: str) -> Referral:
    """Return the referral of a friend (by external id), or raise NotFound."""
    referral = find_referral_of_friend(session, ctx, friend_id)
    if referral is None:
        raise NotFound("no referral for that friend", code="referral_not_found")
    return referral


def _store_qualification(referral: Referral, facts: dict[str, Any], occurred_at: datetime,
                         hold_until: datetime | None) -> None:
    referral.qualifying_event_id = facts["event_id"]
    referral.qualified_amount = facts["amount"]
    referral.qualified_currency = facts["currency"]
    referral.qualified_at = occurred_at
    referral.hold_until = hold_until


@retry_on_concurrent_update
def reverse_referral(session: Session, ctx: ProgramContext, referral_id: str,
                     body: dict[str, Any], actor: Actor) -> Referral:
    """Reverse a referral after a refund or chargeback; void unredeemed rewards, record the loss."""
    referral = get_referral_row(session, ctx, referral_id)
    event = body.get("event")
    if event and not _first_time(session, ctx, "reverse", event["id"], referral.id):
        return get_referral_row(session, ctx, referral_id)
    if referral.status == states.REVERSED:
        session.rollback()
        return referral
    if not states.can_move(referral.status, states.REVERSED):
        raise Conflict(f"a {referral.status} referral cannot be reversed",
                       code="invalid_transition")
    now = utcnow()
    occurred_at = _event_time(event["occurred_at"]) if event and "occurred_at" in event else now
    decision = states.decide_reversal(body["reason"], referral.status, occurred_at,
                                      referral.hold_until, ctx.config.refund_after_hold)
    why = reason(decision.code, decision.message)
    details = {"event": event, "note": body.get("note"), "occurred_at": to_rfc3339(occurred_at)}
    if not decision.reverse:
        record(session, ctx, referral, "reversal_declined", actor, from_status=referral.status,
               reasons=[why], data=details)
        session.commit()
        return referral
    voided, loss = void_referral_cards(session, ctx, referral, actor)
    referral.reasons = [*referral.reasons, why]
    move(session, ctx, referral, states.REVERSED, "reversed", actor, reasons=[why],
         data={**details, "voided_amount": voided, "loss_amount": loss,
               "currency": ctx.config.currency})
    if decision.flag_advocate:
        flag_advocate(session, ctx, referral.advocate_id, actor, why, now)
    session.commit()
    return referral


