"""Gather the facts a claim is decided on: indexed lookups only, identifiers keyed-hashed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from disposable_email_domains import blocklist
from sqlalchemy import Integer, bindparam, case, exists, func, insert, or_, select
from sqlalchemy.orm import Session

from referflow.actions.common import ProgramContext
from referflow.actions.people import email_key
from referflow.domain import fraud
from referflow.domain.emails import email_domain
from referflow.domain.hashing import ip_network_key, keyed_hash
from referflow.domain.timeutil import parse_rfc3339
from referflow.storage.models import (
    Advocate,
    Click,
    Experiment,
    IdentityMark,
    InboundEvent,
    InboundStatus,
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
    """Store a person's marks under the advocate they belong to: one INSERT of them all."""
    if marks:
        session.execute(insert(IdentityMark), [
            {"program_id": ctx.id, "advocate_id": advocate_id, "subject": subject,
             "referral_id": referral_id, "kind": kind, "key": key, "created_at": now}
            for kind, key in marks.items()])


# The claim's facts in one statement, built once per set of mark kinds (the SQL is cached by
# SQLAlchemy; building the expression each time cost more than running it).
_ADVOCATE: Any = bindparam("advocate_id")
_PROGRAM: Any = bindparam("program_id")
_FRIEND: Any = bindparam("friend")
_FACTS: dict[tuple[str, ...], Any] = {}


def _mark_column(kind: str) -> Any:
    """2 when the advocate has the mark, 1 when only their earlier friends (in the window) had
    it, NULL when nobody did."""
    return select(func.max(case((IdentityMark.subject == "advocate", 2), else_=1))).where(
        IdentityMark.advocate_id == _ADVOCATE, IdentityMark.kind == bindparam(f"kind_{kind}"),
        IdentityMark.key == bindparam(f"key_{kind}"),
        or_(IdentityMark.subject == "advocate", IdentityMark.created_at >= bindparam("window")),
    ).scalar_subquery()


def _claims_since(name: str) -> Any:
    """Count recent claims, stopping at the cap: the rule only asks whether the cap is reached."""
    recent = select(Referral.id).where(Referral.advocate_id == _ADVOCATE,
                                       Referral.created_at >= bindparam(f"{name}_since")) \
        .limit(bindparam(f"{name}_cap", type_=Integer)).subquery()
    return select(func.count()).select_from(recent).scalar_subquery()


def _facts_statement(kinds: tuple[str, ...]) -> Any:
    statement = _FACTS.get(kinds)
    if statement is None:
        known = select(KnownCustomer.source).where(
            KnownCustomer.program_id == _PROGRAM,
            or_(KnownCustomer.external_id == _FRIEND,
                KnownCustomer.email_key == bindparam("friend_key"))).limit(1).scalar_subquery()
        waiting = exists().where(InboundEvent.program_id == _PROGRAM,
                                 InboundEvent.subject == _FRIEND,
                                 InboundEvent.status == InboundStatus.WAITING)
        running = exists().where(Experiment.program_id == _PROGRAM,
                                 Experiment.running_subject.is_not(None))
        statement = _FACTS[kinds] = select(
            known, waiting, running, _claims_since("hour"), _claims_since("day"),
            *[_mark_column(kind) for kind in kinds])
    return statement


@dataclass(frozen=True)
class Looked:
    """What the claim's one round trip found besides the rules' facts."""

    facts: fraud.ClaimFacts
    waiting: bool  # provider events wait for this friend: wake them
    experiments: bool  # the program runs an experiment (the claim may carry variants)


def claim_facts(session: Session, ctx: ProgramContext, advocate: Advocate, code: ReferralCode,
                click: Click | None, body: dict[str, Any], marks: dict[str, str],
                now: datetime) -> Looked:
    """Collect everything the claim rules look at, in one statement (one round trip)."""
    friend, context = body["friend"], body.get("context", {})
    friend_key = email_key(ctx, friend["email"]) or ""
    kinds = tuple(marks)
    row = session.execute(_facts_statement(kinds), {
        "program_id": ctx.id, "advocate_id": advocate.id, "friend": friend["external_id"],
        "friend_key": friend_key,
        "hour_since": now - timedelta(hours=1), "hour_cap": ctx.config.velocity.per_hour,
        "day_since": now - timedelta(days=1), "day_cap": ctx.config.velocity.per_day,
        "window": now - timedelta(days=ctx.config.household_window_days),
        **{f"kind_{kind}": kind for kind in kinds}, **{f"key_{kind}": marks[kind] for kind in kinds},
    }).one()
    source, is_waiting, experiments, last_hour, last_day = row[:5]
    matched = {kind: found for kind, found in zip(kinds, row[5:], strict=True) if found}
    payment = matched.get("payment")
    existing = "flagged by the caller" if context.get("existing_customer") else None
    domain = email_domain(friend["email"])
    return Looked(fraud.ClaimFacts(
        now=now, advocate_external_id=advocate.external_id, advocate_email_key=advocate.email_key,
        friend_external_id=friend["external_id"], friend_email_key=friend_key,
        code_active=code.active, click_at=click.created_at if click else None,
        attribution_window_days=ctx.config.attribution_window_days,
        existing_customer=existing or (f"known customer from {source}" if source else None),
        purchased_at=parse_rfc3339(context["purchased_at"]) if "purchased_at" in context else None,
        late_claim_grace_days=ctx.config.late_claim_grace_days,
        household_matches=frozenset(k for k in matched if k in HOUSEHOLD_KINDS),
        payment_match=("advocate" if payment == 2 else "friend") if payment else None,
        claims_last_hour=last_hour or 0,
        claims_last_day=last_day or 0,
        velocity=ctx.config.velocity,
        disposable_domain=domain if domain in blocklist else None,
        advocate_flagged=advocate.flagged,
    ), bool(is_waiting), bool(experiments))
