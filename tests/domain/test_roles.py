"""Dashboard roles: the one table of who may do what."""

from __future__ import annotations

import pytest

from referflow.domain.roles import Permission, Role, allows, at_least, may_manage_account, parse_role

EXPECTED = {
    Role.VIEWER: {Permission.READ},
    Role.REVIEWER: {Permission.READ, Permission.DECIDE_REVIEWS, Permission.REPLAY_DELIVERIES},
    Role.OWNER: set(Permission),
}


@pytest.mark.parametrize("role", list(Role))
def test_each_role_has_exactly_its_permissions(role):
    assert {p for p in Permission if allows(role, p)} == EXPECTED[role]


def test_no_role_is_never_enough():
    assert not at_least(None, Role.VIEWER) and not allows(None, Permission.READ)


@pytest.mark.parametrize("raw, role", [("owner", Role.OWNER), (" Reviewer ", Role.REVIEWER)])
def test_roles_parse(raw, role):
    assert parse_role(raw) is role


@pytest.mark.parametrize("raw", ["", "admin", "owners"])
def test_unknown_roles_are_refused_with_the_valid_ones_named(raw):
    with pytest.raises(ValueError, match="viewer, reviewer, owner"):
        parse_role(raw)


@pytest.mark.parametrize("manager, account, may", [
    ({"p1": "owner"}, ["p1"], True),
    ({"p1": "owner", "p2": "owner"}, ["p1", "p2"], True),
    ({"p1": "owner", "p2": "owner"}, ["p2"], True),
    ({"p1": "owner"}, ["p1", "p2"], False),  # the account also opens a program of someone else
    ({"p1": "owner", "p2": "reviewer"}, ["p1", "p2"], False),  # a member there, not its owner
    ({"p1": "owner", "p2": "viewer"}, ["p1", "p2"], False),
    ({"p1": "reviewer"}, ["p1"], False),
    ({}, ["p1"], False),
])
def test_an_owner_manages_only_accounts_whose_every_program_they_own(manager, account, may):
    assert may_manage_account(manager, account) is may
