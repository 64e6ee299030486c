"""Dashboard test steps: make a user with a role, log in through the form (CSRF token included)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from referflow.actions import users
from referflow.storage.db import Database

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class MadeUser:
    """A user made for a test: its id, and the email and password to log in with."""

    id: str
    email: str
    password: str


def _database(app_or_db: Any) -> Database:
    if isinstance(app_or_db, Database):
        return app_or_db
    return app_or_db.extensions["referflow"].db


def make_user(app_or_db: Any, email: str, password: str = PASSWORD, role: str = "owner",
              program_ids: Iterable[str] | str = ()) -> MadeUser:
    """Create a dashboard user with ``role`` on each program (an app or a Database)."""
    ids = [program_ids] if isinstance(program_ids, str) else list(program_ids)
    with _database(app_or_db).sessions() as session:
        user = users.create_user(session, email, password, role, ids)
        return MadeUser(user.id, email, password)


def csrf_token(client: Any, page: str = "/dashboard/login") -> str:
    """Return the CSRF token of this client's session, read from a form on ``page``."""
    response = client.get(page)
    match = TOKEN.search(response.get_data(as_text=True))
    assert match, f"no CSRF token on {page} ({response.status_code})"
    return html.unescape(match.group(1))


def login(client: Any, email: str, password: str = PASSWORD, expect: int | None = 302) -> Any:
    """Log in through the form; return the response (302 to the dashboard on success)."""
    token = csrf_token(client, "/dashboard/login")
    response = client.post("/dashboard/login", data={"email": email, "password": password,
                                                     "csrf_token": token})
    if expect is not None:
        assert response.status_code == expect, response.get_data(as_text=True)[:2000]
    return response


def post_form(client: Any, url: str, data: dict[str, Any] | None = None, *,
              page: str | None = None) -> Any:
    """Post a dashboard form as a browser would: with the token shown on ``page`` (default: url)."""
    token = csrf_token(client, page or url)
    return client.post(url, data={**(data or {}), "csrf_token": token})


def text(response: Any) -> str:
    """Return a response's HTML as text."""
    return response.get_data(as_text=True)
