"""Advocates, their codes and share links, and clicks on those links."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from referflow.actions.common import ProgramContext
from referflow.actions.eligibility import marks_of, save_marks
from referflow.actions.events import emit
from referflow.actions.experiments import link_variant
from referflow.actions.offers import plan_offer
from referflow.actions.people import email_key
from referflow.domain import referral as states
from referflow.domain.codes import new_id, new_referral_code, normalise_code, normalise_vanity
from referflow.domain.hashing import ip_network_key, keyed_hash
from referflow.domain.portal import permanent_token_hash
from referflow.domain.program import ProgramConfig
from referflow.domain.timeutil import utcnow
from referflow.errors import Conflict, NotFound, ValidationFailed
from referflow.storage.models import (
    Advocate,
    AdvocateEvent,
    Click,
    Program,
    Referral,
    ReferralCode,
)

CHANNEL_RE = re.compile(r"^[a-z0-9_.-]{1,40}$")


@dataclass(frozen=True)
class Link:
    """An advocate's share link as returned by createLink."""

    advocate: Advocate
    code: ReferralCode
    created: bool
    variant: dict[str, Any] | None = None  # the running rewards experiment's, if any


def create_link(session: Session, ctx: ProgramContext, body: dict[str, Any],
                share_base: str) -> Link:
    """Enrol an advocate (or find them) and return their code; idempotent per external id."""
    try:
        return _create_link(session, ctx, body, share_base)
    except IntegrityError:
        # A concurrent call enrolled the same advocate first: answer with theirs.
        session.rollback()
        return _create_link(session, ctx, body, share_base)


def _create_link(session: Session, ctx: ProgramContext, body: dict[str, Any],
                 share_base: str) -> Link:
    link = enrol_advocate(session, ctx, body, share_base)
    session.commit()
    return link


def enrol_advocate(session: Session, ctx: ProgramContext, body: dict[str, Any],
                   share_base: str) -> Link:
    """Enrol an advocate (or find them) and return their code, in the caller's transaction."""
    person = body["advocate"]
    if person["external_id"] is None:
        raise ValidationFailed("the event carries no customer id", code="no_customer",
                               ordinary="no_customer",
                               errors=[{"path": "/advocate/external_id", "message": "null"}])
    vanity = _vanity(body.get("vanity_code"))
    advocate = session.scalar(select(Advocate).where(
        Advocate.program_id == ctx.id, Advocate.external_id == person["external_id"]))
    created = advocate is None
    if advocate is None:
        if person["email"] is None:  # an advocate is enrolled with an email (self-referral rules)
            raise ValidationFailed("the event carries no email address", code="no_email",
                                   ordinary="no_email",
                                   errors=[{"path": "/advocate/email", "message": "null"}])
        advocate_id = new_id("adv")
        advocate = Advocate(id=advocate_id, program_id=ctx.id, external_id=person["external_id"],
                            portal_generation=0,  # the advocate page's token (actions/portal.py)
                            portal_token_hash=permanent_token_hash(ctx.secret, advocate_id, 0))
        session.add(advocate)
    if person["email"] is not None:
        advocate.email = person["email"].strip()
        advocate.email_key = email_key(ctx, person["email"])
    advocate.name = person.get("name", advocate.name)
    session.flush()
    code = _code_for(session, ctx, advocate, vanity, created)
    plan_offer(session, ctx, code)  # the friend's offer: its discount is made in the background
    if body.get("context"):
        save_marks(session, ctx, advocate.id, "advocate", marks_of(ctx, body["context"], None),
                   None, utcnow())
    if created:
        emit(session, ctx.id, "advocate.link_created", {
            "advocate": {"id": advocate.id, "external_id": advocate.external_id,
                         "email": advocate.email, "name": advocate.name},
            "code": code.code, "url": f"{share_base}/r/{code.code}"})
    return Link(advocate, code, created, link_variant(session, ctx, advocate, utcnow()))


def _vanity(raw: str | None) -> str | None:
    if raw is None:
        return None
    vanity = normalise_vanity(raw)
    if vanity is None:
        raise ValidationFailed("vanity_code may hold letters, digits, '-' and '_' (3-32)",
                               code="invalid_vanity_code")
    return vanity


