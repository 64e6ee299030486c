"""The review queue: list, approve, decline, and the deadline rule for unreviewed referrals."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import literal, select, tuple_
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from referflow.actions.common import (
    SYSTEM,
    Actor,
    ProgramContext,
    get_referral_row,
    load_program,
    move,
    reason,
    retry_on_concurrent_update,
)
from referflow.actions.lifecycle import enter_hold_or_approve
from referflow.domain import referral as states
from referflow.domain.timeutil import to_rfc3339, utcnow
from referflow.errors import Conflict
from referflow.storage.models import Referral

POLITE_DECLINE = ("Thanks for spreading the word! This referral did not meet the program's "
                  "terms, so no reward applies this time.")


def list_reviews(session: Session, ctx: ProgramContext, limit: int,
                 after: str | None) -> list[Referral]:
    """Return referrals waiting for review, oldest first (cursor: the last id seen).

    Ids are random, so the order is by creation time, the id breaking ties; the cursor resumes
    after the (created_at, id) of the referral it names.
    """
    query = select(Referral).where(Referral.program_id == ctx.id,
                                   Referral.status == states.IN_REVIEW)
    if after:
        anchor = session.scalar(select(Referral).where(Referral.program_id == ctx.id,
                                                       Referral.id == after))
        query = (query.where(tuple_(Referral.created_at, Referral.id)
                             > tuple_(literal(anchor.created_at), literal(anchor.id)))
                 if anchor is not None else query.where(Referral.id > after))
    return list(session.scalars(query.order_by(Referral.created_at, Referral.id).limit(limit)))


def _in_review(session: Session, ctx: ProgramContext, referral_id: str) -> Referral:
    referral = get_referral_row(session, ctx, referral_id)
    if referral.status != states.IN_REVIEW:
        raise Conflict(f"the referral is {referral.status}, not in review", code="not_in_review")
    return referral


@retry_on_concurrent_update
def approve_referral(session: Session, ctx: ProgramContext, referral_id: str,
                     body: dict[str, Any], actor: Actor) -> Referral:
    """Approve a referral in review: it resumes where its qualification puts it."""
    referral = _in_review(session, ctx, referral_id)
    _resume(session, ctx, referral, actor, {"note": body.get("note")})
    session.commit()
    return referral


def _resume(session: Session, ctx: ProgramContext, referral: Referral, actor: Actor,
            data: dict[str, Any]) -> None:
    referral.review_deadline = None
    if referral.qualifying_event_id is None:
        move(session, ctx, referral, states.PENDING, "review_approved", actor, data=data)
    else:
        enter_hold_or_approve(session, ctx, referral, actor, "review_approved", data)


@retry_on_concurrent_update
def decline_referral(session: Session, ctx: ProgramContext, referral_id: str,
                     body: dict[str, Any], actor: Actor) -> Referral:
    """Decline a referral in review with a polite reason a workflow can send on."""
    referral = _in_review(session, ctx, referral_id)
    _decline(session, ctx, referral, actor, body.get("message") or POLITE_DECLINE,
             {"note": body.get("note")})
    session.commit()
    return referral


def _decline(session: Session, ctx: ProgramContext, referral: Referral, actor: Actor,
             message: str, data: dict[str, Any]) -> None:
    why = reason("declined_in_review", message)
    referral.review_deadline = None
    referral.reasons = [*referral.reasons, why]
    move(session, ctx, referral, states.REJECTED, "review_declined", actor, reasons=[why],
         data=data)


def resolve_expired_reviews(session: Session, secret: str, now: datetime | None = None,
                            limit: int = 500) -> int:
    """Apply each program's deadline rule to reviews past their deadline; idempotent."""
    now = now or utcnow()
    expired = list(session.scalars(select(Referral).where(
        Referral.status == states.IN_REVIEW, Referral.review_deadline <= now)
        .order_by(Referral.review_deadline).limit(limit)))
    done = 0
    for referral in expired:
        ctx = load_program(session, referral.program_id, secret)
        data = {"review_deadline": to_rfc3339(referral.review_deadline), "rule": "deadline"}
        if ctx.config.review.on_deadline == "approve":
            _resume(session, ctx, referral, SYSTEM, data)
        else:
            _decline(session, ctx, referral, SYSTEM, POLITE_DECLINE, data)
        try:
            session.commit()
            done += 1
        except StaleDataError:  # a reviewer decided first
            session.rollback()
    return done
