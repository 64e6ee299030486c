"""Known customers (never eligible as referred friends) and code deactivation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from referflow.actions.common import ProgramContext
from referflow.domain.codes import normalise_code
from referflow.domain.emails import normalise_email
from referflow.domain.hashing import keyed_hash
from referflow.errors import NotFound
from referflow.storage.models import KnownCustomer, ReferralCode


def import_customers(session: Session, ctx: ProgramContext, customers: list[dict[str, Any]],
                     source: str = "import") -> int:
    """Record existing customers by external id and/or keyed email hash; return how many are new."""
    added = 0
    for person in customers:
        external_id = person.get("external_id")
        email_key = (keyed_hash(ctx.secret, "email", normalise_email(person["email"]))
                     if person.get("email") else None)
        if _is_known(session, ctx, external_id, email_key):
            continue
        session.add(KnownCustomer(program_id=ctx.id, external_id=external_id,
                                  email_key=email_key, source=source))
        session.flush()
        added += 1
    session.commit()
    return added


def _is_known(session: Session, ctx: ProgramContext, external_id: str | None,
              email_key: str | None) -> bool:
    matches = []
    if external_id:
        matches.append(KnownCustomer.external_id == external_id)
    if email_key:
        matches.append(KnownCustomer.email_key == email_key)
    return session.scalar(select(KnownCustomer.id).where(
        KnownCustomer.program_id == ctx.id, or_(*matches)).limit(1)) is not None


def deactivate_code(session: Session, ctx: ProgramContext, raw_code: str) -> ReferralCode:
    """Stop a code from attributing new referrals (claims with it are rejected: inactive_code)."""
    code = session.get(ReferralCode, normalise_code(raw_code)[:32])
    if code is None or code.program_id != ctx.id:
        raise NotFound("unknown referral code", code="unknown_code")
    code.active = False
    session.commit()
    return code
