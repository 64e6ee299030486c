"""People of a program: found by a keyed hash of your customer id, created on first mention."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from referflow.actions.common import ProgramContext
from referflow.domain.codes import new_id
from referflow.domain.emails import normalise_email
from referflow.domain.hashing import keyed_hash
from referflow.domain.timeutil import utcnow
from referflow.errors import NotFound, ValidationFailed
from referflow.storage.models import Advocate, Person


def external_key(ctx: ProgramContext, external_id: str) -> str:
    """Return the keyed hash a person is found by (kept after erasure)."""
    return keyed_hash(ctx.secret, "external_id", external_id)


def email_key(ctx: ProgramContext, email: str | None) -> str | None:
    """Return the keyed hash of a normalised email, as suppressions and consents are keyed."""
    return keyed_hash(ctx.secret, "email", normalise_email(email)) if email else None


def checked_timezone(name: str | None, path: str = "/person/timezone") -> str | None:
    """Return an IANA timezone name as given, or raise 422 when it names no zone."""
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(f"unknown timezone {name!r}", code="invalid_timezone",
                               errors=[{"path": path, "message": "unknown timezone"}]) from exc
    return name


def find_person(session: Session, ctx: ProgramContext, external_id: str) -> Person | None:
    """Return the person with this customer id (an erased one too), or None."""
    return session.scalar(select(Person).where(Person.program_id == ctx.id,
                                               Person.external_key == external_key(ctx, external_id)))


def get_person(session: Session, ctx: ProgramContext, external_id: str) -> Person:
    """Return the person with this customer id, or raise 404."""
    person = find_person(session, ctx, external_id)
    if person is None:
        raise NotFound("nobody with that external id in this program", code="person_not_found")
    return person


def ensure_person(session: Session, ctx: ProgramContext, external_id: str) -> str:
    """Return the id of the person with this customer id, created (and committed) if new."""
    person = find_person(session, ctx, external_id)
    if person is not None:
        return person.id
    person = Person(id=new_id("psn"), program_id=ctx.id, external_id=external_id,
                    external_key=external_key(ctx, external_id), attributes={})
    session.add(person)
    try:
        session.commit()
    except IntegrityError:  # a concurrent request created them first
        session.rollback()
        return get_person(session, ctx, external_id).id
    return person.id


def update_person(ctx: ProgramContext, person: Person, data: dict[str, Any]) -> None:
    """Take what a request says about a person (email, timezone, attributes); never an erased one."""
    if person.erased_at is not None:
        return
    if data.get("email"):
        person.email = data["email"].strip()
        person.email_key = email_key(ctx, data["email"])
    if data.get("timezone"):
        person.timezone = data["timezone"]
    if "attributes" in data:
        person.attributes = {**person.attributes, **data["attributes"]}
    person.updated_at = utcnow()


def is_advocate(session: Session, ctx: ProgramContext, person: Person) -> bool:
    """Tell whether the person is enrolled as an advocate (has a share link)."""
    return person.erased_at is None and session.scalar(select(Advocate.id).where(
        Advocate.program_id == ctx.id, Advocate.external_id == person.external_id)) is not None
