"""Accounts managed by someone else: disable, enable, reset the password (docs/dashboard.md).

The install's admin (the CLI) manages any account. A program's owner manages the account of a
member of that program only when they own every program it opens (``domain/roles.py``
``may_manage_account``), and never their own. Disabling or a new password ends every session
of the account at once. Each change is logged with the account's id and who made it
(``referflow.users``, the trail of account actions), never an email.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from argon2 import PasswordHasher
from sqlalchemy.orm import Session

from referflow.actions import users
from referflow.domain.roles import may_manage_account
from referflow.errors import Forbidden, NotFound
from referflow.storage.models import User

log = logging.getLogger("referflow.users")


@dataclass(frozen=True)
class Manager:
    """Who manages an account: the install's admin (no ids), or an owner on one of their programs."""

    user_id: str | None = None
    program_id: str | None = None

    def __str__(self) -> str:
        if self.user_id is None:
            return "the install's admin (CLI)"
        return f"user {self.user_id} (owner of {self.program_id})"


INSTALL_ADMIN = Manager()
ADMIN = "admin"  # users.disabled_by of an account the install's admin disabled


def managed_user(session: Session, user_id: str, by: Manager) -> User:
    """Return the account ``by`` may manage, or raise NotFound or Forbidden saying why not."""
    if by.user_id is None:
        return users.get_user(session, user_id)
    programs = {m.program_id for m in users.memberships(session, user_id)}
    if by.program_id not in programs:  # the same answer whether or not the account exists elsewhere
        raise NotFound("that user is not a member of this program", code="member_not_found")
    user = users.get_user(session, user_id)
    if by.user_id == user_id:
        raise Forbidden("that is your own account: change its password on your account page "
                        "(another owner can disable it)", code="own_account")
    roles = {m.program_id: m.role for m in users.memberships(session, by.user_id)}
    if not may_manage_account(roles, programs):
        raise Forbidden("that account also opens programs you do not own: only the install's admin "
                        "can disable it or reset its password", code="account_beyond_your_programs")
    return user


def disable_user(session: Session, user_id: str, by: Manager = INSTALL_ADMIN) -> User:
    """Disable an account: it cannot log in and every session of it ends; its roles stay.

    Refused while it is the last active owner of a program.
    """
    user = managed_user(session, user_id, by)
    for member in users.memberships_by_program(session, user_id):
        users.keep_an_owner(session, member.program_id, user_id, None)
    if not user.disabled or by.user_id is None:  # an owner's disable never hides the admin's
        user.disabled_by = by.user_id or ADMIN
    user.disabled = True
    users.end_sessions(session, user_id)  # commits the flag and the new stamp together
    log.info("user %s disabled by %s", user_id, by)
    return user


def enable_user(session: Session, user_id: str, by: Manager = INSTALL_ADMIN) -> User:
    """Let a disabled account log in again (its sessions from before stay ended).

    An account the install's admin disabled is enabled by the admin only: shut out (say, as
    compromised) it stays out until the admin lets it back.
    """
    user = managed_user(session, user_id, by)
    if user.disabled and user.disabled_by == ADMIN and by.user_id is not None:
        raise Forbidden("the install's admin disabled that account: only the admin can enable it "
                        "(referflow users enable)", code="disabled_by_admin")
    user.disabled = False
    user.disabled_by = None
    session.commit()
    log.info("user %s enabled by %s", user_id, by)
    return user


def reset_password(session: Session, user_id: str, new: str, by: Manager = INSTALL_ADMIN,
                   hasher: PasswordHasher = users.HASHER) -> User:
    """Give an account a new password (the password rules apply) and end every session of it."""
    user = managed_user(session, user_id, by)
    user.password_hash = users.hash_password(new, hasher)
    # An owner knows it: its holder replaces it before any program page (it must not open a
    # program the account joins later, which that owner may not own)
    user.must_change_password = by.user_id is not None
    users.end_sessions(session, user_id)  # commits the hash and the new stamp together
    log.info("user %s: password reset by %s", user_id, by)
    return user
