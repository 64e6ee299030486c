"""Accounts managed by someone else: disable, enable, reset the password, and who may."""

from __future__ import annotations

import logging
import threading

import pytest

from referflow.actions import accounts, users
from referflow.actions.accounts import INSTALL_ADMIN, Manager
from referflow.errors import Conflict, Forbidden, NotFound, ValidationFailed
from referflow.storage.models import User
from tests.conftest import make_program
from tests.dashboard_helpers import PASSWORD, make_user

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture()
def db(app):
    return app.extensions["referflow"].db


@pytest.fixture()
def programs(client):
    """Two programs: P (Ann's) and Q (Zed's)."""
    return make_program(client, name="P").program_id, make_program(client, name="Q").program_id


@pytest.fixture()
def ann(app, programs):
    return make_user(app, "ann@example.test", role="owner", program_ids=programs[0])


@pytest.fixture()
def co_owner(app, programs):
    """A second owner of P, so that Ann is not its last one."""
    return make_user(app, "otto@example.test", role="owner", program_ids=programs[0])


def _state(db, user_id):
    """Return what a change could touch: disabled, stamp, hash, and the roles."""
    with db.session() as session:
        user = session.get(User, user_id)
        roles = {m.program_id: m.role for m in users.memberships(session, user_id)}
        return user.disabled, user.session_stamp, user.password_hash, roles


def _logs_in(db, email, password=PASSWORD) -> bool:
    with db.session() as session:
        return users.authenticate(session, email, password) is not None


def _run(db, change, *args, **kwargs):
    with db.session() as session:
        try:
            return change(session, *args, **kwargs)
        except Exception:
            session.rollback()
            raise


def test_a_disabled_user_cannot_log_in_loses_every_session_and_keeps_their_roles(db, programs, ann, co_owner):
    disabled, stamp, _hash, roles = _state(db, ann.id)
    assert not disabled and _logs_in(db, ann.email)
    _run(db, accounts.disable_user, ann.id)
    now_disabled, new_stamp, _hash, kept = _state(db, ann.id)
    assert now_disabled and new_stamp != stamp and kept == roles
    assert not _logs_in(db, ann.email)
    with db.session() as session:
        assert users.session_user(session, ann.id, stamp) is None
        assert users.session_user(session, ann.id, new_stamp) is None
    _run(db, accounts.enable_user, ann.id)
    assert _logs_in(db, ann.email) and _state(db, ann.id)[3] == roles
    with db.session() as session:
        assert users.session_user(session, ann.id, stamp) is None  # enabling revives no old session


def test_disabling_twice_or_enabling_an_active_user_is_harmless(db, programs, ann, co_owner):
    _run(db, accounts.enable_user, ann.id)
    assert _logs_in(db, ann.email)
    _run(db, accounts.disable_user, ann.id)
    _run(db, accounts.disable_user, ann.id)
    assert _state(db, ann.id)[0]


def test_the_last_active_owner_cannot_be_disabled(app, db, programs, ann):
    before = _state(db, ann.id)
    with pytest.raises(Conflict) as refused:
        _run(db, accounts.disable_user, ann.id)
    assert refused.value.code == "last_owner" and _state(db, ann.id) == before
    bob = make_user(app, "bob@example.test", role="owner", program_ids=programs[0])
    _run(db, accounts.disable_user, ann.id)
    with pytest.raises(Conflict, match="owner who is not disabled"):  # Ann, disabled, does not count
        _run(db, accounts.disable_user, bob.id)
    for change in (lambda s: users.set_role(s, bob.id, programs[0], "viewer"),
                   lambda s: users.remove_member(s, programs[0], bob.id),
                   lambda s: users.remove_user(s, bob.id)):
        with pytest.raises(Conflict, match="owner who is not disabled"):
            _run(db, change)
    _run(db, accounts.enable_user, ann.id)
    _run(db, accounts.disable_user, bob.id)
    assert _state(db, bob.id)[0] and not _state(db, ann.id)[0]


def test_a_member_who_is_no_owner_is_disabled_whatever_the_owners(app, db, programs, ann):
    viewer = make_user(app, "vic@example.test", role="viewer", program_ids=programs)
    _run(db, accounts.disable_user, viewer.id)
    assert not _logs_in(db, viewer.email)


def test_a_password_reset_sets_the_new_one_and_ends_every_session(db, programs, ann):
    _disabled, stamp, _hash, _roles = _state(db, ann.id)
    _run(db, accounts.reset_password, ann.id, NEW_PASSWORD)
    assert _state(db, ann.id)[1] != stamp
    assert _logs_in(db, ann.email, NEW_PASSWORD) and not _logs_in(db, ann.email, PASSWORD)


