"""Dashboard roles: who may do what on a program (the one table of it).

Roles are per program and ordered: a viewer reads; a reviewer also decides reviews and replays
webhook deliveries; an owner also edits the config, the API keys and the program's members.
An owner manages a member's account (disable, enable, reset the password) only when they own
every program it opens (``may_manage_account``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum


class Role(StrEnum):
    """A user's role on one program, weakest first."""

    VIEWER = "viewer"
    REVIEWER = "reviewer"
    OWNER = "owner"


class Permission(StrEnum):
    """Something a dashboard user may do on a program."""

    READ = "read"
    DECIDE_REVIEWS = "decide_reviews"
    REPLAY_DELIVERIES = "replay_deliveries"
    EDIT_CONFIG = "edit_config"
    MANAGE_API_KEYS = "manage_api_keys"
    MANAGE_MEMBERS = "manage_members"


RANK = {Role.VIEWER: 0, Role.REVIEWER: 1, Role.OWNER: 2}

# The weakest role that has each permission.
NEEDS = {
    Permission.READ: Role.VIEWER,
    Permission.DECIDE_REVIEWS: Role.REVIEWER,
    Permission.REPLAY_DELIVERIES: Role.REVIEWER,
    Permission.EDIT_CONFIG: Role.OWNER,
    Permission.MANAGE_API_KEYS: Role.OWNER,
    Permission.MANAGE_MEMBERS: Role.OWNER,
}


def parse_role(raw: str) -> Role:
    """Return the role named ``raw``, or raise ValueError naming the valid ones."""
    try:
        return Role(raw.strip().lower())
    except ValueError:
        raise ValueError(f"role must be one of {', '.join(Role)}, not {raw!r}") from None


def at_least(role: str | None, needed: str) -> bool:
    """Tell whether ``role`` is ``needed`` or stronger (no role is never enough)."""
    if role is None:
        return False
    return RANK[Role(role)] >= RANK[Role(needed)]


def allows(role: str | None, permission: str) -> bool:
    """Tell whether ``role`` has ``permission``."""
    return at_least(role, NEEDS[Permission(permission)])


def may_manage_account(manager_roles: Mapping[str, str], account_programs: Iterable[str]) -> bool:
    """Tell whether a user with ``manager_roles`` (program id -> role) owns every program of an account.

    Only then may they disable it or reset its password: otherwise an owner of one program could
    take over a login that opens another program.
    """
    return all(manager_roles.get(program_id) == Role.OWNER for program_id in account_programs)
