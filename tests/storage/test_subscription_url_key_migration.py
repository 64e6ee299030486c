"""0022: subscriptions get their URL's normal form, duplicates made before are kept; the way
down drops the key and its index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.exc import IntegrityError

from referflow.storage.migrate import alembic_config, downgrade, upgrade
from tests.test_gift_card_codes import empty_url  # noqa: F401 (a fixture: an empty database)

REVISION = "0022"
KEY = "https://hook.example.test/x"
# (id, program, url, active): in the order they were made
LEGACY = [
    ("whk_a", "prg_one", "https://Hook.EXAMPLE.test/x", True),
    ("whk_b", "prg_one", "https://hook.example.test:443/x#again", True),  # a duplicate of whk_a
    ("whk_c", "prg_one", KEY, False),  # removed: outside the rule
    ("whk_d", "prg_two", KEY, True),  # another program's
    ("whk_e", "prg_one", "not a URL at all", True),  # refused by the sender anyway
    ("whk_f", "prg_one", "https://hook.example.test/y", True),
]


def _previous() -> str:
    down = ScriptDirectory.from_config(alembic_config("")).get_revision(REVISION).down_revision
    assert down == "0021"
    return down


def test_duplicates_are_kept_the_oldest_holds_the_key_and_the_way_down_drops_it(empty_url):  # noqa: F811
    previous = _previous()
    upgrade(empty_url, previous)
    engine = sa.create_engine(empty_url)
    tables = sa.MetaData()
    tables.reflect(engine, only=["programs", "webhook_subscriptions"])
    subs = tables.tables["webhook_subscriptions"]
    start = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(tables.tables["programs"].insert(), [{
            "id": pid, "name": pid, "config": {"landing_url": "https://a.test"}, "config_version": 1,
            "created_at": start} for pid in ("prg_one", "prg_two")])
        conn.execute(subs.insert(), [{
            "id": sid, "program_id": pid, "url": url, "events": ["*"], "secret": "whsec_x",
            "active": active, "created_at": start + timedelta(seconds=i),
            "deleted_at": None if active else start} for i, (sid, pid, url, active) in enumerate(LEGACY)])
    engine.dispose()

    upgrade(empty_url, REVISION)
    engine = sa.create_engine(empty_url)
    with engine.connect() as conn:
        keys = dict(conn.execute(sa.text("SELECT id, url_key FROM webhook_subscriptions")).all())
        assert keys == {"whk_a": KEY, "whk_b": None, "whk_c": KEY, "whk_d": KEY, "whk_e": None,
                        "whk_f": "https://hook.example.test/y"}
        index = next(i for i in sa.inspect(conn).get_indexes("webhook_subscriptions")
                     if i["name"] == "ix_webhook_subscriptions_program_id_url_key")
        assert index["unique"]
    with engine.connect() as conn, pytest.raises(IntegrityError):  # a second active one: refused
        conn.execute(sa.text(
            "INSERT INTO webhook_subscriptions (id, program_id, url, url_key, events, secret, active,"
            " created_at) VALUES ('whk_g', 'prg_one', :url, :key, '[\"*\"]', 'whsec_x', :on, :at)"),
            {"url": KEY, "key": KEY, "on": True, "at": start})
    with engine.begin() as conn:  # an inactive one is outside the index
        conn.execute(sa.text(
            "INSERT INTO webhook_subscriptions (id, program_id, url, url_key, events, secret, active,"
            " created_at) VALUES ('whk_h', 'prg_one', :url, :key, '[\"*\"]', 'whsec_x', :off, :at)"),
            {"url": KEY, "key": KEY, "off": False, "at": start})
    engine.dispose()

    downgrade(empty_url, previous)
    engine = sa.create_engine(empty_url)
    with engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("webhook_subscriptions")}
        assert "url_key" not in columns
        assert conn.scalar(sa.text("SELECT count(*) FROM webhook_subscriptions")) == len(LEGACY) + 1
    engine.dispose()
    upgrade(empty_url)