@pytest.mark.parametrize("password", ["", "short", "x" * 11, "y" * 1025])
def test_a_reset_password_follows_the_rules_and_a_refused_one_changes_nothing(db, programs, ann, password):
    before = _state(db, ann.id)
    with pytest.raises(ValidationFailed) as refused:
        _run(db, accounts.reset_password, ann.id, password)
    assert refused.value.code == "invalid_password" and _state(db, ann.id) == before


def test_a_disabled_user_given_a_new_password_stays_out_until_enabled(app, db, programs, ann):
    make_user(app, "bob@example.test", role="owner", program_ids=programs[0])
    _run(db, accounts.disable_user, ann.id)
    _run(db, accounts.reset_password, ann.id, NEW_PASSWORD)
    assert not _logs_in(db, ann.email, NEW_PASSWORD)
    _run(db, accounts.enable_user, ann.id)
    assert _logs_in(db, ann.email, NEW_PASSWORD)


@pytest.mark.parametrize("change", ["disable_user", "enable_user", "reset_password"])
def test_an_unknown_user_is_not_found(db, programs, change):
    args = ("usr_nobody", NEW_PASSWORD) if change == "reset_password" else ("usr_nobody",)
    with pytest.raises(NotFound) as missing:
        _run(db, getattr(accounts, change), *args)
    assert missing.value.code == "user_not_found"


# An owner on the dashboard: only accounts whose every program they own, never their own.

def _as_owner(change, user_id, by):
    return (change, (user_id, NEW_PASSWORD) if change == "reset_password" else (user_id,), {"by": by})


def test_an_account_the_admin_disabled_is_enabled_by_the_admin_only(app, db, programs, ann):
    p, _q = programs
    bob = make_user(app, "bob@example.test", role="reviewer", program_ids=p)
    _run(db, accounts.disable_user, bob.id)  # the install's admin: say, a compromised account
    with pytest.raises(Forbidden) as refused:
        _run(db, accounts.enable_user, bob.id, Manager(ann.id, p))
    assert refused.value.code == "disabled_by_admin"
    assert _state(db, bob.id)[0] is True and not _logs_in(db, "bob@example.test")
    _run(db, accounts.disable_user, bob.id, Manager(ann.id, p))  # disabling again changes nothing
    with pytest.raises(Forbidden):
        _run(db, accounts.enable_user, bob.id, Manager(ann.id, p))
    _run(db, accounts.enable_user, bob.id)
    assert _state(db, bob.id)[0] is False and _logs_in(db, "bob@example.test")


def test_an_account_an_owner_disabled_is_enabled_by_an_owner_and_says_by_whom(
        app, db, programs, ann, co_owner):
    p, _q = programs
    bob = make_user(app, "bob@example.test", role="reviewer", program_ids=p)
    _run(db, accounts.disable_user, bob.id, Manager(ann.id, p))
    with db.session() as session:
        assert session.get(User, bob.id).disabled_by == ann.id
    _run(db, accounts.enable_user, bob.id, Manager(co_owner.id, p))  # another owner may
    with db.session() as session:
        enabled = session.get(User, bob.id)
        assert (enabled.disabled, enabled.disabled_by) == (False, None)


CHANGES = ["disable_user", "enable_user", "reset_password"]


@pytest.mark.parametrize("change", CHANGES)
def test_an_owner_manages_a_member_of_their_programs_only(app, db, programs, ann, change):
    p, _q = programs
    bob = make_user(app, "bob@example.test", role="reviewer", program_ids=p)
    name, args, kwargs = _as_owner(change, bob.id, Manager(ann.id, p))
    _run(db, getattr(accounts, name), *args, **kwargs)  # Bob opens P only: Ann may


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("role_on_q, ann_on_q, allowed", [
    ("viewer", None, False),        # Bob also opens Zed's Q
    ("owner", None, False),
    ("viewer", "reviewer", False),  # Ann is on Q too, but not its owner
    ("owner", "owner", True),       # Ann owns both of Bob's programs
])
def test_an_account_that_opens_a_program_the_owner_does_not_own_is_refused(
        app, db, programs, ann, change, role_on_q, ann_on_q, allowed):
    p, q = programs
    make_user(app, "zed@example.test", role="owner", program_ids=q)
    bob = make_user(app, "bob@example.test", role="viewer", program_ids=p)
    with db.session() as session:
        users.set_role(session, bob.id, q, role_on_q)
        if ann_on_q:
            users.set_role(session, ann.id, q, ann_on_q)
    before = _state(db, bob.id)
    name, args, kwargs = _as_owner(change, bob.id, Manager(ann.id, p))
    if allowed:
        _run(db, getattr(accounts, name), *args, **kwargs)
        return
    with pytest.raises(Forbidden) as refused:
        _run(db, getattr(accounts, name), *args, **kwargs)
    assert refused.value.code == "account_beyond_your_programs" and "programs you do not own" in str(refused.value)
    assert _state(db, bob.id) == before


