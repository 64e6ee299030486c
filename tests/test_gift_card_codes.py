"""Gift-card codes are bearer secrets: hashed for lookup, encrypted for display, never in the clear
in the database; rotation re-encrypts them; the migration converts an existing database
(SQLite, or PostgreSQL with TEST_DATABASE_URL); lists and the dashboard show the last four."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from referflow.actions.events import delivered_payload
from referflow.app import create_app
from referflow.cli import main
from referflow.config import Settings
from referflow.domain.codes import CODE_ALPHABET, gift_card_code_key
from referflow.storage.crypto import Keyring
from referflow.storage.migrate import downgrade, upgrade
from referflow.storage.models import GiftCard, OutboxEvent
from tests.conftest import ADMIN_TOKEN, SECRET_KEY, Api, _postgres_database
from tests.dashboard_helpers import login, make_user, text
from tests.helpers import approved_referral
from tests.test_secrets import _raw_dump, _sqlite_bytes

NEW_KEY = "the-next-secret-key"
ROTATING = {"REFERFLOW_SECRET_KEY": NEW_KEY, "REFERFLOW_OLD_SECRET_KEYS": SECRET_KEY,
            "REFERFLOW_HASH_KEY": SECRET_KEY}


def _env(url: str, **extra: str) -> dict[str, str]:
    return {"DATABASE_URL": url, "REFERFLOW_ADMIN_TOKEN": ADMIN_TOKEN, "REFERFLOW_SECRET_KEY": SECRET_KEY,
            "REDIS_URL": "", "REFERFLOW_OLD_SECRET_KEYS": "", "REFERFLOW_HASH_KEY": "", **extra}


def _issue(api: Api) -> dict[str, Any]:
    """Issue both sides of an approved referral; return the issueGiftCard answer."""
    response = api.post("/v1/gift-cards", {"referral_id": approved_referral(api)["id"]})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _raw_cards(url: str) -> dict[str, dict[str, Any]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM gift_cards")).mappings().all()
    engine.dispose()
    return {row["id"]: dict(row) for row in rows}


def test_no_code_is_in_the_clear_in_the_database(app, api, settings):
    issued = _issue(api)
    codes = [c["code"] for c in issued["cards"]]
    assert all(c["code_last4"] == c["code"][-4:] for c in issued["cards"])
    app.extensions["referflow"].db.dispose()
    raw = _raw_cards(settings.database_url)
    for card in issued["cards"]:
        row = raw[card["id"]]
        assert "code" not in row  # the plain column is gone
        assert row["code_hash"] == gift_card_code_key(SECRET_KEY, card["code"])
        assert row["code_encrypted"].startswith("rfenc:v1:")
        assert Keyring([SECRET_KEY]).decrypt("gift_cards.code", row["code_encrypted"]) == card["code"]
        assert row["code_last4"] == card["code"][-4:]
    dump = _raw_dump(settings.database_url)  # every table: cards, outbox events, rewards...
    raw_bytes = _sqlite_bytes(settings.database_url) if settings.database_url.startswith("sqlite") else b""
    for code in codes:
        assert code not in dump and code.encode() not in raw_bytes


@pytest.mark.parametrize("typed", [str.lower, lambda c: f"  {c[:4]} {c[4:8]}-{c[8:12]} {c[12:]} ",
                                   lambda c: "-".join(c[i:i + 4] for i in range(0, 16, 4)).lower()])
def test_a_card_is_found_by_its_code_as_typed(api, typed):
    card = _issue(api)["cards"][0]
    found = api.get(f"/v1/gift-cards/{typed(card['code'])}")
    assert found.status_code == 200 and found.get_json()["id"] == card["id"]
    assert found.get_json()["code"] == card["code"]  # the caller holds it already
    redeemed = api.post(f"/v1/gift-cards/{typed(card['code'])}/redeem", {"amount": 100, "currency": "EUR"})
    assert redeemed.status_code == 200 and redeemed.get_json()["balance"] == card["amount"] - 100
    other = card["code"][:-1] + ("X" if card["code"][-1] != "X" else "Y")
    assert api.get(f"/v1/gift-cards/{other}").status_code == 404


def test_a_code_already_taken_is_drawn_again(api, monkeypatch):
    first = _issue(api)["cards"][0]
    drawn = iter([first["code"], first["code"], "".join(secrets.choice(CODE_ALPHABET) for _ in range(16))])
    monkeypatch.setattr("referflow.actions.giftcards.new_gift_card_code", lambda: next(drawn))
    goodwill = api.post("/v1/gift-cards", {"advocate_id": first["advocate_id"], "amount": 500})
    assert goodwill.status_code == 201 and goodwill.get_json()["code"] != first["code"]


def test_lists_and_events_show_the_last_four_and_the_sent_event_the_code(app, api):
    issued = _issue(api)
    listed = api.get("/v1/gift-cards").get_json()["items"]
    assert {c["id"]: c["code_last4"] for c in listed} == {c["id"]: c["code"][-4:] for c in issued["cards"]}
    assert all("code" not in c for c in listed)
    events = api.get("/v1/events?type=reward.issued")
    assert events.status_code == 200, events.get_json()
    stored = [e["data"]["gift_card"] for e in events.get_json()["items"]]
    assert stored and all("code" not in c and len(c["code_last4"]) == 4 for c in stored)
    codes = {c["id"]: c["code"] for c in issued["cards"]}
    with app.extensions["referflow"].db.session() as session:
        rows = session.scalars(sa.select(OutboxEvent).where(OutboxEvent.type == "reward.issued")).all()
        sent = [delivered_payload(session, row)["data"]["gift_card"] for row in rows]
    assert {c["id"]: c["code"] for c in sent} == codes  # what a webhook receives


def test_the_dashboard_shows_the_last_four_only(app, api, client):
    issued = _issue(api)
    make_user(app, "owner@example.test", role="owner", program_ids=[api.program_id])
    login(client, "owner@example.test")
    card = issued["cards"][0]
    pages = ["rewards", f"advocates/{card['advocate_id']}", f"referrals/{card['referral_id']}"]
    for page in pages:
        html = text(client.get(f"/dashboard/p/{api.program_id}/{page}"))
        assert f"····</span>{card['code'][-4:]}</code>" in html, page
        assert all(c["code"] not in html for c in issued["cards"]), page


def test_the_advocate_page_shows_the_code(api):
    card = next(c for c in _issue(api)["cards"] if c["side"] == "advocate")
    portal = api.get(f"/v1/advocates/{card['advocate_id']}/portal").get_json()
    assert [c["code"] for c in portal["rewards"]["gift_cards"]] == [card["code"]]


def test_rotation_re_encrypts_the_codes(app, api, settings):
    issued = _issue(api)
    app.extensions["referflow"].db.dispose()
    url = settings.database_url
    before = {k: r["code_encrypted"] for k, r in _raw_cards(url).items()}
    result = CliRunner().invoke(main, ["secrets", "rotate"], env=_env(url, **ROTATING))
    assert result.exit_code == 0, result.output
    assert "gift_cards.code: 2 re-encrypted" in result.output
    after = _raw_cards(url)
    for card in issued["cards"]:
        token = after[card["id"]]["code_encrypted"]
        assert token != before[card["id"]]
        assert Keyring([NEW_KEY]).decrypt("gift_cards.code", token) == card["code"]
        assert after[card["id"]]["code_hash"] == gift_card_code_key(SECRET_KEY, card["code"])  # pinned
    rotated = create_app(Settings.from_env(_env(url, **ROTATING)))
    owner = Api(rotated.test_client(), api.token)
    found = owner.get(f"/v1/gift-cards/{issued['cards'][0]['code'].lower()}")
    assert found.status_code == 200 and found.get_json()["code"] == issued["cards"][0]["code"]
    rotated.extensions["referflow"].db.dispose()


# -- the migration: an existing database at the previous head, with codes in the clear ------------

PREVIOUS_HEAD = "0017"


@pytest.fixture()
def empty_url(tmp_path: Any) -> Iterator[str]:
    """Return the URL of an empty database on the backend under test."""
    base = os.environ.get("TEST_DATABASE_URL", "")
    if not base.startswith("postgres"):
        yield f"sqlite:///{tmp_path / 'before.db'}"
        return
    url, drop = _postgres_database(base.replace("postgresql://", "postgresql+psycopg://", 1))
    yield url
    drop()


def _legacy_rows(url: str, cards: int) -> list[str]:
    """Write a program with ``cards`` gift cards, a ledger reward and its event, as 0017 did."""
    now = datetime.now(UTC)
    codes = ["".join(secrets.choice(CODE_ALPHABET) for _ in range(16)) for _ in range(cards)]
    engine = sa.create_engine(url)
    tables = sa.MetaData()
    tables.reflect(engine, only=["programs", "gift_cards", "gift_card_entries", "rewards",
                                 "outbox"])
    with engine.begin() as conn:
        conn.execute(tables.tables["programs"].insert(), [{
            "id": "prg_legacy", "name": "Legacy", "config": {"landing_url": "https://a.test"},
            "config_version": 1, "created_at": now}])
        conn.execute(tables.tables["gift_cards"].insert(), [{
            "id": f"gc_legacy{i:05d}", "program_id": "prg_legacy", "code": code, "side": "goodwill",
            "amount": 500, "currency": "EUR", "balance": 500, "status": "active",
            "expires_at": now + timedelta(days=30), "created_at": now} for i, code in enumerate(codes)])
        # A ledger entry points at a card: SQLite's rebuild of gift_cards must not trip on it.
        conn.execute(tables.tables["gift_card_entries"].insert(), [{
            "gift_card_id": "gc_legacy00000", "program_id": "prg_legacy", "kind": "issue",
            "amount": 500, "balance_after": 500, "at": now}])
        conn.execute(tables.tables["rewards"].insert(), [{
            "id": "rwd_legacy", "program_id": "prg_legacy", "side": "advocate", "issuer": "ledger",
            "amount": 500, "currency": "EUR", "status": "issued", "attempts": 1,
            "external_id": "gc_legacy00000", "code": codes[0], "created_at": now, "kind": "gift_card"}])
        conn.execute(tables.tables["outbox"].insert(), [{
            "event_id": "evt_legacy", "program_id": "prg_legacy", "type": "reward.issued",
            "payload": {"id": "evt_legacy", "type": "reward.issued", "program_id": "prg_legacy",
                        "data": {"issuer": "ledger", "gift_card": {"id": "gc_legacy00000", "code": codes[0]}}},
            "created_at": now}])
    engine.dispose()
    return codes


def test_migrate_hides_the_codes_of_an_existing_database(empty_url, monkeypatch):
    monkeypatch.setattr("referflow.storage.rekey.BATCH_SIZE", 2)  # the migration walks 3 batches
    upgrade(empty_url, PREVIOUS_HEAD)
    codes = _legacy_rows(empty_url, 5)
    assert codes[0] in _raw_dump(empty_url)  # the starting point really is in the clear

    result = CliRunner().invoke(main, ["migrate"], env=_env(empty_url))
    assert result.exit_code == 0, result.output
    raw = _raw_cards(empty_url)
    assert [(r["code_hash"], r["code_last4"]) for _, r in sorted(raw.items())] == \
        [(gift_card_code_key(SECRET_KEY, c), c[-4:]) for c in codes]
    assert [Keyring([SECRET_KEY]).decrypt("gift_cards.code", r["code_encrypted"])
            for _, r in sorted(raw.items())] == codes
    dump = _raw_dump(empty_url)
    raw_bytes = _sqlite_bytes(empty_url) if empty_url.startswith("sqlite") else b""
    assert all(c not in dump and c.encode() not in raw_bytes for c in codes)

    app = create_app(Settings.from_env(_env(empty_url)))
    with app.extensions["referflow"].db.session() as session:
        card = session.scalar(sa.select(GiftCard).where(GiftCard.code_hash == gift_card_code_key(
            SECRET_KEY, codes[3].lower())))
        assert card is not None and card.code == codes[3]
        event = session.scalar(sa.select(OutboxEvent).where(OutboxEvent.event_id == "evt_legacy"))
        assert event.payload["data"]["gift_card"] == {"id": "gc_legacy00000", "code_last4": codes[0][-4:]}
        assert delivered_payload(session, event)["data"]["gift_card"]["code"] == codes[0]
    app.extensions["referflow"].db.dispose()

    downgrade(empty_url, PREVIOUS_HEAD, secret_keys=[SECRET_KEY])
    engine = sa.create_engine(empty_url)
    with engine.connect() as conn:
        assert list(conn.scalars(sa.text("SELECT code FROM gift_cards ORDER BY id"))) == codes
        assert conn.scalar(sa.text("SELECT code FROM rewards")) == codes[0]
    engine.dispose()


def test_a_migration_that_fails_half_way_leaves_nothing_behind(empty_url, monkeypatch):
    """One transaction, DDL included (SQLite too): the columns 0018 added before it failed are
    gone, the version is still 0017, and the same upgrade succeeds once the cause is fixed."""
    upgrade(empty_url, PREVIOUS_HEAD)
    _legacy_rows(empty_url, 2)

    def broken(_secret: str, _raw: str) -> str:
        raise RuntimeError("the hashing failed")

    monkeypatch.setattr("referflow.domain.codes.gift_card_code_key", broken)
    with pytest.raises(RuntimeError, match="the hashing failed"):
        upgrade(empty_url, secret_keys=[SECRET_KEY], hash_key=SECRET_KEY)
    engine = sa.create_engine(empty_url)
    with engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("gift_cards")}
        assert "code" in columns and not columns & {"code_hash", "code_encrypted", "code_last4"}
        assert conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == PREVIOUS_HEAD
    engine.dispose()
    monkeypatch.undo()
    upgrade(empty_url, secret_keys=[SECRET_KEY], hash_key=SECRET_KEY)
    engine = sa.create_engine(empty_url)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM gift_cards WHERE code_hash IS NOT NULL")) == 2
    engine.dispose()