def _code_for(session: Session, ctx: ProgramContext, advocate: Advocate, vanity: str | None,
              created: bool) -> ReferralCode:
    if vanity is not None:
        taken = session.get(ReferralCode, vanity)
        if taken is not None and taken.advocate_id != advocate.id:
            raise Conflict(f"code {vanity} is taken", code="code_taken")
        if taken is not None:
            return taken
        return _add_code(session, ctx, advocate, vanity, vanity=True)
    if not created:
        existing = session.scalar(select(ReferralCode).where(
            ReferralCode.advocate_id == advocate.id, ReferralCode.active.is_(True))
            .order_by(ReferralCode.vanity.desc(), ReferralCode.created_at))
        if existing is not None:
            return existing
    code = new_referral_code()
    while session.get(ReferralCode, code) is not None:
        code = new_referral_code()
    return _add_code(session, ctx, advocate, code, vanity=False)


def _add_code(session: Session, ctx: ProgramContext, advocate: Advocate, code: str,
              vanity: bool) -> ReferralCode:
    row = ReferralCode(code=code, program_id=ctx.id, advocate_id=advocate.id, vanity=vanity)
    session.add(row)
    session.flush()
    return row


def record_click(session: Session, secret: str, raw_code: str, channel: str | None,
                 ip: str | None, user_agent: str | None) -> tuple[Click | None, str]:
    """Record a share-link visit; return the click (None for an inactive code) and landing URL."""
    code = session.get(ReferralCode, normalise_code(raw_code)[:32])
    if code is None:
        raise NotFound("unknown referral code", code="unknown_code")
    program = session.get(Program, code.program_id)
    assert program is not None
    landing = ProgramConfig.from_dict(program.config).landing_url
    if not code.active:
        return None, landing
    network = ip_network_key(ip) if ip else None
    click = Click(
        id=new_id("clk"), program_id=code.program_id, advocate_id=code.advocate_id,
        code=code.code, channel=channel if channel and CHANNEL_RE.match(channel) else None,
        ip_key=keyed_hash(secret, "ip", ip) if ip else None,
        net_key=keyed_hash(secret, "net", network) if network else None,
        ua_key=keyed_hash(secret, "ua", user_agent) if user_agent else None,
    )
    session.add(click)
    session.commit()
    return click, landing


def get_advocate(session: Session, ctx: ProgramContext, advocate_id: str | None = None,
                 external_id: str | None = None) -> Advocate:
    """Return an advocate of this program by id or external id, or raise NotFound."""
    query = select(Advocate).where(Advocate.program_id == ctx.id)
    if advocate_id is not None:
        query = query.where(Advocate.id == advocate_id)
    else:
        query = query.where(Advocate.external_id == external_id)
    advocate = session.scalar(query)
    if advocate is None:
        raise NotFound("advocate not found", code="advocate_not_found")
    return advocate


def advocate_codes(session: Session, advocate: Advocate) -> list[ReferralCode]:
    """Return an advocate's codes, oldest first."""
    return list(session.scalars(select(ReferralCode).where(
        ReferralCode.advocate_id == advocate.id).order_by(ReferralCode.created_at)))


def advocate_events(session: Session, advocate: Advocate) -> list[AdvocateEvent]:
    """Return an advocate's events (tier changes, flags), oldest first."""
    return list(session.scalars(select(AdvocateEvent).where(
        AdvocateEvent.advocate_id == advocate.id).order_by(AdvocateEvent.id)))


def advocate_stats(session: Session, advocate: Advocate) -> dict[str, int]:
    """Count an advocate's clicks and referrals by outcome."""
    by_status = dict(session.execute(
        select(Referral.status, func.count()).where(Referral.advocate_id == advocate.id)
        .group_by(Referral.status)).all())
    clicks = session.scalar(select(func.count()).select_from(Click).where(
        Click.advocate_id == advocate.id)) or 0
    return outcome_counts(by_status, clicks)


def outcome_counts(by_status: dict[str, int], clicks: int) -> dict[str, int]:
    """Return an advocate's counts from their referrals per status and their clicks."""
    qualified = sum(by_status.get(s, 0) for s in states.QUALIFIED_STATUSES)
    return {
        "clicks": clicks,
        "referrals": sum(by_status.values()),
        "qualified": qualified,
        "approved": sum(by_status.get(s, 0) for s in states.APPROVED_COUNTED),
        "rewarded": by_status.get(states.REWARDED, 0),
        "rejected": by_status.get(states.REJECTED, 0),
        "reversed": by_status.get(states.REVERSED, 0),
    }
