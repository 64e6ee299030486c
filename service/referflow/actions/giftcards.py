"""referflow's own gift-card ledger: issue, redeem, void. Every movement is an entry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from referflow import serialize
from referflow.actions.common import (
    Actor,
    ProgramContext,
    get_referral_row,
    retry_on_concurrent_update,
    reward_recipient,
)
from referflow.actions.events import emit
from referflow.actions.lifecycle import (
    committed_amounts,
    complete_if_paid,
    lock_referral,
    release_if_due,
)
from referflow.actions.links import get_advocate
from referflow.domain import referral as states
from referflow.domain.codes import (
    gift_card_code_key,
    gift_card_code_tail,
    new_gift_card_code,
    new_id,
)
from referflow.domain.program import REWARD_SIDES
from referflow.domain.timeutil import utcnow
from referflow.errors import Conflict, NotFound, ValidationFailed
from referflow.storage.models import GiftCard, GiftCardEntry, GiftCardStatus, Referral

ACTIVE, REDEEMED, VOIDED = GiftCardStatus.ACTIVE, GiftCardStatus.REDEEMED, GiftCardStatus.VOIDED


def issue_gift_card(session: Session, ctx: ProgramContext, body: dict[str, Any],
                    actor: Actor) -> list[GiftCard]:
    """Issue the gift cards a referral earned (exactly once per side), or a goodwill card."""
    if "referral_id" not in body:
        return [_issue_goodwill(session, ctx, body, actor)]
    if "amount" in body or "currency" in body:
        raise ValidationFailed("referral rewards take their amount from the program rules",
                               code="amount_not_allowed")
    try:
        return _issue_for_referral(session, ctx, body, actor)
    except IntegrityError:
        session.rollback()  # a concurrent call issued the same side first
        return _issue_for_referral(session, ctx, body, actor)


def _sides(amounts: dict[str, int], requested: str | None) -> list[str]:
    if requested in (None, "both"):
        sides = [side for side in REWARD_SIDES if amounts[side] > 0]
        if not sides:
            raise Conflict("this referral earns no gift card", code="no_monetary_reward")
        return sides
    assert requested is not None
    if amounts[requested] <= 0:
        raise Conflict(f"the {requested} side has no gift-card reward", code="no_monetary_reward")
    return [requested]


@retry_on_concurrent_update
def _issue_for_referral(session: Session, ctx: ProgramContext, body: dict[str, Any],
                        actor: Actor) -> list[GiftCard]:
    referral = get_referral_row(session, ctx, body["referral_id"])
    # Parallel issues of the two sides (or a retry) queue here, so the last one sees every card
    # and completes the referral; without the lock each could miss the other's card.
    lock_referral(session, referral)
    release_if_due(session, ctx, referral)
    if referral.status not in (states.APPROVED, states.REWARDED):
        raise Conflict(f"the referral is {referral.status}, not approved",
                       code="referral_not_approved")
    amounts = committed_amounts(ctx, referral)
    cards = []
    for side in _sides(amounts, body.get("side")):
        card = session.scalar(select(GiftCard).where(GiftCard.referral_id == referral.id,
                                                     GiftCard.side == side))
        if card is None:
            owner = referral.advocate_id if side == "advocate" else None
            card = _new_card(session, ctx, side, amounts[side], ctx.config.currency, actor,
                             referral_id=referral.id, advocate_id=owner,
                             reference=body.get("note"))
        cards.append(card)
    paid = {c.side: {"id": c.id, "side": c.side, "issuer": "ledger", "amount": c.amount,
                    "currency": c.currency, "external_id": c.id} for c in session.scalars(
        select(GiftCard).where(GiftCard.referral_id == referral.id))}
    complete_if_paid(session, ctx, referral, actor, paid)
    session.commit()
    return cards


def _issue_goodwill(session: Session, ctx: ProgramContext, body: dict[str, Any],
                    actor: Actor) -> GiftCard:
    advocate = get_advocate(session, ctx, advocate_id=body["advocate_id"])
    card = _new_card(session, ctx, "goodwill", body["amount"],
                     body.get("currency", ctx.config.currency), actor,
                     advocate_id=advocate.id, reference=body.get("note"))
    session.commit()
    return card


def _new_card(session: Session, ctx: ProgramContext, side: str, amount: int, currency: str,
              actor: Actor, *, referral_id: str | None = None, advocate_id: str | None = None,
              reference: str | None = None) -> GiftCard:
    now = utcnow()
    code, code_hash = _unused_code(session, ctx)
    card = GiftCard(id=new_id("gc"), program_id=ctx.id, code=code, code_hash=code_hash,
                    code_last4=gift_card_code_tail(code), referral_id=referral_id,
                    advocate_id=advocate_id, side=side, amount=amount, currency=currency,
                    balance=amount, status=ACTIVE, created_at=now,
                    expires_at=now + timedelta(days=ctx.config.gift_card_expiry_days))
    session.add(card)
    session.flush()
    _entry(session, card, "issue", amount, amount, actor, reference)
    # The outbox keeps the code's tail only: events.delivered_payload adds the code when sent.
    emit(session, ctx.id, "reward.issued", {
        "gift_card": serialize.gift_card(card, with_code=False), "issuer": "ledger",
        "recipient": reward_recipient(session, side, referral_id, advocate_id)})
    return card


def _unused_code(session: Session, ctx: ProgramContext) -> tuple[str, str]:
    """Draw a code no card has (by its keyed hash); return it with that hash."""
    while True:
        code = new_gift_card_code()
        code_hash = gift_card_code_key(ctx.secret, code)
        if session.scalar(select(GiftCard.id).where(GiftCard.code_hash == code_hash)) is None:
            return code, code_hash


def _entry(session: Session, card: GiftCard, kind: str, amount: int, balance_after: int,
           actor: Actor, reference: str | None) -> None:
    session.add(GiftCardEntry(gift_card_id=card.id, program_id=card.program_id, kind=kind,
                              amount=amount, balance_after=balance_after, reference=reference,
                              actor=f"{actor.type}:{actor.id}", at=utcnow()))


def get_card(session: Session, ctx: ProgramContext, raw_code: str) -> GiftCard:
    """Return a gift card of this program by code (as typed: case, spaces, dashes), or 404."""
    card = session.scalar(select(GiftCard).where(
        GiftCard.code_hash == gift_card_code_key(ctx.secret, raw_code), GiftCard.program_id == ctx.id))
    if card is None:
        raise NotFound("gift card not found", code="gift_card_not_found")
    return card


def entries_of(session: Session, card: GiftCard) -> list[GiftCardEntry]:
    """Return a card's ledger entries, oldest first."""
    return list(session.scalars(select(GiftCardEntry).where(GiftCardEntry.gift_card_id == card.id)
                                .order_by(GiftCardEntry.id)))


