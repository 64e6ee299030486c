"""Gather the facts a claim is decided on: indexed lookups only, identifiers keyed-hashed."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from disposable_email_domains import blocklist
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from referflow.actions.common import ProgramContext
from referflow.domain import fraud
from referflow.domain.emails import email_domain, normalise_email
from referflow.domain.hashing import ip_network_key, keyed_hash
from referflow.domain.timeutil import parse_rfc3339
from referflow.storage.models import (
    Advocate,
    Click,
    IdentityMark,
    KnownCustomer,
    Referral,
    ReferralCode,
)

HOUSEHOLD_KINDS = ("ip", "net", "device")


def marks_of(ctx: ProgramContext, context: dict[str, Any], click: Click | None) -> dict[str, str]:
    """Return the keyed hashes of a person's identifiers: ip, net (/64), device, payment."""
    marks: dict[str, str] = {}
    ip = context.get("ip")
    if ip:
        marks["ip"] = keyed_hash(ctx.secret, "ip", ip)
        network = ip_network_key(ip)
        if network:
            marks["net"] = keyed_hash(ctx.secret, "net", network)
    elif click is not None:  # no IP given: the click's hashed IP stands for the friend's
        marks.update({k: v for k, v in (("ip", click.ip_key), ("net", click.net_key)) if v})
    if context.get("device_id"):
        marks["device"] = keyed_hash(ctx.secret, "device", context["device_id"])
    if context.get("payment_fingerprint"):
        marks["payment"] = keyed_hash(ctx.secret, "payment", context["payment_fingerprint"])
    return marks


def save_marks(session: Session, ctx: ProgramContext, advocate_id: str, subject: str,
               marks: dict[str, str], referral_id: str | None, now: datetime) -> None:
    """Store a person's marks under the advocate they belong to."""
    for kind, key in marks.items():
        session.add(IdentityMark(program_id=ctx.id, advocate_id=advocate_id, subject=subject,
                                 referral_id=referral_id, kind=kind, key=key, created_at=now))


def _mark_matches(session: Session, ctx: ProgramContext, advocate_id: str,
                  marks: dict[str, str], now: datetime) -> list[tuple[str, str]]:
    if not marks:
        return []
    since = now - timedelta(days=ctx.config.household_window_days)
    same_key = or_(*[(IdentityMark.kind == kind) & (IdentityMark.key == key)
                     for kind, key in marks.items()])
    rows = session.execute(select(IdentityMark.kind, IdentityMark.subject).where(
        IdentityMark.advocate_id == advocate_id, same_key,
        or_(IdentityMark.subject == "advocate", IdentityMark.created_at >= since)))
    return [(kind, subject) for kind, subject in rows]


def _known_customer(session: Session, ctx: ProgramContext, friend_id: str,
                    email_key: str) -> str | None:
    row = session.scalar(select(KnownCustomer.source).where(
        KnownCustomer.program_id == ctx.id,
        or_(KnownCustomer.external_id == friend_id, KnownCustomer.email_key == email_key)).limit(1))
    return f"known customer from {row}" if row else None


def _claims_since(session: Session, advocate_id: str, since: datetime, cap: int) -> int:
    """Count recent claims, stopping at ``cap``: the rule only asks whether the cap is reached."""
    recent = select(Referral.id).where(Referral.advocate_id == advocate_id,
                                       Referral.created_at >= since).limit(cap).subquery()
    return session.scalar(select(func.count()).select_from(recent)) or 0


def claim_facts(session: Session, ctx: ProgramContext, advocate: Advocate, code: ReferralCode,
                click: Click | None, body: dict[str, Any], marks: dict[str, str],
                now: datetime) -> fraud.ClaimFacts:
    """Collect everything the claim rules look at."""
    friend, context = body["friend"], body.get("context", {})
    email_key = keyed_hash(ctx.secret, "email", normalise_email(friend["email"]))
    matches = _mark_matches(session, ctx, advocate.id, marks, now)
    payment = [subject for kind, subject in matches if kind == "payment"]
    existing = "flagged by the caller" if context.get("existing_customer") else None
    domain = email_domain(friend["email"])
    return fraud.ClaimFacts(
        now=now, advocate_external_id=advocate.external_id, advocate_email_key=advocate.email_key,
        friend_external_id=friend["external_id"], friend_email_key=email_key,
        code_active=code.active, click_at=click.created_at if click else None,
        attribution_window_days=ctx.config.attribution_window_days,
        existing_customer=existing or _known_customer(session, ctx, friend["external_id"], email_key),
        purchased_at=parse_rfc3339(context["purchased_at"]) if "purchased_at" in context else None,
        late_claim_grace_days=ctx.config.late_claim_grace_days,
        household_matches=frozenset(k for k, _ in matches if k in HOUSEHOLD_KINDS),
        payment_match=("advocate" if "advocate" in payment else "friend") if payment else None,
        claims_last_hour=_claims_since(session, advocate.id, now - timedelta(hours=1),
                                       ctx.config.velocity.per_hour),
        claims_last_day=_claims_since(session, advocate.id, now - timedelta(days=1),
                                      ctx.config.velocity.per_day),
        velocity=ctx.config.velocity,
        disposable_domain=domain if domain in blocklist else None,
        advocate_flagged=advocate.flagged,
    )
