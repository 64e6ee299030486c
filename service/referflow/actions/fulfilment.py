"""What an approval earns, planned when the referral is approved (actions/lifecycle.py).

Per side (advocate, friend), by the reward's type (domain/program.py):

- ``gift_card``: a pending reward row for the program's issuer (auto-issue programs; the others
  pay with issueGiftCard);
- ``percent``, ``amount``, ``free_period``: a pending reward row, issued in the background by the
  store (actions/rewards.py) with its expiry;
- ``non_cash``: fulfilled at once, since announcing it is the fulfilment: an issued reward row
  with the perk, and ``reward.issued`` with the perk and its recipient;
- ``none``: nothing.

A tier's perks are fulfilled the same way when an advocate moves up into the tier: one row per
advocate and tier, whose id is derived from both, so they are granted once.

When a referral is reversed, its discount rewards are taken back (domain/rewards.py decides how):
voided at once when the store never had them, the loss recorded for a free period already on the
subscription, else queued for actions/rewards.py to switch the code off (or record it used).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from referflow import serialize
from referflow.actions.common import Actor, ProgramContext, record, reward_recipient
from referflow.actions.events import emit
from referflow.domain import rewards as reversal
from referflow.domain.codes import new_id
from referflow.domain.program import DISCOUNT_TYPES, REWARD_SIDES, Tier
from referflow.domain.program import Reward as RewardRule
from referflow.domain.timeutil import to_rfc3339
from referflow.storage.models import Advocate, Referral, Reward, RewardStatus

PERK = "perk"  # the issuer of perks: announcing them is the fulfilment
DISCOUNT_ISSUERS = {("shopify", "percent"): "shopify_discount_code",
                    ("shopify", "amount"): "shopify_discount_code",
                    ("stripe", "percent"): "stripe_promotion_code",
                    ("stripe", "amount"): "stripe_promotion_code",
                    ("stripe", "free_period"): "stripe_free_period"}


def plan_rewards(session: Session, ctx: ProgramContext, referral: Referral, now: datetime,
                 rules: Mapping[str, RewardRule]) -> None:
    """Plan (or, for perks, fulfil) what each side of an approved referral earns."""
    committed = {"advocate": referral.advocate_reward or 0, "friend": referral.friend_reward or 0}
    for side in REWARD_SIDES:
        rule = rules[side]
        if rule.type == "non_cash":
            _perk(session, ctx, Reward(id=new_id("rwd"), referral_id=referral.id, side=side),
                  now, {"perk": rule.perk}, reward_recipient(session, side, referral.id,
                                                             referral.advocate_id))
        elif rule.discount:
            assert rule.provider is not None
            days = rule.expiry_days or ctx.config.gift_card_expiry_days
            session.add(_row(ctx, now, referral_id=referral.id, side=side, kind=rule.type,
                             issuer=DISCOUNT_ISSUERS[(rule.provider, rule.type)],
                             amount=rule.amount if rule.type == "amount" else 0,
                             details={"provider": rule.provider, "percent": rule.percent},
                             expires_at=now + timedelta(days=days)))
        elif committed[side] and ctx.config.fulfilment.auto_issue:
            session.add(_row(ctx, now, referral_id=referral.id, side=side, kind="gift_card",
                             issuer=ctx.config.fulfilment.issuer, amount=committed[side]))


def _row(ctx: ProgramContext, now: datetime, **fields: Any) -> Reward:
    return Reward(id=new_id("rwd"), program_id=ctx.id, currency=ctx.config.currency,
                  status=RewardStatus.PENDING, attempts=0, next_attempt_at=now, created_at=now,
                  **fields)


def _perk(session: Session, ctx: ProgramContext, row: Reward, now: datetime,
          details: dict[str, Any], recipient: dict[str, Any]) -> Reward:
    row.program_id, row.kind, row.issuer, row.details = ctx.id, "non_cash", PERK, details
    row.amount, row.currency, row.status, row.attempts = 0, ctx.config.currency, RewardStatus.ISSUED, 1
    row.created_at = row.issued_at = now
    session.add(row)
    perks = details.get("perks") or ([details["perk"]] if details.get("perk") else [])
    emit(session, ctx.id, "reward.issued", {
        "issuer": PERK, "reward": serialize.reward(row), "perk": details.get("perk"),
        "perks": perks, "tier": details.get("tier"), "recipient": recipient})
    return row


def tier_perk_id(advocate_id: str, tier: str) -> str:
    """Return the id of an advocate's perks of a tier (the same every time: granted once)."""
    return "rwt_" + hashlib.sha256(f"{advocate_id}\x00{tier}".encode()).hexdigest()[:24]


