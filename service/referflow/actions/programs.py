"""Programs (tenants) and their API keys."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from referflow.contract import SchemaStore
from referflow.domain.codes import new_id
from referflow.domain.hashing import sha256_hex
from referflow.domain.program import ProgramConfig
from referflow.domain.scopes import DEFAULT_SCOPES, OWNER_SCOPES
from referflow.domain.timeutil import utcnow
from referflow.errors import NotFound, Unauthorized, ValidationFailed
from referflow.storage.models import ApiKey, Program, ProgramConfigVersion

log = logging.getLogger("referflow.keys")
KEY_PREFIX = "rfk_"
SHOWN_CHARS = 10  # "rfk_" and 6 more: what logs, errors and listings show of a key
LAST_USED_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedKey:
    """A freshly created API key; the secret exists only in this object."""

    row: ApiKey
    secret: str


def normalised_config(schemas: SchemaStore, raw: dict[str, Any]) -> dict[str, Any]:
    """Validate a program config against its schema and spell out every default."""
    schemas.validate("program.schema", raw)
    try:
        config = ProgramConfig.from_dict(raw)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(str(exc), code="invalid_program_config") from exc
    _check_timezone(config.timezone)
    return config.to_dict()


def _check_timezone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(f"unknown timezone {name!r}", code="invalid_program_config",
                               errors=[{"path": "/timezone", "message": "unknown timezone"}]) from exc


def create_program(session: Session, schemas: SchemaStore, name: str,
                   raw_config: dict[str, Any]) -> tuple[Program, IssuedKey]:
    """Create a program with its first API key."""
    config = normalised_config(schemas, raw_config)
    program = Program(id=new_id("prg"), name=name, config=config, config_version=1)
    session.add(program)
    session.flush()
    session.add(ProgramConfigVersion(program_id=program.id, version=1, config=config))
    key = _new_key(session, program.id, "default", OWNER_SCOPES)
    session.commit()
    return program, key


def create_api_key(session: Session, program_id: str, label: str | None,
                   scopes: Sequence[str] | None = None) -> IssuedKey:
    """Create another API key for a program (scope ``write`` unless told)."""
    if session.get(Program, program_id) is None:
        raise NotFound(f"program {program_id} not found", code="program_not_found")
    key = _new_key(session, program_id, label, scopes or DEFAULT_SCOPES)
    session.commit()
    log.info("API key %s… created for %s with scopes %s", key.row.prefix, program_id,
             ",".join(key.row.scopes))
    return key


def _new_key(session: Session, program_id: str, label: str | None,
             scopes: Sequence[str]) -> IssuedKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(id=new_id("key"), program_id=program_id, key_hash=sha256_hex(secret),
                 prefix=secret[:SHOWN_CHARS], label=label, scopes=sorted(set(scopes)))
    session.add(row)
    session.flush()
    return IssuedKey(row, secret)


def shown(token: str) -> str | None:
    """Return what may be shown of a credential: an API key's prefix, or nothing at all."""
    return token[:SHOWN_CHARS] + "…" if token.startswith(KEY_PREFIX) else None


def key_owner(session: Session, secret: str) -> tuple[Program, ApiKey]:
    """Return the program and key row of an API key secret, or raise 401."""
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == sha256_hex(secret)))
    program = session.get(Program, row.program_id) if row is not None else None
    if row is None or program is None:
        prefix = shown(secret)
        raise Unauthorized(f"API key {prefix} is not valid" if prefix else
                           f"the bearer token is not an API key ({KEY_PREFIX}...)", code="invalid_credentials")
    if row.revoked_at is not None:
        log.warning("revoked API key %s (%s) refused", row.prefix, row.id)
        raise Unauthorized(f"API key {row.prefix}… was revoked", code="revoked_credentials")
    return program, row


def list_api_keys(session: Session, program_id: str) -> list[ApiKey]:
    """Return a program's keys, revoked ones too, oldest first."""
    return list(session.scalars(select(ApiKey).where(ApiKey.program_id == program_id)
                                .order_by(ApiKey.created_at, ApiKey.id)))


def revoke_api_key(session: Session, program_id: str, key_id: str) -> ApiKey:
    """Revoke a key of the program; revoking it again changes nothing."""
    row = session.get(ApiKey, key_id, with_for_update=True)
    if row is None or row.program_id != program_id:
        raise NotFound(f"API key {key_id} not found", code="api_key_not_found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        log.info("API key %s… (%s) of %s revoked", row.prefix, row.id, program_id)
    session.commit()
    return row


def record_key_use(session: Session, key_id: str, now: datetime | None = None) -> None:
    """Set a key's last use unless a recent one is recorded; never fails the caller's request."""
    now = now or utcnow()
    try:
        session.execute(update(ApiKey).where(
            ApiKey.id == key_id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= now - LAST_USED_EVERY),
        ).values(last_used_at=now))
        session.commit()
    except SQLAlchemyError:  # a locked or busy database: the next minute's use will record it
        session.rollback()
        log.warning("could not record the last use of API key %s", key_id, exc_info=True)


def update_config(session: Session, schemas: SchemaStore, program_id: str,
                  raw_config: dict[str, Any]) -> Program:
    """Replace a program's config, keeping every earlier version."""
    config = normalised_config(schemas, raw_config)
    program = session.get(Program, program_id, with_for_update=True)
    if program is None:
        raise NotFound(f"program {program_id} not found", code="program_not_found")
    if config != program.config:
        program.config = config
        program.config_version += 1
        session.add(ProgramConfigVersion(program_id=program.id, version=program.config_version,
                                         config=config))
    session.commit()
    return program


def list_programs(session: Session, limit: int | None = None) -> list[tuple[Program, list[ApiKey]]]:
    """Return programs, oldest first, each with its API key rows (revoked ones too)."""
    programs = list(session.scalars(select(Program).order_by(Program.created_at, Program.id)
                                    .limit(limit)))
    keys: dict[str, list[ApiKey]] = {program.id: [] for program in programs}
    for row in session.scalars(select(ApiKey).where(ApiKey.program_id.in_(keys))
                               .order_by(ApiKey.created_at, ApiKey.id)):
        keys[row.program_id].append(row)
    return [(program, keys[program.id]) for program in programs]


def config_versions(session: Session, program_id: str) -> list[ProgramConfigVersion]:
    """Return every version a program's config has had, newest first."""
    return list(session.scalars(select(ProgramConfigVersion)
                                .where(ProgramConfigVersion.program_id == program_id)
                                .order_by(ProgramConfigVersion.version.desc())))
