"""Referral lifecycle: claim, qualify, reverse, and the release of held referrals."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from referflow.actions.common import (
    Acted,
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
from referflow.actions.experiments import claim_variants
from referflow.actions.fulfilment import take_back_rewards
from referflow.actions.giftcards import void_referral_cards
from referflow.actions.lifecycle import enter_hold_or_approve, flag_advocate, release_if_due
from referflow.actions.offers import checkout_code
from referflow.actions.provider_refs import PAYMENT, remember, wake
from referflow.domain import fraud
from referflow.domain import referral as states
from referflow.domain.codes import new_id, normalise_code
from referflow.domain.timeutil import parse_rfc3339, to_rfc3339, utcnow
from referflow.errors import Conflict, NotFound, ValidationFailed
from referflow.storage.inserts import insert_new
from referflow.storage.locks import lock_and_load
from referflow.storage.models import (
    Advocate,
    Click,
    ProcessedEvent,
    ProviderRef,
    Referral,
    ReferralCode,
    ReferralHistory,
)

VERDICT_STATUS = {fraud.REJECT: states.REJECTED, fraud.REVIEW: states.IN_REVIEW,
                  fraud.ALLOW: states.PENDING}


def _missing(field: str, outcome: str, what: str) -> ValidationFailed:
    """An event that lacks what the action needs: ordinary traffic, nothing to do."""
    return ValidationFailed(f"the event carries no {what}", code=outcome, ordinary=outcome,
                            errors=[{"path": field, "message": "null"}])


def claim_referral(session: Session, ctx: ProgramContext, body: dict[str, Any],
                   actor: Actor) -> tuple[Referral, bool]:
    """Create a referral for a friend, or return the one they already have (first claim wins).

    An event without a code, a customer id or an email (null) concerns no referral: the refusal
    is ordinary (``no_code``, ``no_customer``, ``no_email``), as is a code nobody owns.
    A checkout's discount ``codes`` are searched for the referral code (domain/checkout.py).
    """
    if "codes" in body:
        body = {**body, "code": checkout_code(session, ctx, body.get("code"), body["codes"])}
    if not body.get("code") and not body.get("click_id"):
        raise _missing("/code", "no_code", "referral code")
    friend_id = body["friend"]["external_id"]
    if friend_id is None:
        raise _missing("/friend/external_id", "no_customer", "customer id")
    existing = find_referral_of_friend(session, ctx, friend_id)
    if existing is not None:
        return existing, False
    if body["friend"]["email"] is None:
        raise _missing("/friend/email", "no_email", "email address")
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
    found: Referral | None = session.scalar(_OF_FRIEND, {"program_id": ctx.id, "friend": friend_id})
    return found


# The hot path's reads, built once (building a statement cost more than running it).
_OF_FRIEND: Any = select(Referral).where(Referral.program_id == bindparam("program_id"),
                                         Referral.friend_external_id == bindparam("friend"))
_WITH_ADVOCATE: Any = select(Referral, Advocate).join(
    Advocate, Advocate.id == Referral.advocate_id).where(
    Referral.program_id == bindparam("program_id"))
_EVENT_REFERRAL = {"id": _WITH_ADVOCATE.where(Referral.id == bindparam("key")),
                   "friend": _WITH_ADVOCATE.where(Referral.friend_external_id == bindparam("key"))}


def _resolve_code(session: Session, ctx: ProgramContext,
                  body: dict[str, Any]) -> tuple[ReferralCode, Click | None]:
    click = None
    if "click_id" in body:
        click = session.scalar(select(Click).where(Click.id == body["click_id"],
                                                   Click.program_id == ctx.id))
        if click is None and not body.get("code"):
            raise NotFound("unknown click id", code="unknown_click", ordinary="unknown_click")
    raw = body.get("code") or (click.code if click else "")
    code = session.get(ReferralCode, normalise_code(raw)[:32])
    if code is None or code.program_id != ctx.id:
        raise NotFound("unknown referral code", code="unknown_code", ordinary="unknown_code")
    if click is not None and click.code != code.code:
        click = None  # the click was for someone else's link: the typed code wins
    return code, click


def _create_referral(session: Session, ctx: ProgramContext, body: dict[str, Any],
                     actor: Actor) -> Referral:
    code, click = _resolve_code(session, ctx, body)
    # Velocity counts this advocate's recent claims: parallel claims must see each other.
    advocate = lock_and_load(session, Advocate, code.advocate_id, "flagged")
    assert advocate is not None
    now = utcnow()
    context = body.get("context", {})
    marks = marks_of(ctx, context, click)
    looked = claim_facts(session, ctx, advocate, code, click, body, marks, now)
    facts = looked.facts
    signals, outcomes = fraud.evaluate(facts)
    status = VERDICT_STATUS[fraud.verdict(signals, ctx.config.review)]
    variants = claim_variants(session, ctx, advocate, now) if looked.experiments else []
    referral = Referral(
        id=new_id("ref"), program_id=ctx.id, advocate_id=advocate.id, code=code.code,
        click_id=click.id if click else None, channel=click.channel if click else None,
        friend_external_id=body["friend"]["external_id"],
        friend_email=body["friend"]["email"].strip(), friend_email_key=facts.friend_email_key,
        status=status, reasons=signals, created_at=now, updated_at=now,
        review_deadline=now + timedelta(hours=ctx.config.review.deadline_hours)
        if status == states.IN_REVIEW else None, variants=variants or None,
    )
    session.add(referral)
    session.flush()
    save_marks(session, ctx, advocate.id, "friend", marks, referral.id, now)
    if looked.waiting:  # provider events that waited for this friend: due now
        wake(session, ctx.id, referral.friend_external_id)
    record(session, ctx, referral, "claimed", actor, reasons=signals, data={
        "code": code.code, "click_id": referral.click_id, "rules": outcomes,
        "inputs": {**{f"{kind}_hash": key[:16] for kind, key in marks.items()},
                   **({"existing_customer": facts.existing_customer}
                      if facts.existing_customer else {}),
                   **({"purchased_at": to_rfc3339(facts.purchased_at)}
                      if facts.purchased_at else {})},
        **({"variants": variants} if variants else {}),
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
    """Record an external event id; False when it was already recorded (a duplicate).

    One INSERT that skips a recorded id (no flush): PostgreSQL waits for a concurrent insert of
    the same id and then skips it, as the unique constraint did. A duplicate ends the
    transaction, so what the caller reads next is fresh.
    """
    statement = insert_new(session.get_bind().dialect.name, ProcessedEvent,
                           ("program_id", "source", "event_id"))
    recorded = session.execute(statement, {
        "program_id": ctx.id, "source": source, "event_id": event_id,
        "referral_id": referral_id, "created_at": utcnow()}).first() is not None
    if not recorded:
        session.rollback()
    return recorded


@retry_on_concurrent_update
def qualify_referral(session: Session, ctx: ProgramContext, body: dict[str, Any],
                     actor: Actor) -> Acted:
    """Apply a qualifying event (first order / paid invoice); a repeated event id does nothing.

    A renewal or later order (the referral already qualified) is recorded and changes nothing
    (``already_qualified``); so is an event the program's rules do not count (its reason code).
    """
    referral, _advocate = _find_for_event(session, ctx, body)  # noqa: RUF059 (kept: see there)
    event = body["event"]
    occurred_at = _event_time(event["occurred_at"])
    if not _first_time(session, ctx, "qualify", event["id"], referral.id):
        return Acted(get_referral_row(session, ctx, referral.id), "duplicate", False)
    facts = {"event_id": event["id"], "type": event["type"], "amount": event["amount"],
             "currency": event["currency"], "occurred_at": to_rfc3339(occurred_at)}
    decision = states.decide_qualification(ctx.config, event["type"], event["amount"],
                                           event["currency"], occurred_at)
    if referral.qualifying_event_id:
        why = reason("already_qualified", f"The referral qualified with event "
                     f"{referral.qualifying_event_id}; a renewal or later order changes nothing.")
    elif referral.status not in (states.PENDING, states.IN_REVIEW):
        why = reason("not_pending", f"The referral is {referral.status}, past qualifying.")
    elif decision.status == states.PENDING:
        why = reason(decision.reason or "", decision.message or "")
    else:
        why = None
    if why is not None:
        _ignore(session, ctx, referral, actor, facts, why)
        return Acted(referral, why["code"], False)
    _store_qualification(referral, facts, occurred_at, decision.hold_until)
    references = [r for r in event.get("payment_references") or [] if r]
    if references:  # a refund or dispute naming only this payment finds the referral by them
        remember(session, ctx.id, PAYMENT, referral.friend_external_id, *references)
    if referral.status == states.IN_REVIEW:  # decided when the review ends
        record(session, ctx, referral, "qualified_in_review", actor, from_status=referral.status,
               data={"event": facts, "hold_until": to_rfc3339(decision.hold_until)})
    else:
        enter_hold_or_approve(session, ctx, referral, actor, "qualified", {"event": facts})
    session.commit()
    return Acted(referral, "qualified", True)


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


def _find_for_event(session: Session, ctx: ProgramContext,
                    body: dict[str, Any]) -> tuple[Referral, Advocate]:
    """The referral an event names, read with its advocate (whose tier the statistics place the
    change under; the caller keeps it referenced until the commit, as the session's identity map
    holds rows weakly): one statement."""
    if "referral_id" in body:
        by, key = "id", body["referral_id"]
        missing = NotFound(f"referral {key} not found", code="referral_not_found")
    elif body["friend_external_id"] is None:
        raise _missing("/friend_external_id", "no_customer", "customer id")
    else:
        by, key = "friend", body["friend_external_id"]
        missing = NotFound("no referral for that friend", code="referral_not_found",
                           ordinary="not_referred")
    found = session.execute(_EVENT_REFERRAL[by], {"program_id": ctx.id, "key": key}).first()
    if found is None:
        raise missing
    return found[0], found[1]


def referral_to_reverse(session: Session, ctx: ProgramContext, friend_id: str | None,
                        references: list[str | None] | None) -> Referral:
    """Find the referral a refund or dispute concerns: by customer id, else by the payment."""
    if friend_id:
        return referral_of_friend(session, ctx, friend_id)
    if references and any(references):
        return referral_of_payment(session, ctx, references)
    raise _missing("/friend_external_id", "no_customer", "customer id or payment reference")


def referral_of_payment(session: Session, ctx: ProgramContext,
                        references: list[str | None]) -> Referral:
    """Return the referral whose qualifying payment had one of these references.

    A refund or dispute of any other payment (a renewal, a customer nobody referred) concerns
    no referral: the refusal is ordinary (``unknown_payment``).
    """
    known = [r for r in references if r]
    customer = session.scalar(select(ProviderRef.customer).where(
        ProviderRef.program_id == ctx.id, ProviderRef.provider == PAYMENT,
        ProviderRef.ref.in_(known)).limit(1)) if known else None
    referral = find_referral_of_friend(session, ctx, customer) if customer else None
    if referral is None:
        raise NotFound("no referral qualified with that payment", code="unknown_payment",
                       ordinary="unknown_payment")
    return referral


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
        raise NotFound("no referral for that friend", code="referral_not_found",
                       ordinary="not_referred")
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
                     body: dict[str, Any], actor: Actor) -> Acted:
    """Reverse a referral after a refund or chargeback; void unredeemed rewards, record the loss.

    A refund is first sized by the program's ``refunds`` rule (a partial refund may leave the
    referral standing: ``partial_refund``), then timed against the hold (``refund_after_hold``).
    """
    referral = get_referral_row(session, ctx, referral_id)
    event = body.get("event")
    if event and not _first_time(session, ctx, "reverse", event["id"], referral.id):
        return Acted(get_referral_row(session, ctx, referral_id), "duplicate", False)
    if referral.status == states.REVERSED:
        session.rollback()
        return Acted(referral, "already_reversed", False)
    if not states.can_move(referral.status, states.REVERSED):
        raise Conflict(f"a {referral.status} referral cannot be reversed",
                       code="invalid_transition", ordinary="not_reversible", referral=referral)
    now = utcnow()
    occurred_at = _event_time(event["occurred_at"]) if event and "occurred_at" in event else now
    details: dict[str, Any] = {"event": event, "note": body.get("note"),
                               "occurred_at": to_rfc3339(occurred_at)}
    if body["reason"] == "refund":
        sized, returned = _size_refund(session, ctx, referral, event or {})
        details["refund"] = {"code": sized.code, "returned": returned}
        if not sized.reverse:
            record(session, ctx, referral, "refund_kept", actor, from_status=referral.status,
                   reasons=[reason(sized.code, sized.message)], data=details)
            session.commit()
            return Acted(referral, sized.code, False)
    decision = states.decide_reversal(body["reason"], referral.status, occurred_at,
                                      referral.hold_until, ctx.config.refund_after_hold)
    why = reason(decision.code, decision.message)
    if not decision.reverse:
        record(session, ctx, referral, "reversal_declined", actor, from_status=referral.status,
               reasons=[why], data=details)
        session.commit()
        return Acted(referral, decision.code, False)
    voided, loss = void_referral_cards(session, ctx, referral, actor)
    referral.reasons = [*referral.reasons, why]
    move(session, ctx, referral, states.REVERSED, "reversed", actor, reasons=[why],
         data={**details, "voided_amount": voided, "loss_amount": loss,
               "currency": ctx.config.currency})
    take_back_rewards(session, ctx, referral, actor, now)  # discount codes, free periods
    if decision.flag_advocate:
        flag_advocate(session, ctx, referral.advocate_id, actor, why, now)
    session.commit()
    return Acted(referral, "reversed", True)


def _size_refund(session: Session, ctx: ProgramContext, referral: Referral,
                 event: dict[str, Any]) -> tuple[states.ReversalDecision, int]:
    """Judge a refund's size by the program's rule, counting the partial refunds kept before."""
    currency = event.get("currency")
    if currency and referral.qualified_currency and currency != referral.qualified_currency:
        raise ValidationFailed(f"the refund is in {currency}, the payment was in "
                               f"{referral.qualified_currency}", code="currency_mismatch",
                               errors=[{"path": "/event/currency", "message": "not the "
                                        "currency of the qualifying payment"}])
    kept = [h.data.get("event") or {} for h in history_of(session, referral.id)
            if h.action == "refund_kept"]
    refund = states.Refund(
        amount=event.get("amount"), total=event.get("refunded_total"), full=event.get("full"),
        earlier_amounts=sum(int(e.get("amount") or 0) for e in kept),
        earlier_total=max((int(e.get("refunded_total") or 0) for e in kept), default=0))
    decision = states.decide_refund(ctx.config.refunds, refund, referral.qualified_amount,
                                    ctx.config.min_qualifying_amount)
    return decision, refund.returned
