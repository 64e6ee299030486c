"""Fixtures: a migrated database per test session, a fresh app per test, API helpers.

TEST_DATABASE_URL picks the backend: unset = a SQLite file; a postgresql URL = a fresh
database created next to the one named (dropped at the end).

Parallel runs (pytest-xdist, ``pytest -n auto``): each worker is a session of its own, so it has
its own database (SQLite file or PostgreSQL database), tmp folders, servers, n8n instances and
ports. REDIS_URL is moved to a Redis database number of the worker's own, and the tests that share
a module-scoped fixture (a live server, an n8n instance, a browser) stay together on one worker.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import Engine, create_engine, text

from referflow.app import create_app
from referflow.config import Settings
from referflow.storage.migrate import upgrade
from referflow.storage.models import Base

ADMIN_TOKEN = "test-admin-token"
SECRET_KEY = "test-secret-key"


WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... under -n; "" without


def worker_redis_url(url: str, worker: str = WORKER) -> str:
    """Return the Redis URL an xdist worker uses: the database numbers after the one named, one each.

    rq queues, rate-limit counters and the metrics that reach Prometheus through Redis have fixed
    key names: two workers on one database would count and run each other's jobs.
    """
    if not worker:
        return url
    parts = urlsplit(url)
    named = int(parts.path.strip("/") or 0)
    number = (named + 1 + int(worker.removeprefix("gw")) % 15) % 16  # Redis has 16 (0-15)
    return urlunsplit(parts._replace(path=f"/{number}"))


def pytest_configure(config: pytest.Config) -> None:
    # Before the test modules are imported: some read REDIS_URL at import.
    if WORKER and os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = worker_redis_url(os.environ["REDIS_URL"])


@pytest.hookimpl(tryfirst=True)  # before xdist reads the marks (--dist loadgroup)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put each test that uses a module- or class-scoped fixture in an xdist group of its module
    (and of that fixture's parameter), so the fixture is set up on one worker, once."""
    for item in items:
        group = _shared_fixture_group(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


def _shared_fixture_group(item: pytest.Item) -> str | None:
    info = getattr(item, "_fixtureinfo", None)
    shared = sorted(name for name, defs in (info.name2fixturedefs.items() if info else ())
                    if defs and defs[-1].scope in ("module", "class", "package"))
    if not shared:
        return None
    indices = getattr(getattr(item, "callspec", None), "indices", {})
    params = [f"{name}{indices[name]}" for name in shared if name in indices]
    return "::".join([item.nodeid.split("::")[0], *params])


def _postgres_database(base_url: str) -> tuple[str, Any]:
    name = f"referflow_test_{WORKER + '_' if WORKER else ''}{uuid.uuid4().hex[:10]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base_url.rsplit("/", 1)[0] + "/" + name

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Return the URL of a freshly migrated database for this test session."""
    base = os.environ.get("TEST_DATABASE_URL", "")
    if base.startswith("postgres"):
        base = base.replace("postgresql://", "postgresql+psycopg://", 1)
        url, drop = _postgres_database(base)
    else:
        url, drop = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}", lambda: None
    upgrade(url)
    yield url
    _forget_clearer(url)
    drop()


_CLEARERS: dict[str, tuple[Engine, str | None]] = {}  # url -> (engine, PostgreSQL's one script)


def _clear(url: str) -> None:
    """Empty every table and restart the ids, before every test: one engine per database for
    the session, and on PostgreSQL one round trip (DELETE of each table, then ALTER SEQUENCE ...
    RESTART, as TRUNCATE ... RESTART IDENTITY would: TRUNCATE of every table costs ~7x more
    than deleting a test's few rows; a fresh engine and a statement per table cost 77 ms a test
    against 8 ms for this)."""
    if url not in _CLEARERS:
        engine = create_engine(url)
        script = None
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                sequences = list(conn.scalars(text("SELECT sequencename FROM pg_sequences "
                                                   "WHERE schemaname = current_schema()")))
            script = "".join(f'DELETE FROM "{t.name}";' for t in reversed(Base.metadata.sorted_tables))
            script += "".join(f'ALTER SEQUENCE "{name}" RESTART;' for name in sequences)
        _CLEARERS[url] = (engine, script)
    engine, script = _CLEARERS[url]
    with engine.begin() as conn:
        if script is not None:
            conn.exec_driver_sql(script)
        else:
            for table in reversed(Base.metadata.sorted_tables):  # children first
                conn.execute(table.delete())


def _forget_clearer(url: str) -> None:
    cached = _CLEARERS.pop(url, None)
    if cached is not None:
        cached[0].dispose()


@pytest.fixture()
def settings(database_url: str) -> Settings:
    """Return test settings: validated responses, no background threads."""
    _clear(database_url)
    return Settings(database_url=database_url, redis_url=None, admin_token=ADMIN_TOKEN,
                    secret_key=SECRET_KEY, public_url="https://refer.example.test",
                    validate_responses=True, start_jobs=False,
                    allow_private_webhook_urls=True)


@pytest.fixture()
def app(settings: Settings) -> Iterator[Any]:
    """Build the app through the real factory."""
    application = create_app(settings)
    application.testing = True
    yield application
    application.extensions["referflow"].db.dispose()


@pytest.fixture()
def client(app: Any) -> Any:
    """Return a Flask test client."""
    return app.test_client()


class Api:
    """A test client that speaks for one program (or the admin)."""

    def __init__(self, client: Any, token: str):
        self.client = client
        self.token = token

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **(extra or {})}

    def post(self, path: str, body: Any = None, **headers: str) -> Any:
        return self.client.post(path, json=body, headers=self.headers(headers))

    def put(self, path: str, body: Any = None) -> Any:
        return self.client.put(path, json=body, headers=self.headers())

    def get(self, path: str) -> Any:
        return self.client.get(path, headers=self.headers())


PROGRAM_CONFIG: dict[str, Any] = {
    "landing_url": "https://shop.example.test/welcome?utm_source=referral",
    "currency": "EUR",
    "rewards": {"advocate": {"type": "gift_card", "amount": 2500},
                "friend": {"type": "gift_card", "amount": 1000}},
    "hold_days": 14,
}


def make_program(client: Any, config: dict[str, Any] | None = None, name: str = "Acme") -> Api:
    """Create a program through the admin API and return its API helper."""
    admin = Api(client, ADMIN_TOKEN)
    response = admin.post("/v1/admin/programs", {"name": name, "config": config or PROGRAM_CONFIG})
    assert response.status_code == 201, response.get_json()
    api = Api(client, response.get_json()["api_key"]["key"])
    api.program_id = response.get_json()["program"]["id"]  # type: ignore[attr-defined]
    return api


@pytest.fixture()
def admin(client: Any) -> Api:
    """Return the admin API helper."""
    return Api(client, ADMIN_TOKEN)


@pytest.fixture()
def api(client: Any) -> Api:
    """Return the API helper of a fresh program (two-sided, 14 hold days, EUR)."""
    return make_program(client)


def unique(prefix: str) -> str:
    """Return a unique external id."""
    return f"{prefix}_{secrets.token_hex(4)}"
