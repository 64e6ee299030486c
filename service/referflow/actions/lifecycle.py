"""The referral's life after the claim: hold, approval under the monthly caps, reward planning,
tier changes, and completion ("rewarded" once every paid side has been paid).

One home for these rules: the API's use cases (qualify, review, gift cards), the background
sweep and the reward issuers all call these functions; none of them decides it again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from referflow.actions.common import SYSTEM, Actor, ProgramContext, load_program, move, reason
from referflow.actions.events import emit
from referflow.actions.experiments import variant_rewards
from referflow.actions.fulfilment import (
    grant_tier_perks,
    issued_rewards,
    plan_rewards,
    planned_sides,
)
from referflow.actions.people import external_key
from referflow.domain import referral as states
from referflow.domain.calendar import month_start, next_month_start
from referflow.domain.program import REWARD_SIDES, Reward, Tier
from referflow.domain.timeutil import to_rfc3339, utcnow
from referflow.errors import NotFound, ValidationFailed
from referflow.storage.locks import lock_and_load, serialise_on
from referflow.storage.models import (
    Advocate,
    AdvocateEvent,
    MomentDecision,
    Person,
    Program,
    Referral,
)

COUNTED = tuple(sorted(states.APPROVED_COUNTED))  # domain/referral.py's rule, as SQL IN wants it
TIERS = Actor("system", "tiers")


def lock_referral(session: Session, referral: Referral) -> None:
    """Take the referral's row lock (the first in the lock order) and reread it under the lock."""
    lock_and_load(session, Referral, referral.id, "status")


def approve(session: Session, ctx: ProgramContext, referral: Referral, actor: Actor, action: str,
            now: datetime, data: dict[str, Any] | None = None) -> None:
    """Approve a referral unless a monthly cap says defer or reject; update the advocate's tier."""
    # Lock order referral -> programme -> advocate, the order every other writer of them uses.
    serialise_on(session, Referral, referral.id, "status")
    if _has_caps(ctx):  # the caps are read after the lock, so parallel approvals count each other
        if ctx.config.caps.program_spend_per_month:
            serialise_on(session, Program, ctx.id, "config_version")
        serialise_on(session, Advocate, referral.advocate_id, "flagged")
    # Read after the lock, even when the session holds the row already (qualify reads it with
    # the referral): the tier decides the rewards.
    advocate = session.get(Advocate, referral.advocate_id, populate_existing=True)
    assert advocate is not None
    # The one place a referral's rewards are resolved: tier, experiment variant, base.
    rewards = ctx.config.rewards_for(advocate.tier, variant_rewards(session, referral))
    advocate_amount, friend_amount = (_paid(rewards[side]) for side in REWARD_SIDES)
    capped = _cap_hit(session, ctx, referral, advocate_amount + friend_amount, now)
    if capped is not None:
        _apply_cap(session, ctx, referral, capped, actor, now, data)
        return
    referral.advocate_reward, referral.friend_reward = advocate_amount, friend_amount
    referral.approved_at = now
    move(session, ctx, referral, states.APPROVED, action, actor, data={
        **(data or {}), "tier": advocate.tier,
        "rewards": {"advocate": advocate_amount, "friend": friend_amount}})
    session.flush()
    update_tier(session, ctx, advocate, now)
    plan_rewards(session, ctx, referral, now, rewards)
    complete_if_paid(session, ctx, referral, actor, {})  # only perks: rewarded at once


def _paid(reward: Reward) -> int:
    return reward.amount if reward.monetary else 0


def _has_caps(ctx: ProgramContext) -> bool:
    caps = ctx.config.caps
    return bool(caps.advocate_rewards_per_month or caps.program_spend_per_month)


def _cap_hit(session: Session, ctx: ProgramContext, referral: Referral, amount: int,
             now: datetime) -> dict[str, str] | None:
    caps = ctx.config.caps
    start = month_start(now, ctx.config.timezone)
    if caps.advocate_rewards_per_month:
        count = session.scalar(select(func.count()).select_from(Referral).where(
            Referral.advocate_id == referral.advocate_id, Referral.status.in_(COUNTED),
            Referral.approved_at >= start)) or 0
        if count >= caps.advocate_rewards_per_month:
            return reason("advocate_cap_reached", f"The advocate already has {count} rewards this "
                          f"month (cap {caps.advocate_rewards_per_month}).")
    if caps.program_spend_per_month:
        spent = session.scalar(select(func.coalesce(func.sum(
            func.coalesce(Referral.advocate_reward, 0) + func.coalesce(Referral.friend_reward, 0)),
            0)).where(Referral.program_id == ctx.id, Referral.status.in_(COUNTED),
                      Referral.approved_at >= start)) or 0
        if spent + amount > caps.program_spend_per_month:
            return reason("budget_exhausted", f"This month's reward budget "
                          f"({caps.program_spend_per_month}) is spent ({spent} committed).")
    return None


