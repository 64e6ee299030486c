"""The advocate page: its tokens (permanent and short-lived), and what it shows.

Permanent tokens are derived from the install's hashing key and the advocate's link
generation (domain/portal.py), so ``portal_url`` can be given out again on every read while
the database keeps only a keyed hash; rotation moves to the next generation. Short-lived
tokens (createPortalToken, for embedding) are signed with itsdangerous and carry the advocate,
the generation and the expiry: no table, nothing to clean up, and a rotation ends them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, select
from sqlalchemy.orm import Session, undefer

from referflow.actions.common import Actor, ProgramContext
from referflow.actions.links import advocate_stats, get_advocate
from referflow.actions.people import external_key
from referflow.domain import portal as rules
from referflow.domain import referral as states
from referflow.domain.program import ProgramConfig
from referflow.domain.timeutil import to_rfc3339, utcnow
from referflow.errors import NotFound
from referflow.storage.models import (
    Advocate,
    AdvocateEvent,
    GiftCard,
    Person,
    Program,
    Referral,
    ReferralCode,
)
from referflow.storage.models import Reward as IssuedReward

TOKEN_LIFETIME = timedelta(hours=1)
SHOWN_REFERRALS = 100
LEADERBOARD_SIZE = 10
_SALT = "referflow.portal.v1"
_GONE = "this page link is unknown, rotated or switched off"
ERASED = "erased:"  # how actions/privacy.py renames an erased advocate: their page is gone too


def _serializer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(rules.signing_key(secret), salt=_SALT)


def ensure_token_hash(ctx: ProgramContext, advocate: Advocate) -> bool:
    """Store the hash of the advocate's current permanent token if missing; True if it was."""
    wanted = rules.permanent_token_hash(ctx.secret, advocate.id, advocate.portal_generation)
    if advocate.portal_token_hash == wanted:
        return False
    advocate.portal_token_hash = wanted
    return True


def portal_url(session: Session, ctx: ProgramContext, advocate: Advocate, base: str) -> str | None:
    """Return the advocate's permanent page URL (None when the program switched it off).

    Advocates enrolled before the page existed get their token hash here (and committed):
    the value is derived, so concurrent readers write the same one.
    """
    if ensure_token_hash(ctx, advocate):
        session.commit()
    if not ctx.config.portal.permanent_link or _erased(advocate):
        return None
    return f"{base}/p/{rules.permanent_token(ctx.secret, advocate.id, advocate.portal_generation)}"


def rotate(session: Session, ctx: ProgramContext, advocate_id: str, actor: Actor,
           now: datetime | None = None) -> Advocate:
    """Move the advocate to a new page token: the old permanent and short-lived ones stop working."""
    advocate = get_advocate(session, ctx, advocate_id=advocate_id)
    session.refresh(advocate, with_for_update=True)  # rotations of one advocate queue here
    now = now or utcnow()
    advocate.portal_generation += 1
    advocate.portal_rotated_at = now
    ensure_token_hash(ctx, advocate)
    session.add(AdvocateEvent(advocate_id=advocate.id, program_id=ctx.id, at=now,
                              action="portal_rotated", actor_type=actor.type, actor_id=actor.id,
                              data={"generation": advocate.portal_generation}))
    session.commit()
    return advocate


@dataclass(frozen=True)
class PortalToken:
    """A short-lived page token for one advocate (createPortalToken)."""

    token: str
    expires_at: datetime


def issue_token(ctx: ProgramContext, advocate: Advocate, now: datetime | None = None) -> PortalToken:
    """Sign a page token for one advocate that works until an hour from now (or a rotation)."""
    expires = (now or utcnow()).replace(microsecond=0) + TOKEN_LIFETIME
    token = _serializer(ctx.secret).dumps(
        [advocate.id, advocate.portal_generation, int(expires.timestamp())])
    return PortalToken(str(token), expires)


@dataclass(frozen=True)
class Opened:
    """A page token that opens: the program, the advocate, and whether the token is short-lived."""

    ctx: ProgramContext
    advocate: Advocate
    short_lived: bool


