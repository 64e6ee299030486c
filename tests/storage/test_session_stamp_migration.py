"""0021: existing dashboard users get a session stamp each; the way down drops it."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from referflow.storage.migrate import alembic_config, downgrade, upgrade
from tests.test_gift_card_codes import empty_url  # noqa: F401 (a fixture: an empty database)

REVISION = "0021"


def _previous() -> str:
    down = ScriptDirectory.from_config(alembic_config("")).get_revision(REVISION).down_revision
    assert isinstance(down, str)
    return down


def test_existing_users_get_a_stamp_each_and_the_way_down_drops_it(empty_url):  # noqa: F811
    previous = _previous()
    upgrade(empty_url, previous)
    engine = sa.create_engine(empty_url)
    tables = sa.MetaData()
    tables.reflect(engine, only=["users", "programs", "program_members"])
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(tables.tables["programs"].insert(), [{
            "id": "prg_old", "name": "Old", "config": {"landing_url": "https://a.test"},
            "config_version": 1, "created_at": now}])
        conn.execute(tables.tables["users"].insert(), [{
            "id": f"usr_old{i}", "email": f"u{i}@example.test", "email_key": f"u{i}@example.test",
            "password_hash": "$argon2id$x", "created_at": now, "disabled": False} for i in range(3)])
        # a member row points at a user: SQLite's rebuild of users must not trip on it
        conn.execute(tables.tables["program_members"].insert(), [{
            "user_id": "usr_old0", "program_id": "prg_old", "role": "owner", "created_at": now}])
    engine.dispose()

    upgrade(empty_url, REVISION)
    engine = sa.create_engine(empty_url)
    with engine.connect() as conn:
        stamps = list(conn.scalars(sa.text("SELECT session_stamp FROM users ORDER BY id")))
        assert conn.scalar(sa.text("SELECT count(*) FROM program_members")) == 1
        column = next(c for c in sa.inspect(conn).get_columns("users") if c["name"] == "session_stamp")
    engine.dispose()
    assert len(set(stamps)) == 3 and all(s and len(s) >= 22 for s in stamps)
    assert column["nullable"] is False

    downgrade(empty_url, previous)
    engine = sa.create_engine(empty_url)
    with engine.connect() as conn:
        assert "session_stamp" not in {c["name"] for c in sa.inspect(conn).get_columns("users")}
        assert conn.scalar(sa.text("SELECT count(*) FROM users")) == 3
        assert conn.scalar(sa.text("SELECT count(*) FROM program_members")) == 1
    engine.dispose()
    upgrade(empty_url)