def _apply_cap(session: Session, ctx: ProgramContext, referral: Referral, capped: dict[str, str],
               actor: Actor, now: datetime, data: dict[str, Any] | None) -> None:
    if ctx.config.caps.on_cap == "reject":
        referral.reasons = [*referral.reasons, capped]
        move(session, ctx, referral, states.REJECTED, "cap_rejected", actor, reasons=[capped],
             data=data)
        return
    referral.hold_until = next_month_start(now, ctx.config.timezone)
    move(session, ctx, referral, states.HELD, "cap_deferred", actor, reasons=[capped],
         data={**(data or {}), "hold_until": to_rfc3339(referral.hold_until)})


def approved_count(session: Session, advocate_id: str) -> int:
    """Count an advocate's approved (and rewarded) referrals."""
    return session.scalar(select(func.count()).select_from(Referral).where(
        Referral.advocate_id == advocate_id, Referral.status.in_(COUNTED))) or 0


def moment_counts(session: Session, ctx: ProgramContext, external_id: str) -> dict[str, int]:
    """Count the moments recorded for a person (asked or not), by moment type."""
    person_id = select(Person.id).where(Person.program_id == ctx.id,
                                        Person.external_key == external_key(ctx, external_id))
    return {moment: count for moment, count in session.execute(
        select(MomentDecision.moment, func.count()).where(MomentDecision.person_id.in_(person_id))
        .group_by(MomentDecision.moment))}


def _reached(session: Session, ctx: ProgramContext, advocate: Advocate) -> tuple[Tier | None, int]:
    approved = approved_count(session, advocate.id)
    moments = moment_counts(session, ctx, advocate.external_id) \
        if ctx.config.tiers_need_moments else {}
    return ctx.config.tier_for(approved, moments), approved


def update_tier(session: Session, ctx: ProgramContext, advocate: Advocate, now: datetime) -> None:
    """Move an advocate to the highest tier they reach (approved referrals, recorded moments).

    The one automatic tier update; a tier set by hand (setAdvocateTier) is never changed by it.
    """
    if not ctx.config.tiers:
        return
    lock_and_load(session, Advocate, advocate.id, "flagged")  # against a tier set by hand meanwhile
    if advocate.tier_manual:
        return
    tier, approved = _reached(session, ctx, advocate)
    _change_tier(session, ctx, advocate, tier, approved, now, TIERS)


def update_tier_after_moment(session: Session, ctx: ProgramContext, external_id: str,
                             now: datetime) -> None:
    """Re-evaluate the tier of the advocate a moment was recorded for, if a tier needs moments."""
    if not ctx.config.tiers_need_moments:
        return
    advocate = session.scalar(select(Advocate).where(Advocate.program_id == ctx.id,
                                                     Advocate.external_id == external_id))
    if advocate is not None:
        update_tier(session, ctx, advocate, now)


def set_tier(session: Session, ctx: ProgramContext, advocate_id: str, body: dict[str, Any],
             actor: Actor) -> Advocate:
    """Set an advocate's tier by hand (it sticks), or hand it back to the rules (``automatic``)."""
    advocate = session.scalar(select(Advocate).where(Advocate.program_id == ctx.id,
                                                     Advocate.id == advocate_id))
    if advocate is None:
        raise NotFound("advocate not found", code="advocate_not_found")
    lock_and_load(session, Advocate, advocate.id, "flagged")
    tier, approved = _reached(session, ctx, advocate)
    if not body.get("automatic"):
        tier = _named_tier(ctx, body["tier"])
    advocate.tier_manual = not body.get("automatic")
    _change_tier(session, ctx, advocate, tier, approved, utcnow(), actor, always=True, extra={
        "manual": advocate.tier_manual, "note": body.get("note")})
    session.commit()
    return advocate


def _named_tier(ctx: ProgramContext, name: str | None) -> Tier | None:
    if name is None:
        return None
    for tier in ctx.config.tiers:
        if tier.name == name:
            return tier
    known = ", ".join(t.name for t in ctx.config.tiers) or "none configured"
    raise ValidationFailed(f"unknown tier {name[:40]!r} (tiers: {known})", code="unknown_tier",
                           errors=[{"path": "/tier", "message": "unknown tier"}])