def open_page(session: Session, secret: str, token: str, now: datetime | None = None) -> Opened:
    """Return whose page a token opens, or raise NotFound (unknown, expired, rotated, off)."""
    if "." in token:
        return _open_signed(session, secret, token, now or utcnow())
    advocate = session.scalar(select(Advocate).where(
        Advocate.portal_token_hash == rules.token_hash(secret, token)))
    if advocate is None or _erased(advocate):
        raise NotFound(_GONE, code="portal_not_found")
    ctx = _context(session, secret, advocate)
    if not ctx.config.portal.permanent_link:
        raise NotFound(_GONE, code="portal_not_found")
    return Opened(ctx, advocate, short_lived=False)


def _open_signed(session: Session, secret: str, token: str, now: datetime) -> Opened:
    try:
        advocate_id, generation, expires = _serializer(secret).loads(token)
    except (BadSignature, ValueError, TypeError) as exc:
        raise NotFound(_GONE, code="portal_not_found") from exc
    if not isinstance(expires, int) or datetime.fromtimestamp(expires, UTC) <= now:
        raise NotFound("this page link has expired: ask for a new one", code="portal_link_expired")
    advocate = session.get(Advocate, advocate_id) if isinstance(advocate_id, str) else None
    if advocate is None or advocate.portal_generation != generation or _erased(advocate):
        raise NotFound(_GONE, code="portal_not_found")
    return Opened(_context(session, secret, advocate), advocate, short_lived=True)


def _erased(advocate: Advocate) -> bool:
    return advocate.external_id.startswith(ERASED)


def _context(session: Session, secret: str, advocate: Advocate) -> ProgramContext:
    program = session.get(Program, advocate.program_id)
    assert program is not None
    return ProgramContext(program, ProgramConfig.from_dict(program.config), secret)


@dataclass(frozen=True)
class FriendLine:
    """One referral as the advocate sees it: the friend's first name or initial, and where it stands."""

    friend: str | None
    status: str
    channel: str | None
    created_at: datetime
    hold_until: datetime | None
    reward: int | None
    shown: rules.RewardShown | None = None  # the advocate's reward by its kind, once approved

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {"friend": self.friend, "status": self.status, "channel": self.channel,
                "created_at": to_rfc3339(self.created_at), "hold_until": to_rfc3339(self.hold_until),
                "reward": self.reward,
                "reward_shown": self.shown.to_dict() if self.shown else None}


@dataclass(frozen=True)
class Leader:
    """A place on the leaderboard: first name or initial only."""

    rank: int
    name: str | None
    approved: int
    you: bool

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {"rank": self.rank, "name": self.name, "approved": self.approved, "you": self.you}


@dataclass(frozen=True)
class PortalView:
    """Everything the advocate page shows, for the page and for getAdvocatePortal."""

    ctx: ProgramContext
    advocate: Advocate
    first_name: str | None
    code: str | None
    share_url: str | None
    counts: dict[str, int]
    earned: int
    referrals: list[FriendLine]
    gift_cards: list[GiftCard]
    issued: list[IssuedReward]
    tier: rules.TierProgress | None
    leaderboard: list[Leader] | None

    @property
    def brand(self) -> str:
        """Return the name the page shows: the portal's, else the program's."""
        return self.ctx.config.portal.name or self.ctx.program.name


def view(session: Session, ctx: ProgramContext, advocate: Advocate, share_base: str) -> PortalView:
    """Gather what the advocate page shows: link, referrals, rewards, tier, leaderboard."""
    counts = advocate_stats(session, advocate)
    code = _share_code(session, advocate)
    return PortalView(
        ctx=ctx, advocate=advocate, first_name=rules.display_name(advocate.name, None),
        code=code, share_url=f"{share_base}/r/{code}" if code else None, counts=counts,
        earned=_earned(session, advocate), referrals=_referrals(session, ctx, advocate),
        gift_cards=list(session.scalars(select(GiftCard).options(undefer(GiftCard.code)).where(
            GiftCard.advocate_id == advocate.id).order_by(GiftCard.created_at.desc(), GiftCard.id))),
        issued=list(session.scalars(select(IssuedReward).join(
            Referral, Referral.id == IssuedReward.referral_id).where(
            Referral.advocate_id == advocate.id, IssuedReward.side == "advocate",
            IssuedReward.issuer != "ledger").order_by(IssuedReward.created_at.desc()))),
        tier=rules.tier_progress(ctx.config.tiers, counts["approved"]),
        leaderboard=_leaderboard(session, ctx, advocate) if ctx.config.portal.leaderboard else None,
    )