def redeem_gift_card(session: Session, ctx: ProgramContext, raw_code: str,
                     body: dict[str, Any], actor: Actor) -> GiftCard:
    """Take ``amount`` off a card's balance; never overdraws, even under concurrent calls."""
    card = get_card(session, ctx, raw_code)
    amount, now = body["amount"], utcnow()
    if body["currency"] != card.currency:
        raise ValidationFailed(f"the card is in {card.currency}", code="currency_mismatch")
    new_balance = session.execute(
        update(GiftCard)
        .where(GiftCard.id == card.id, GiftCard.status == ACTIVE, GiftCard.balance >= amount,
               GiftCard.expires_at > now)
        .values(balance=GiftCard.balance - amount,
                status=case((GiftCard.balance == amount, REDEEMED), else_=ACTIVE))
        .returning(GiftCard.balance)
        .execution_options(synchronize_session=False)).scalar()
    if new_balance is None:
        session.rollback()
        session.refresh(card)
        raise _redeem_refusal(card, amount, now)
    _entry(session, card, "redeem", -amount, new_balance, actor, body.get("reference"))
    session.flush()
    session.refresh(card)
    emit(session, ctx.id, "reward.redeemed", {"gift_card": serialize.gift_card(card, with_code=False),
                                              "amount": amount, "reference": body.get("reference")})
    session.commit()
    return card


def _redeem_refusal(card: GiftCard, amount: int, now: Any) -> Conflict:
    if card.status == VOIDED:
        return Conflict("the gift card was voided", code="gift_card_voided")
    if card.expires_at <= now:
        return Conflict("the gift card has expired", code="gift_card_expired")
    return Conflict(f"the balance is {card.balance}, less than {amount}",
                    code="insufficient_balance")


def void_referral_cards(session: Session, ctx: ProgramContext, referral: Referral,
                        actor: Actor) -> tuple[int, int]:
    """Void a reversed referral's cards; return (unredeemed amount voided, redeemed loss)."""
    voided = loss = 0
    cards = session.scalars(select(GiftCard).where(GiftCard.referral_id == referral.id,
                                                   GiftCard.status != VOIDED))
    for card in list(cards):
        remaining = _void(session, card)
        _entry(session, card, "void", -remaining, 0, actor, f"reversal of {referral.id}")
        voided += remaining
        loss += card.amount - remaining
    return voided, loss


def _void(session: Session, card: GiftCard) -> int:
    """Zero a card atomically against concurrent redemptions; return the balance it had."""
    while True:
        balance = card.balance
        done = session.execute(
            update(GiftCard).where(GiftCard.id == card.id, GiftCard.balance == balance,
                                   GiftCard.status != VOIDED)
            .values(balance=0, status=VOIDED)
            .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
        if done == 1:
            card.balance, card.status = 0, VOIDED
            return balance
        session.refresh(card)
        if card.status == VOIDED:
            return 0