def grant_tier_perks(session: Session, ctx: ProgramContext, advocate: Advocate,
                     before: str | None, tier: Tier | None, now: datetime) -> None:
    """Fulfil the perks of a tier the advocate moves up into, unless they had them already."""
    order = [t.name for t in ctx.config.tiers]
    rank = order.index(before) if before in order else -1
    if tier is None or not tier.perks or order.index(tier.name) <= rank:
        return
    perk_id = tier_perk_id(advocate.id, tier.name)
    if session.get(Reward, perk_id) is not None:  # the caller holds the advocate's lock
        return
    _perk(session, ctx, Reward(id=perk_id, referral_id=None, advocate_id=advocate.id, side="tier"),
          now, {"tier": tier.name, "perks": list(tier.perks)},
          reward_recipient(session, "advocate", None, advocate.id))


def issued_rewards(session: Session, referral_id: str) -> dict[str, dict[str, Any]]:
    """Return the issued rewards of a referral's sides, by side."""
    return {r.side: serialize.reward(r) for r in session.scalars(select(Reward).where(
        Reward.referral_id == referral_id, Reward.status == RewardStatus.ISSUED,
        Reward.side.in_(REWARD_SIDES)))}


def planned_sides(session: Session, referral_id: str) -> set[str]:
    """Return the sides of a referral that have a reward row (whatever its state)."""
    return set(session.scalars(select(Reward.side).where(
        Reward.referral_id == referral_id, Reward.side.in_(REWARD_SIDES))))


# -- reversal ----------------------------------------------------------------------------------

VOID = "void"  # the key in a reward's details that asks for, then records, its take-back


def take_back_rewards(session: Session, ctx: ProgramContext, referral: Referral, actor: Actor,
                      now: datetime) -> None:
    """Take back a just reversed referral's discount rewards, in the reversal's transaction."""
    rows = session.scalars(select(Reward).where(
        Reward.referral_id == referral.id, Reward.side.in_(REWARD_SIDES),
        Reward.kind.in_(DISCOUNT_TYPES)).order_by(Reward.side))
    for row in list(rows):
        action = reversal.on_reversal(row.kind, row.status, row.attempts)
        if action == reversal.OnReversal.VOID_NOW:
            settle_voided(session, ctx, row, referral, actor, reversal.Outcome.NOT_ISSUED, now)
        elif action == reversal.OnReversal.LOST:
            settle_voided(session, ctx, row, referral, actor, reversal.Outcome.USED, now)
        elif action == reversal.OnReversal.TAKE_BACK:
            want_back(row, now)


def want_back(row: Reward, now: datetime) -> None:
    """Queue a reward to be taken back from the store (its worker is the issuer's)."""
    row.details = {**(row.details or {}), VOID: {"wanted_at": to_rfc3339(now)}}
    row.status, row.next_attempt_at, row.lease_until = RewardStatus.PENDING, now, None


def wants_back(row: Reward) -> bool:
    """Tell whether a reward is queued to be taken back (not taken back yet)."""
    void = (row.details or {}).get(VOID)
    return isinstance(void, dict) and "outcome" not in void


def settle_voided(session: Session, ctx: ProgramContext, row: Reward, referral: Referral,
                  actor: Actor, outcome: reversal.Outcome, now: datetime) -> None:
    """Record a reward taken back: status, history entry, ``reward.voided`` (caller commits)."""
    result = reversal.voided(row.kind, row.amount, outcome)
    void = {**((row.details or {}).get(VOID) or {}), **result.to_dict(),
            "at": to_rfc3339(now)}
    row.details = {**(row.details or {}), VOID: void}
    row.status, row.lease_until = RewardStatus.VOIDED, None
    data = {"reward": serialize.reward(row), **result.to_dict(), "currency": row.currency}
    record(session, ctx, referral, "reward_voided", actor, from_status=referral.status, data=data)
    emit(session, ctx.id, "reward.voided", {
        **data, "referral_id": referral.id,
        "recipient": reward_recipient(session, row.side, referral.id, referral.advocate_id)})
