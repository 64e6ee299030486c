"""Approving a referral: monthly caps, the reward committed by tier, tier changes, flags."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from referflow.actions.common import Actor, ProgramContext, move, reason
from referflow.actions.events import emit
from referflow.domain import referral as states
from referflow.domain.calendar import month_start, next_month_start
from referflow.domain.timeutil import to_rfc3339
from referflow.storage.locks import serialise_on
from referflow.storage.models import Advocate, AdvocateEvent, Program, Referral

COUNTED = (states.APPROVED, states.REWARDED)


def approve(session: Session, ctx: ProgramContext, referral: Referral, actor: Actor, action: str,
            now: datetime, data: dict[str, Any] | None = None) -> None:
    """Approve a referral unless a monthly cap says defer or reject; update the advocate's tier."""
    if _has_caps(ctx):  # the caps are read after the lock, so parallel approvals count each other
        if ctx.config.caps.program_spend_per_month:
            serialise_on(session, Program, ctx.id, "config_version")
        serialise_on(session, Advocate, referral.advocate_id, "flagged")
    advocate = session.get(Advocate, referral.advocate_id)
    assert advocate is not None
    advocate_amount = ctx.config.advocate_reward_in(advocate.tier).amount \
        if ctx.config.advocate_reward_in(advocate.tier).monetary else 0
    friend_amount = ctx.config.friend_reward.amount if ctx.config.friend_reward.monetary else 0
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
    _update_tier(session, ctx, advocate, now)
    if ctx.config.fulfilment.auto_issue:
        from referflow.actions.rewards import plan_rewards

        plan_rewards(session, ctx, referral, now)


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


def _update_tier(session: Session, ctx: ProgramContext, advocate: Advocate, now: datetime) -> None:
    if not ctx.config.tiers:
        return
    approved = approved_count(session, advocate.id)
    tier = ctx.config.tier_for(approved)
    name = tier.name if tier else None
    if name == advocate.tier:
        return
    change = {"from": advocate.tier, "to": name, "approved": approved,
              "perks": list(tier.perks) if tier else []}
    session.add(AdvocateEvent(advocate_id=advocate.id, program_id=ctx.id, at=now,
                              action="tier_changed", actor_type="system", actor_id="tiers",
                              data=change))
    emit(session, ctx.id, "advocate.tier_changed", {
        "advocate": {"id": advocate.id, "external_id": advocate.external_id}, **change})
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