@pytest.mark.parametrize("change", CHANGES)
def test_an_owner_cannot_manage_their_own_account(app, db, programs, ann, change):
    make_user(app, "bob@example.test", role="owner", program_ids=programs[0])  # not the last owner
    before = _state(db, ann.id)
    name, args, kwargs = _as_owner(change, ann.id, Manager(ann.id, programs[0]))
    with pytest.raises(Forbidden) as refused:
        _run(db, getattr(accounts, name), *args, **kwargs)
    assert refused.value.code == "own_account" and _state(db, ann.id) == before


@pytest.mark.parametrize("change", CHANGES)
def test_an_owner_cannot_reach_an_account_outside_the_program(app, db, programs, ann, change):
    """A user of another program (or none) is not found from P: nothing tells it exists."""
    p, q = programs
    zed = make_user(app, "zed@example.test", role="viewer", program_ids=q)
    lonely = make_user(app, "lonely@example.test", role="viewer", program_ids=[])
    for user_id in (zed.id, lonely.id, "usr_nobody"):
        name, args, kwargs = _as_owner(change, user_id, Manager(ann.id, p))
        with pytest.raises(NotFound) as missing:
            _run(db, getattr(accounts, name), *args, **kwargs)
        assert (missing.value.code, missing.value.message) == (
            "member_not_found", "that user is not a member of this program")


def test_each_change_is_logged_with_ids_and_who_made_it_never_an_email(app, db, programs, ann, caplog):
    p, _q = programs
    bob = make_user(app, "bob@example.test", role="viewer", program_ids=p)
    caplog.set_level(logging.INFO, logger="referflow.users")
    _run(db, accounts.disable_user, bob.id, by=Manager(ann.id, p))
    _run(db, accounts.enable_user, bob.id, by=Manager(ann.id, p))
    _run(db, accounts.reset_password, bob.id, NEW_PASSWORD, by=Manager(ann.id, p))
    _run(db, accounts.disable_user, bob.id, by=INSTALL_ADMIN)
    lines = [r.getMessage() for r in caplog.records if r.name == "referflow.users"]
    assert f"user {bob.id} disabled by user {ann.id} (owner of {p})" in lines
    assert f"user {bob.id} enabled by user {ann.id} (owner of {p})" in lines
    assert f"user {bob.id}: password reset by user {ann.id} (owner of {p})" in lines
    assert f"user {bob.id} disabled by the install's admin (CLI)" in lines
    assert sum("every session ended" in line for line in lines) == 3
    assert not [line for line in lines if "@" in line or NEW_PASSWORD in line]


def test_two_owners_disabling_each_other_at_once_leave_one_active(app, db, programs, ann, monkeypatch):
    """Each checks that another active owner stays; without the program's lock both would pass."""
    p, _q = programs
    bob = make_user(app, "bob@example.test", role="owner", program_ids=p)
    second_checking, real_lock, real_end = threading.Event(), users.serialise_on, users.end_sessions

    def lock(session, model, row_id, column):
        if threading.current_thread().name == "second":
            second_checking.set()
        real_lock(session, model, row_id, column)

    def end_sessions(session, user_id):
        if threading.current_thread().name == "first":  # checked, not committed: let the second try
            second_checking.wait(5)
            threading.Event().wait(0.3)
        return real_end(session, user_id)

    monkeypatch.setattr(users, "serialise_on", lock)
    monkeypatch.setattr(users, "end_sessions", end_sessions)
    outcomes: dict[str, str] = {}

    def disable(target, manager):
        try:
            _run(db, accounts.disable_user, target, by=Manager(manager, p))
            outcomes[threading.current_thread().name] = "disabled"
        except Conflict as exc:
            outcomes[threading.current_thread().name] = exc.code

    first = threading.Thread(target=disable, args=(bob.id, ann.id), name="first")
    first.start()
    threading.Event().wait(0.1)
    second = threading.Thread(target=disable, args=(ann.id, bob.id), name="second")
    second.start()
    first.join(30)
    second.join(30)
    assert outcomes == {"first": "disabled", "second": "last_owner"}
    assert [_state(db, u)[0] for u in (ann.id, bob.id)] == [False, True]
