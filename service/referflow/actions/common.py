"""Shared pieces of the use cases: who acts, on which program, and the history they write."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from referflow import serialize
from referflow.actions.events import emit, referral_event_types
from referflow.domain import referral as states
from referflow.domain.program import ProgramConfig
from referflow.domain.timeutil import utcnow
from referflow.errors import Conflict, NotFound
from referflow.storage.models import Advocate, Program, Referral, ReferralHistory


@dataclass(frozen=True)
class Actor:
    """Who or what caused a change: an API key, a provider event, a reviewer, the system."""

    type: str
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {"type": self.type, "id": self.id}


SYSTEM = Actor("system", "scheduler")


@dataclass(frozen=True)
class Acted:
    """What a claim, qualify or reverse did: the referral, a stable outcome code, and whether it
    changed anything (``duplicate``, ``already_qualified``, ``partial_refund``... change nothing)."""

    referral: Referral
    outcome: str
    changed: bool


@dataclass(frozen=True)
class ProgramContext:
    """A program with its parsed config and the install's hashing secret."""

    program: Program
    config: ProgramConfig
    secret: str

    @property
    def id(self) -> str:
        """Return the program id."""
        return self.program.id


P = ParamSpec("P")
R = TypeVar("R")
ATTEMPTS = 4


def retry_on_concurrent_update(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a use case again when another request changed the same referral first."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        session = args[0]
        assert isinstance(session, Session)
        for _ in range(ATTEMPTS):
            try:
                return fn(*args, **kwargs)
            except StaleDataError:
                session.rollback()
        raise Conflict("the referral kept changing concurrently; try again",
                       code="concurrent_update")

    return wrapper


def load_program(session: Session, program_id: str, secret: str) -> ProgramContext:
    """Load a program by id, or raise NotFound."""
    program = session.get(Program, program_id)
    if program is None:
        raise NotFound(f"program {program_id} not found", code="program_not_found")
    return ProgramContext(program, ProgramConfig.from_dict(program.config), secret)


def reason(code: str, message: str) -> dict[str, str]:
    """Return one reason entry as stored on referrals and history."""
    return {"code": code, "message": message}


def record(
    session: Session,
    ctx: ProgramContext,
    referral: Referral,
    action: str,
    actor: Actor,
    *,
    from_status: str | None = None,
    reasons: list[dict[str, str]] | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Append one history entry for ``referral`` (call after changing its status)."""
    session.add(ReferralHistory(
        referral_id=referral.id, program_id=ctx.id, at=utcnow(), action=action,
        actor_type=actor.type, actor_id=actor.id, from_status=from_status,
        to_status=referral.status, reasons=reasons or [], data=data or {},
        config_version=ctx.program.config_version,
    ))
    for event_type in referral_event_types(action, from_status, referral.status):
        emit(session, ctx.id, event_type, {"referral": serialize.referral(referral),
                                           "reasons": reasons or []})


def move(session: Session, ctx: ProgramContext, referral: Referral, status: str, action: str,
         actor: Actor, **kwargs: Any) -> None:
    """Set a referral's status and record the change; a move the state table forbids is refused."""
    before = referral.status
    if not states.can_move(before, status):
        raise Conflict(f"a {before} referral cannot become {status}", code="invalid_transition")
    referral.status = status
    referral.updated_at = utcnow()
    record(session, ctx, referral, action, actor, from_status=before, **kwargs)


def get_referral_row(session: Session, ctx: ProgramContext, referral_id: str) -> Referral:
    """Return a referral of this program, or raise NotFound (also for other programs' ids)."""
    referral = session.scalar(
        select(Referral).where(Referral.id == referral_id, Referral.program_id == ctx.id)
    )
    if referral is None:
        raise NotFound(f"referral {referral_id} not found", code="referral_not_found")
    return referral


def history_of(session: Session, referral_id: str) -> list[ReferralHistory]:
    """Return a referral's history in order."""
    return list(session.scalars(
        select(ReferralHistory).where(ReferralHistory.referral_id == referral_id)
        .order_by(ReferralHistory.id)
    ))


def reward_recipient(session: Session, side: str, referral_id: str | None,
                     advocate_id: str | None) -> dict[str, Any]:
    """Who receives a reward (for the email): the referral's friend, or the advocate."""
    referral = session.get(Referral, referral_id) if referral_id else None
    if side == "friend" and referral is not None:
        return {"side": side, "external_id": referral.friend_external_id, "email": referral.friend_email}
    advocate = session.get(Advocate, advocate_id or (referral.advocate_id if referral else None) or "")
    return {"side": side, "external_id": advocate.external_id if advocate else None,
            "email": advocate.email if advocate else None}
