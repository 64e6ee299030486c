"""Reads for the dashboard's analytics pages that the lists and the statistics do not give:
an advocate's clicks by channel, the rewards a referral or an advocate earned, and the rewards
of the program's issuer by status (the outbox of payouts: pending, issuing, issued, failed).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, func, or_, select
from sqlalchemy.orm import Session

from referflow.actions.common import ProgramContext
from referflow.actions.lists import DEFAULT_LIMIT, Page, _check_limit, _page, invalid
from referflow.storage.models import Advocate, Click, GiftCard, Referral, Reward, RewardStatus

REWARD_STATUSES = tuple(str(s) for s in RewardStatus)
RECENT = 50  # the newest rewards and cards a detail page shows


@dataclass(frozen=True)
class StatusTotal:
    """How many rewards are in one status, and their value per currency (minor units)."""

    status: str
    count: int
    amounts: dict[str, int]


def advocate_labels(session: Session, ctx: ProgramContext, ids: set[str]) -> dict[str, str]:
    """Return how to call each of these advocates on a page: name, else email, else external id."""
    rows = session.execute(select(Advocate.id, Advocate.name, Advocate.email, Advocate.external_id)
                           .where(Advocate.program_id == ctx.id, Advocate.id.in_(sorted(ids))))
    return {id_: name or email or external_id for id_, name, email, external_id in rows}


def clicks_by_channel(session: Session, ctx: ProgramContext,
                      advocate_id: str) -> list[tuple[str | None, int]]:
    """Count an advocate's clicks per channel (None: no ``?ch=``), the most first."""
    rows = session.execute(
        select(Click.channel, func.count()).where(Click.program_id == ctx.id,
                                                  Click.advocate_id == advocate_id)
        .group_by(Click.channel).order_by(func.count().desc(), Click.channel))
    return [(channel, int(count)) for channel, count in rows]


def rewards_of_referral(session: Session, ctx: ProgramContext,
                        referral_id: str) -> tuple[list[Reward], list[GiftCard]]:
    """Return a referral's issuer rewards and ledger gift cards, oldest first."""
    rewards = session.scalars(select(Reward).where(
        Reward.program_id == ctx.id, Reward.referral_id == referral_id).order_by(Reward.created_at))
    cards = session.scalars(select(GiftCard).where(
        GiftCard.program_id == ctx.id, GiftCard.referral_id == referral_id)
        .order_by(GiftCard.created_at))
    return list(rewards), list(cards)


def rewards_of_advocate(session: Session, ctx: ProgramContext,
                        advocate_id: str) -> tuple[list[Reward], list[GiftCard]]:
    """Return the newest rewards and gift cards the advocate earned (their side only)."""
    rewards = session.scalars(
        select(Reward).join(Referral, Referral.id == Reward.referral_id)
        .where(Reward.program_id == ctx.id, Reward.side == "advocate",
               Referral.advocate_id == advocate_id)
        .order_by(Reward.created_at.desc(), Reward.id.desc()).limit(RECENT))
    cards = session.scalars(
        select(GiftCard).where(GiftCard.program_id == ctx.id, GiftCard.advocate_id == advocate_id,
                               or_(GiftCard.side == "advocate", GiftCard.referral_id.is_(None)))
        .order_by(GiftCard.created_at.desc(), GiftCard.id.desc()).limit(RECENT))
    return list(rewards), list(cards)


def list_rewards(session: Session, ctx: ProgramContext, status: str | None = None,
                 limit: int = DEFAULT_LIMIT, after: str | None = None) -> Page[Reward]:
    """Return the program's issuer rewards, newest first, optionally of one status."""
    if status is not None and status not in REWARD_STATUSES:
        raise invalid("status", f"one of {', '.join(REWARD_STATUSES)}")
    _check_limit(limit)
    query = select(Reward).where(Reward.program_id == ctx.id)
    if status is not None:
        query = query.where(Reward.status == status)
    page = _page(session, query, "rewards", Reward.created_at, Reward.id, limit, after)
    return Page([row[0] for row in page.items], page.next_cursor)


def reward_totals(session: Session, ctx: ProgramContext) -> list[StatusTotal]:
    """Count the program's issuer rewards and add up their value, per status (all of them)."""
    totals = {status: StatusTotal(status, 0, {}) for status in REWARD_STATUSES}
    rows = session.execute(
        select(Reward.status, Reward.currency, func.count(), func.sum(Reward.amount).cast(BigInteger))
        .where(Reward.program_id == ctx.id).group_by(Reward.status, Reward.currency))
    for status, currency, count, amount in rows:
        total = totals.setdefault(status, StatusTotal(status, 0, {}))
        totals[status] = StatusTotal(status, total.count + int(count),
                                     {**total.amounts, currency: int(amount or 0)})
    return list(totals.values())
