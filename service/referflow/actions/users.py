"""Dashboard users: accounts with Argon2 password hashes, and their roles per program."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from referflow.domain.codes import new_id, new_session_stamp
from referflow.domain.roles import Role, parse_role
from referflow.domain.timeutil import utcnow
from referflow.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from referflow.storage.locks import serialise_on
from referflow.storage.models import Program, ProgramMember, User

log = logging.getLogger("referflow.users")
HASHER = PasswordHasher()  # argon2-cffi's defaults: RFC 9106's low-memory Argon2id profile
MIN_PASSWORD, MAX_PASSWORD = 12, 1024
MAX_EMAIL = 320


@dataclass(frozen=True)
class Membership:
    """A program a user can open, with the user's role on it."""

    program_id: str
    program_name: str
    role: str


def login_key(email: str) -> str:
    """Return the key an email is looked up by: trimmed and lowercase (the entered form is kept)."""
    return email.strip().lower()


def check_email(email: str) -> str:
    """Return the trimmed email, or raise ValidationFailed when it cannot be a mailbox."""
    email = email.strip()
    local, sep, domain = email.rpartition("@")
    if (not sep or not local or "." not in domain or len(email) > MAX_EMAIL
            or any(c.isspace() or ord(c) < 32 for c in email)):
        raise ValidationFailed("enter an email address like name@example.com", code="invalid_email")
    return email


def check_password(password: str) -> None:
    """Refuse passwords shorter than 12 or longer than 1024 characters."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValidationFailed(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters",
                               code="invalid_password")


def hash_password(password: str, hasher: PasswordHasher = HASHER) -> str:
    """Return the Argon2id hash of a password that meets the policy."""
    check_password(password)
    return hasher.hash(password)


@cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash("referflow: no such user, same work")


def _verifies(hasher: PasswordHasher, stored: str, password: str) -> bool:
    try:
        return hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def authenticate(session: Session, email: str, password: str,
                 hasher: PasswordHasher = HASHER) -> User | None:
    """Return the active user with this email and password, else None (in about the same time).

    An unknown email is checked against a dummy hash, so timing does not tell which emails
    have accounts. A hash made with older parameters is replaced on success.
    """
    user = session.scalar(select(User).where(User.email_key == login_key(email)))
    if len(password) > MAX_PASSWORD:
        return None
    if not _verifies(hasher, user.password_hash if user else _dummy_hash(hasher), password):
        return None
    if user is None or user.disabled:
        return None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    user.last_login_at = utcnow()
    session.commit()
    return user


def get_user(session: Session, user_id: str) -> User:
    """Return the user, or raise NotFound."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user", code="user_not_found")
    return user


def active_user(session: Session, user_id: str) -> User | None:
    """Return the user if it still exists and is not disabled."""
    user = session.get(User, user_id)
    return user if user is not None and not user.disabled else None


def session_user(session: Session, user_id: str, stamp: str) -> User | None:
    """Return the active user whose sessions ``stamp`` still opens, else None.

    The stamp is compared in constant time: a cookie is signed, but its holder can read it.
    """
    user = active_user(session, user_id)
    if user is None or not hmac.compare_digest(user.session_stamp.encode(), stamp.encode()):
        return None
    return user


def end_sessions(session: Session, user_id: str) -> User:
    """Give the user a new session stamp: every session holding the old one is over."""
    user = get_user(session, user_id)
    user.session_stamp = new_session_stamp()
    session.commit()
    log.info("user %s: every session ended", user_id)
    return user


def change_password(session: Session, user_id: str, current: str, new: str,
                    hasher: PasswordHasher = HASHER) -> User:
    """Set the user's new password once the current one checks; end every session.

    The caller re-issues its own session with the new stamp (the user stays in there).
    """
    user = get_user(session, user_id)
    if len(current) > MAX_PASSWORD or not _verifies(hasher, user.password_hash, current):
        raise Unauthorized("the current password is not right", code="wrong_password")
    user.password_hash = hash_password(new, hasher)
    user.must_change_password = False
    user.session_stamp = new_session_stamp()
    session.commit()
    log.info("user %s changed their password; their other sessions ended", user_id)
    return user


def find_user(session: Session, email: str) -> User:
    """Return the user with this email (any case), or raise NotFound."""
    user = session.scalar(select(User).where(User.email_key == login_key(email)))
    if user is None:
        raise NotFound("no user with that email", code="user_not_found")
    return user


def create_user(session: Session, email: str, password: str, role: str,
                program_ids: Iterable[str], hasher: PasswordHasher = HASHER) -> User:
    """Create a user with one role on each of the given programs."""
    email, chosen, programs = check_email(email), parse_valid_role(role), list(dict.fromkeys(program_ids))
    for program_id in programs:
        _program(session, program_id)
    user = User(id=new_id("usr"), email=email, email_key=login_key(email),
                password_hash=hash_password(password, hasher))
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("a user with that email exists", code="user_exists") from exc
    for program_id in programs:
        session.add(ProgramMember(user_id=user.id, program_id=program_id, role=chosen))
    session.commit()
    log.info("user %s created (%s on %d programs)", user.id, chosen, len(programs))
    return user


