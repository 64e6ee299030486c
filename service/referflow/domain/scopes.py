"""What an API key may do: its scopes, and the scope each operation needs.

    read              the GET operations
    write             read, and every change a program makes through the API
    admin-of-program  write, and the program's own keys, config, providers and experiments

Each scope includes the ones above it. schemas/create-api-key.request.json lists the same
names (tests/api/test_api_keys.py checks that they agree).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Scope(StrEnum):
    """A scope of a program API key."""

    READ = "read"
    WRITE = "write"
    ADMIN_OF_PROGRAM = "admin-of-program"


_NAMES = frozenset(s.value for s in Scope)
GRANTS: dict[Scope, frozenset[Scope]] = {
    Scope.READ: frozenset({Scope.READ}),
    Scope.WRITE: frozenset({Scope.READ, Scope.WRITE}),
    Scope.ADMIN_OF_PROGRAM: frozenset(Scope),
}

# A key made with createApiKey (or `referflow keys create`) without scopes: enough for the
# workflows, the node pack and Zapier; not enough to change the program's keys, config or providers.
DEFAULT_SCOPES = (Scope.WRITE,)
# The key createProgram returns belongs to the program's owner: it can do everything.
OWNER_SCOPES = (Scope.ADMIN_OF_PROGRAM,)


def allows(scopes: Iterable[str], needed: Scope) -> bool:
    """Tell whether a key with ``scopes`` may call an operation that needs ``needed``."""
    return any(needed in GRANTS[Scope(s)] for s in scopes if s in _NAMES)


def method_scope(method: str) -> Scope:
    """Return the scope an operation needs by default: reading for GET, writing otherwise."""
    return Scope.READ if method == "GET" else Scope.WRITE