def _share_code(session: Session, advocate: Advocate) -> str | None:
    """The code the page shares: the vanity one first, then the oldest active one."""
    return session.scalar(select(ReferralCode.code).where(
        ReferralCode.advocate_id == advocate.id, ReferralCode.active.is_(True))
        .order_by(ReferralCode.vanity.desc(), ReferralCode.created_at).limit(1))


def _earned(session: Session, advocate: Advocate) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(Referral.advocate_reward), 0)).where(
        Referral.advocate_id == advocate.id,
        Referral.status.in_((states.APPROVED, states.REWARDED)))) or 0)


def shown(reward: IssuedReward) -> rules.RewardShown:
    """Return how a reward row is shown on the page, by its kind."""
    return rules.shown_reward(reward.kind, reward.amount, reward.currency, reward.details,
                              reward.code, reward.expires_at)


def _referrals(session: Session, ctx: ProgramContext, advocate: Advocate) -> list[FriendLine]:
    rows = list(session.scalars(select(Referral).where(Referral.advocate_id == advocate.id)
                                .order_by(Referral.created_at.desc(), Referral.id.desc())
                                .limit(SHOWN_REFERRALS)))
    names = _friend_names(session, ctx, [r.friend_external_id for r in rows])
    earned = {r.referral_id: r for r in session.scalars(select(IssuedReward).where(
        IssuedReward.referral_id.in_([r.id for r in rows]), IssuedReward.side == "advocate"))
    } if rows else {}
    return [_line(ctx, r, names, earned.get(r.id)) for r in rows]


def _line(ctx: ProgramContext, referral: Referral, names: dict[str, str],
          reward: IssuedReward | None) -> FriendLine:
    counted = referral.status in (states.APPROVED, states.REWARDED)
    amount = referral.advocate_reward if counted else None
    earned = None
    if counted and reward is not None:
        earned = shown(reward)
    elif amount:
        earned = rules.RewardShown(rules.MONEY, ctx.config.currency, amount=amount)
    return FriendLine(
        friend=rules.display_name(names.get(referral.friend_external_id), referral.friend_email),
        status=referral.status, channel=referral.channel, created_at=referral.created_at,
        hold_until=referral.hold_until if referral.status == states.HELD else None,
        reward=amount, shown=earned)


def _friend_names(session: Session, ctx: ProgramContext, friend_ids: list[str]) -> dict[str, str]:
    """Names your people records give friends (attribute ``first_name``, else ``name``)."""
    keys = {external_key(ctx, f): f for f in friend_ids}
    if not keys:
        return {}
    found = session.execute(select(Person.external_key, Person.attributes).where(
        Person.program_id == ctx.id, Person.external_key.in_(keys), Person.erased_at.is_(None)))
    names = {}
    for key, attributes in found:
        name = attributes.get("first_name") or attributes.get("name")
        if isinstance(name, str):
            names[keys[key]] = name
    return names


def _leaderboard(session: Session, ctx: ProgramContext, advocate: Advocate) -> list[Leader]:
    rows = session.execute(select(Advocate.id, Advocate.name, Advocate.email, Advocate.approved_count)
                           .where(Advocate.program_id == ctx.id, Advocate.approved_count > 0,
                                  Advocate.flagged.is_(False))
                           .order_by(Advocate.approved_count.desc(), Advocate.id)
                           .limit(LEADERBOARD_SIZE))
    return [Leader(rank, rules.display_name(name, email), approved, adv_id == advocate.id)
            for rank, (adv_id, name, email, approved) in enumerate(rows, start=1)]