def _change_tier(session: Session, ctx: ProgramContext, advocate: Advocate, tier: Tier | None,
                 approved: int, now: datetime, actor: Actor, always: bool = False,
                 extra: dict[str, Any] | None = None) -> None:
    """Record a tier change in advocate_events and emit advocate.tier_changed when it moves.

    ``always``: record the entry even when the tier stays (a tier set by hand, or handed back).
    """
    name = tier.name if tier else None
    if name == advocate.tier and not always:
        return
    change = {"from": advocate.tier, "to": name, "approved": approved,
              "perks": list(tier.perks) if tier else []}
    session.add(AdvocateEvent(advocate_id=advocate.id, program_id=ctx.id, at=now,
                              action="tier_set" if always else "tier_changed",
                              actor_type=actor.type, actor_id=actor.id,
                              data={**change, **(extra or {})}))
    if name != advocate.tier:
        emit(session, ctx.id, "advocate.tier_changed", {
            "advocate": {"id": advocate.id, "external_id": advocate.external_id}, **change})
    grant_tier_perks(session, ctx, advocate, advocate.tier, tier, now)
    advocate.tier = name


def flag_advocate(session: Session, ctx: ProgramContext, advocate_id: str, actor: Actor,
                  why: dict[str, str], now: datetime) -> None:
    """Flag an advocate (after a chargeback or a loss): their next claims go to review."""
    advocate = session.get(Advocate, advocate_id)
    assert advocate is not None
    advocate.flagged = True
    session.add(AdvocateEvent(advocate_id=advocate_id, program_id=ctx.id, at=now,
                              action="flagged", actor_type=actor.type, actor_id=actor.id,
                              data={"reason": why}))


def enter_hold_or_approve(session: Session, ctx: ProgramContext, referral: Referral, actor: Actor,
                          action: str, data: dict[str, Any]) -> None:
    """Move a qualified referral on: held until its hold ends, or approved when it has ended."""
    now = utcnow()
    if referral.hold_until is not None and referral.hold_until > now:
        move(session, ctx, referral, states.HELD, action, actor, data={
            **data, "hold_days": ctx.config.hold_days,
            "hold_until": to_rfc3339(referral.hold_until)})
    else:
        approve(session, ctx, referral, actor, action, now, data)


def release_if_due(session: Session, ctx: ProgramContext, referral: Referral,
                   now: datetime | None = None) -> bool:
    """Approve a held referral whose hold has ended; safe to call from many places at once."""
    now = now or utcnow()
    if referral.status != states.HELD or referral.hold_until is None or referral.hold_until > now:
        return False
    try:
        approve(session, ctx, referral, SYSTEM, "hold_released", now,
                {"hold_until": to_rfc3339(referral.hold_until)})
        session.commit()
    except StaleDataError:  # someone else released (or reversed) it first, maybe while we waited
        session.rollback()
        session.refresh(referral)
        return False
    return referral.status == states.APPROVED


def release_due_holds(session: Session, secret: str, now: datetime | None = None,
                      limit: int = 500) -> int:
    """Approve every held referral whose hold has ended; idempotent, returns how many moved."""
    now = now or utcnow()
    due = list(session.scalars(select(Referral).where(
        Referral.status == states.HELD, Referral.hold_until <= now)
        .order_by(Referral.hold_until).limit(limit)))
    contexts: dict[str, ProgramContext] = {}
    released = 0
    for referral in due:
        if referral.program_id not in contexts:
            contexts[referral.program_id] = load_program(session, referral.program_id, secret)
        released += release_if_due(session, contexts[referral.program_id], referral, now)
    return released


def committed_amounts(ctx: ProgramContext, referral: Referral) -> dict[str, int]:
    """Return each side's reward amount as committed at approval (config for older rows)."""
    committed = {"advocate": referral.advocate_reward, "friend": referral.friend_reward}
    return {side: amount if amount is not None else
            (ctx.config.reward_for(side).amount if ctx.config.reward_for(side).monetary else 0)
            for side, amount in committed.items()}


def complete_if_paid(session: Session, ctx: ProgramContext, referral: Referral, actor: Actor,
                     paid: dict[str, dict[str, Any]]) -> bool:
    """Mark an approved referral rewarded once every side with a reward is paid: a side with a
    gift-card amount or a reward row is due; ``paid`` adds to the issued reward rows."""
    if referral.status != states.APPROVED:
        return False
    amounts = committed_amounts(ctx, referral)
    due = {side for side in REWARD_SIDES if amounts[side] > 0} | planned_sides(session, referral.id)
    paid = {**issued_rewards(session, referral.id), **paid}
    if not due or not due <= set(paid):
        return False
    rewards = ctx.config.rewards_for(None, variant_rewards(session, referral))
    perks = {side: rewards[side].perk for side in REWARD_SIDES if rewards[side].type == "non_cash"}
    move(session, ctx, referral, states.REWARDED, "rewarded", actor, data={
        "rewards": [paid[side] for side in REWARD_SIDES if side in paid], "non_cash": perks})
    return True
