"""Programs (tenants) and their API keys."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from referflow.contract import SchemaStore
from referflow.domain.codes import new_id
from referflow.domain.hashing import sha256_hex
from referflow.domain.program import ProgramConfig
from referflow.errors import NotFound, ValidationFailed
from referflow.storage.models import ApiKey, Program, ProgramConfigVersion

KEY_PREFIX = "rfk_"


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
    key = _new_key(session, program.id, "default")
    session.commit()
    return program, key


def create_api_key(session: Session, program_id: str, label: str | None) -> IssuedKey:
    """Create another API key for a program."""
    if session.get(Program, program_id) is None:
        raise NotFound(f"program {program_id} not found", code="program_not_found")
    key = _new_key(session, program_id, label)
    session.commit()
    return key


def _new_key(session: Session, program_id: str, label: str | None) -> IssuedKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(id=new_id("key"), program_id=program_id, key_hash=sha256_hex(secret),
                 prefix=secret[:10], label=label)
    session.add(row)
    session.flush()
    return IssuedKey(row, secret)


def program_for_key(session: Session, secret: str) -> tuple[Program, ApiKey] | None:
    """Return the program and key row of an API key secret, or None."""
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == sha256_hex(secret),
                                              ApiKey.revoked_at.is_(None)))
    if row is None:
        return None
    program = session.get(Program, row.program_id)
    return (program, row) if program is not None else None


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