def parse_valid_role(raw: str) -> Role:
    """Return the role named ``raw``, or raise ValidationFailed."""
    try:
        return parse_role(raw)
    except ValueError as exc:
        raise ValidationFailed(str(exc), code="invalid_role") from exc


def _program(session: Session, program_id: str) -> Program:
    program = session.get(Program, program_id)
    if program is None:
        raise NotFound(f"program {program_id} not found", code="program_not_found")
    return program


def memberships(session: Session, user_id: str) -> list[Membership]:
    """Return the programs a user can open, by name."""
    rows = session.execute(select(Program.id, Program.name, ProgramMember.role)
                           .join(ProgramMember, ProgramMember.program_id == Program.id)
                           .where(ProgramMember.user_id == user_id)
                           .order_by(Program.name, Program.id))
    return [Membership(pid, name, role) for pid, name, role in rows]


def role_on(session: Session, user_id: str, program_id: str) -> str | None:
    """Return the user's role on a program, or None when not a member."""
    member = session.get(ProgramMember, (user_id, program_id))
    return member.role if member is not None else None


def list_users(session: Session) -> list[tuple[User, list[ProgramMember]]]:
    """Return every user, by email, with their memberships."""
    users = list(session.scalars(select(User).order_by(User.email_key)))
    members: dict[str, list[ProgramMember]] = {u.id: [] for u in users}
    for row in session.scalars(select(ProgramMember).order_by(ProgramMember.program_id)):
        members[row.user_id].append(row)
    return [(u, members[u.id]) for u in users]


def members_of(session: Session, program_id: str) -> list[tuple[User, str]]:
    """Return a program's members with their roles, by email."""
    rows = session.execute(select(User, ProgramMember.role)
                           .join(ProgramMember, ProgramMember.user_id == User.id)
                           .where(ProgramMember.program_id == program_id).order_by(User.email_key))
    return [(user, role) for user, role in rows]


def emails_of(session: Session, user_ids: Iterable[str]) -> dict[str, str]:
    """Return the email of each user id (to show who decided; logs keep only ids)."""
    wanted = set(user_ids)
    if not wanted:
        return {}
    return {uid: email for uid, email in session.execute(select(User.id, User.email).where(User.id.in_(wanted)))}


def keep_an_owner(session: Session, program_id: str, user_id: str, new_role: str | None) -> None:
    """Refuse to leave a program without an active owner (its last one cannot leave, step down
    or be disabled; ``new_role`` None: the user leaves or is disabled).

    The program's row is locked first, so two owners taken away at once cannot both pass.
    """
    if role_on(session, user_id, program_id) != Role.OWNER or new_role == Role.OWNER:
        return
    serialise_on(session, Program, program_id, "config_version")
    others = session.scalar(select(func.count()).select_from(ProgramMember)
                            .join(User, User.id == ProgramMember.user_id).where(
        ProgramMember.program_id == program_id, ProgramMember.role == Role.OWNER,
        ProgramMember.user_id != user_id, User.disabled.is_(False)))
    if not others:
        raise Conflict("a program keeps at least one owner who is not disabled: make someone else owner first",
                       code="last_owner")


def set_role(session: Session, user_id: str, program_id: str, role: str) -> ProgramMember:
    """Give a user a role on a program (adding the membership when there is none)."""
    chosen = parse_valid_role(role)
    _program(session, program_id)
    keep_an_owner(session, program_id, user_id, chosen)
    member = session.get(ProgramMember, (user_id, program_id))
    if member is None:
        member = ProgramMember(user_id=user_id, program_id=program_id, role=chosen)
        session.add(member)
    member.role = chosen
    session.commit()
    log.info("user %s is %s of %s", user_id, chosen, program_id)
    return member


def add_member(session: Session, program_id: str, email: str, role: str,
               password: str | None, hasher: PasswordHasher = HASHER) -> User:
    """Give the user with this email a role on a program; create the user when there is none.

    The password is used only for a new user: an existing one keeps theirs.
    """
    parse_valid_role(role)
    user = session.scalar(select(User).where(User.email_key == login_key(email)))
    if user is None:
        if not password:
            check_email(email)
            raise ValidationFailed("give an initial password for a new user", code="invalid_password")
        return create_user(session, email, password, role, [program_id], hasher)
    set_role(session, user.id, program_id, role)
    return user


def remove_member(session: Session, program_id: str, user_id: str) -> None:
    """Take a user off a program (the account stays)."""
    member = session.get(ProgramMember, (user_id, program_id))
    if member is None:
        raise NotFound("that user is not a member of this program", code="member_not_found")
    keep_an_owner(session, program_id, user_id, None)
    session.delete(member)
    session.commit()
    log.info("user %s removed from %s", user_id, program_id)


def memberships_by_program(session: Session, user_id: str) -> list[ProgramMember]:
    """Return a user's memberships by program id (the order programs are locked in)."""
    return list(session.scalars(select(ProgramMember).where(ProgramMember.user_id == user_id)
                                .order_by(ProgramMember.program_id)))


def remove_user(session: Session, user_id: str) -> None:
    """Delete a user and their memberships (refused while they are a program's last owner)."""
    user = get_user(session, user_id)
    for member in memberships_by_program(session, user_id):
        keep_an_owner(session, member.program_id, user_id, None)
        session.delete(member)
    session.flush()
    session.delete(user)
    session.commit()
    log.info("user %s removed", user_id)
