"""Reward codes are bearer secrets, as gift-card codes are (tests/test_gift_card_codes.py): a
Shopify discount code, a Stripe promotion code or a card an issuer made is kept as its last four in
stored events, the history (getReferral, the audit export) and listEvents; ``reward.issued`` as
sent (webhooks, Klaviyo) and the advocate page carry the code; migration 0019 masks the codes of
an existing database (SQLite, or PostgreSQL with TEST_DATABASE_URL), and its downgrade puts them
back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from referflow.actions import rewards as rewards_actions
from referflow.actions.events import delivered_payload
from referflow.app import create_app
from referflow.cli import main
from referflow.config import Settings
from referflow.domain.codes import gift_card_code_tail
from referflow.errors import UnreadableSecret
from referflow.jobs.runner import tick
from referflow.storage.crypto import Keyring
from referflow.storage.migrate import downgrade, upgrade
from referflow.storage.models import OutboxEvent, Reward
from tests import test_gift_card_codes as gift_cards
from tests.conftest import PROGRAM_CONFIG, SECRET_KEY, make_program
from tests.dashboard_helpers import login, make_user, text
from tests.fakes.klaviyo import API_KEY as KLAVIYO_KEY
from tests.fakes.klaviyo import FakeKlaviyo
from tests.fakes.shopify import SHOP, TOKEN, FakeShopify
from tests.fakes.stripe import API_KEY, FakeStripe
from tests.helpers import claim, link, qualify
from tests.portal.helpers import path_of
from tests.receiver import Receiver
from tests.test_secrets import _assert_nowhere, _raw_dump

empty_url = gift_cards.empty_url  # an empty database on the backend under test
ANN, BOB = "ann@example.com", "bob@example.com"


@pytest.fixture()
def fakes() -> Iterator[tuple[FakeShopify, FakeStripe, FakeKlaviyo, Receiver]]:
    with FakeShopify() as shopify, FakeStripe() as stripe, FakeKlaviyo() as klaviyo, \
            Receiver() as receiver:
        yield shopify, stripe, klaviyo, receiver


@pytest.fixture()
def app(settings, fakes):
    shopify, stripe, klaviyo, _ = fakes
    application = create_app(settings.with_overrides(
        shopify_api_base=shopify.base, stripe_api_base=stripe.base, klaviyo_api_base=klaviyo.base))
    yield application
    application.extensions["referflow"].db.dispose()


def _program(app, receiver: Receiver, advocate: dict[str, Any], friend: dict[str, Any] | None = None,
             **config: Any):
    """A program whose rewards are ``advocate`` and ``friend``, a webhook to ``receiver`` and
    Klaviyo e-mails."""
    api = make_program(app.test_client(), {
        **PROGRAM_CONFIG, "hold_days": 0, "messaging": {"max_messages_per_week": 10}, **config,
        "rewards": {"advocate": advocate, "friend": friend or {"type": "none"}}})
    for provider, credentials in (("stripe", {"api_key": API_KEY}), ("klaviyo", {"api_key": KLAVIYO_KEY}),
                                  ("shopify", {"shop": SHOP, "access_token": TOKEN})):
        assert api.put(f"/v1/providers/{provider}", {"credentials": credentials}).status_code == 200
    assert api.post("/v1/webhooks", {"url": receiver.url, "events": ["*"]}).status_code == 201
    return api


def _approve(api) -> str:
    code = link(api, external_id="cus_AdvocateAnn", email=ANN)["code"]
    referral = claim(api, code, friend_id="cus_FriendBob", email=BOB)
    assert qualify(api, referral["id"])["status"] in ("approved", "rewarded")  # a perk: at once
    return str(referral["id"])


def _run(app, times: int = 3) -> None:
    services = app.extensions["referflow"]
    for _ in range(times):
        tick(services, services.queue)


def _codes(app) -> dict[str, str]:
    """The codes the rewards were issued with, by side (read through the encrypted column)."""
    with app.extensions["referflow"].db.session() as s:
        rows = s.scalars(sa.select(Reward).where(Reward.code.is_not(None)))
        return {r.side: r.code for r in rows}


def _json(value: Any) -> Any:
    """A JSON column's value as read raw: decoded by the driver (PostgreSQL) or text (SQLite)."""
    return json.loads(value) if isinstance(value, str) else value


def _raw(url: str, sql: str) -> list[Any]:
    """JSON values as the database holds them, read without referflow's models."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        values = [_json(v) for v in conn.scalars(sa.text(sql))]
    engine.dispose()
    return values


def _nowhere(app, url: str, codes: list[str]) -> None:
    """No table (and no byte of a SQLite file) holds one of ``codes``."""
    app.extensions["referflow"].db.dispose()
    _assert_nowhere(url, codes)


def _kept(reward: dict[str, Any], code: str | None) -> None:
    """A reward as stored events and the history keep it: the code's last four, never the code."""
    assert "code" not in reward and reward["code_last4"] == (code and gift_card_code_tail(code))


def _sent(app) -> list[dict[str, Any]]:
    """Every reward.issued as a webhook or an e-mail tool gets it."""
    with app.extensions["referflow"].db.session() as s:
        rows = s.scalars(sa.select(OutboxEvent).where(OutboxEvent.type == "reward.issued")
                         .order_by(OutboxEvent.id))
        return [delivered_payload(s, row) for row in rows]


def test_discount_codes_are_kept_as_their_last_four_and_sent_whole(app, fakes, settings, client):
    _, _, klaviyo, receiver = fakes
    api = _program(app, receiver, {"type": "amount", "amount": 1500, "provider": "stripe"},
                   {"type": "percent", "percent": 10, "provider": "shopify"})
    referral_id = _approve(api)
    _run(app)
    codes = _codes(app)
    assert set(codes) == {"advocate", "friend"} and codes["advocate"] != codes["friend"]
    assert api.get(f"/v1/referrals/{referral_id}").get_json()["status"] == "rewarded"

    # as sent: the webhook and Klaviyo get each code whole
    schemas = app.extensions["referflow"].schemas
    delivered = [e for e in receiver.events() if e["type"] == "reward.issued"]
    for event in delivered:
        schemas.validate("event.reward.issued", event)
    assert {e["data"]["reward"]["side"]: e["data"]["reward"]["code"] for e in delivered} == codes
    assert all(e["data"]["reward"]["code_last4"] == e["data"]["reward"]["code"][-4:] for e in delivered)
    emails = {e["email"]: e["properties"]["code"] for e in klaviyo.events if e["metric"] == "Reward Issued"}
    assert emails == {ANN: codes["advocate"], BOB: codes["friend"]}

    # listEvents, the history and the audit export: the last four
    listed = api.get("/v1/events?type=reward.issued").get_json()["items"]
    for event in listed:
        schemas.validate("event.reward.issued", event)
        _kept(event["data"]["reward"], codes[event["data"]["reward"]["side"]])
    (rewarded,) = [h for h in api.get(f"/v1/referrals/{referral_id}").get_json()["history"]
                   if h["action"] == "rewarded"]
    for reward in rewarded["data"]["rewards"]:
        _kept(reward, codes[reward["side"]])
    audit = api.get("/v1/audit/export?format=jsonl").get_data(as_text=True)
    assert "code_last4" in audit and not any(code in audit for code in codes.values())

    # the advocate page shows the advocate their own code
    advocate = api.get("/v1/advocates/by-external-id/cus_AdvocateAnn").get_json()
    portal = api.get(f"/v1/advocates/{advocate['id']}/portal").get_json()
    assert [r["code"] for r in portal["rewards"]["issued"]] == [codes["advocate"]]
    page = api.client.get(path_of(advocate["portal_url"]))
    assert page.status_code == 200 and codes["advocate"] in page.get_data(as_text=True)

    # the dashboard does not show them
    make_user(app, "owner@example.test", role="owner", program_ids=[api.program_id])
    login(client, "owner@example.test")
    for shown in ("rewards", f"advocates/{advocate['id']}", f"referrals/{referral_id}"):
        html = text(client.get(f"/dashboard/p/{api.program_id}/{shown}"))
        assert "Referral" in html and not any(code in html for code in codes.values()), shown

    # the database: the outbox and the history, read raw, and every table and byte
    url = settings.database_url
    stored = _raw(url, "SELECT payload FROM outbox WHERE type = 'reward.issued'")
    assert len(stored) == 2
    for payload in stored:
        _kept(payload["data"]["reward"], codes[payload["data"]["reward"]["side"]])
    (entry,) = _raw(url, "SELECT data FROM referral_history WHERE action = 'rewarded'")
    for reward in entry["rewards"]:
        _kept(reward, codes[reward["side"]])
    _nowhere(app, url, list(codes.values()))


@pytest.mark.parametrize("issuer", ["stripe_promotion_code", "shopify_gift_card", "ledger"])
def test_the_codes_of_the_card_issuers_are_kept_as_their_last_four(app, fakes, settings, issuer):
    api = _program(app, fakes[3], {"type": "gift_card", "amount": 2500},
                   {"type": "gift_card", "amount": 1000},
                   fulfilment={"issuer": issuer, "auto_issue": True})
    referral_id = _approve(api)
    _run(app)
    codes = _codes(app)
    assert set(codes) == {"advocate", "friend"}
    assert api.get(f"/v1/referrals/{referral_id}").get_json()["status"] == "rewarded"
    sent = _sent(app)
    held = [e["data"].get("reward") or e["data"]["gift_card"] for e in sent]
    assert {h["side"]: h["code"] for h in held} == codes
    _nowhere(app, settings.database_url, list(codes.values()))


def test_a_reward_without_a_code_is_sent_with_a_null_code(app, fakes):
    api = _program(app, fakes[3], {"type": "non_cash", "perk": "VIP support for a year"})
    _approve(api)
    _run(app)
    (listed,) = api.get("/v1/events?type=reward.issued").get_json()["items"]
    _kept(listed["data"]["reward"], None)
    (sent,) = _sent(app)
    assert sent["data"]["reward"]["code"] is None and sent["data"]["reward"]["code_last4"] is None
    app.extensions["referflow"].schemas.validate("event.reward.issued", sent)
    (received,) = [e for e in fakes[3].events() if e["type"] == "reward.issued"]
    assert received == sent


def test_an_issue_replayed_after_a_lost_answer_keeps_the_code_out(app, fakes, settings):
    shopify, receiver = fakes[0], fakes[3]
    api = _program(app, receiver, {"type": "amount", "amount": 500, "provider": "shopify"})
    _approve(api)
    _run(app)
    with app.extensions["referflow"].db.session() as s:  # the issuer's answer was lost: due again
        s.execute(sa.update(Reward).values(status="pending",
                                           next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
        s.commit()
    _run(app)
    (code,) = _codes(app).values()
    assert len(shopify.discounts) == 1  # the store's lookup found it: made once
    for payload in _raw(settings.database_url, "SELECT payload FROM outbox WHERE type = 'reward.issued'"):
        _kept(payload["data"]["reward"], code)
    assert {e["data"]["reward"]["code"] for e in _sent(app)} == {code}
    delivered = [e for e in receiver.events() if e["type"] == "reward.issued"]
    assert delivered and {e["data"]["reward"]["code"] for e in delivered} == {code}
    _nowhere(app, settings.database_url, [code])


def test_a_code_taken_back_is_kept_as_its_last_four(app, fakes, settings):
    receiver = fakes[3]
    api = _program(app, receiver, {"type": "percent", "percent": 10, "provider": "shopify"})
    referral_id = _approve(api)
    _run(app)
    (code,) = _codes(app).values()
    response = api.post(f"/v1/referrals/{referral_id}/reverse", {"reason": "chargeback"})
    assert response.status_code == 200, response.get_json()
    _run(app)
    (voided,) = api.get("/v1/events?type=reward.voided").get_json()["items"]
    app.extensions["referflow"].schemas.validate("event.reward.voided", voided)
    _kept(voided["data"]["reward"], code)
    (sent,) = [e for e in receiver.events() if e["type"] == "reward.voided"]
    _kept(sent["data"]["reward"], code)  # taking a code back does not hand it out
    (entry,) = _raw(settings.database_url,
                    "SELECT data FROM referral_history WHERE action = 'reward_voided'")
    _kept(entry["reward"], code)
    _nowhere(app, settings.database_url, [code])


# -- the migration: a database at 0018, with reward codes in its events and history --------------

PREVIOUS_HEAD = "0018"


def _reward(reward_id: str, code: str | None, side: str = "advocate") -> dict[str, Any]:
    """A reward as 0018's code dumped it into events and the history."""
    return {"id": reward_id, "referral_id": "ref_legacy", "side": side, "issuer": "shopify_discount_code",
            "kind": "percent", "amount": 0, "currency": "EUR", "external_id": f"gid://{reward_id}",
            "code": code, "details": {"provider": "shopify", "percent": 10}, "expires_at": None}


def _legacy_rows(url: str, codes: list[str]) -> None:
    """A program with a referral whose rewards' codes are in its events and history, as 0018 kept
    them (the rewards' own column encrypted), beside rows the migration must leave alone."""
    now = datetime.now(UTC)
    keyring = Keyring([SECRET_KEY])
    engine = sa.create_engine(url)
    tables = sa.MetaData()
    tables.reflect(engine, only=["programs", "advocates", "referrals", "referral_history",
                                 "rewards", "outbox"])
    t = tables.tables

    def event(n: int, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"event_id": f"evt_legacy{n}", "program_id": "prg_legacy", "type": kind, "created_at": now,
                "payload": {"id": f"evt_legacy{n}", "type": kind, "program_id": "prg_legacy", "data": data}}

    def entry(action: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"referral_id": "ref_legacy", "program_id": "prg_legacy", "at": now, "action": action,
                "actor_type": "system", "actor_id": None, "from_status": "approved",
                "to_status": "rewarded", "reasons": [], "data": data, "config_version": 1}

    ledger_paid = {"id": "gc_legacy", "side": "friend", "issuer": "ledger", "amount": 1000,
                   "currency": "EUR", "external_id": "gc_legacy"}
    with engine.begin() as conn:
        conn.execute(t["programs"].insert(), [{
            "id": "prg_legacy", "name": "Legacy", "config": {"landing_url": "https://a.test"},
            "config_version": 1, "created_at": now}])
        conn.execute(t["advocates"].insert(), [{
            "id": "adv_legacy", "program_id": "prg_legacy", "external_id": "cus_Ann",
            "flagged": False, "created_at": now}])
        conn.execute(t["referrals"].insert(), [{
            "id": "ref_legacy", "program_id": "prg_legacy", "advocate_id": "adv_legacy",
            "code": "ANNCODE1", "friend_external_id": "cus_Bob", "status": "rewarded", "reasons": [],
            "created_at": now, "updated_at": now, "version": 1}])
        conn.execute(t["rewards"].insert(), [{
            "id": f"rwd_legacy{i}", "program_id": "prg_legacy", "referral_id": "ref_legacy",
            "side": f"side{i}", "issuer": "shopify_discount_code", "amount": 0, "currency": "EUR",
            "status": "issued", "attempts": 1, "external_id": f"gid://rwd_legacy{i}",
            "code": keyring.encrypt("rewards.code", code), "created_at": now, "kind": "percent"}
            for i, code in enumerate(codes)])
        conn.execute(t["outbox"].insert(), [
            *(event(i, "reward.issued", {"issuer": "shopify_discount_code",
                                          "reward": _reward(f"rwd_legacy{i}", code)})
              for i, code in enumerate(codes)),
            event(90, "reward.issued", {"issuer": "perk", "reward": _reward("rwd_perk", None),
                                        "perk": "VIP"}),
            event(91, "reward.voided", {"reward": _reward("rwd_legacy1", codes[1]), "outcome": "disabled"}),
            event(92, "reward.issued", {"issuer": "ledger",
                                        "gift_card": {"id": "gc_legacy", "code_last4": "WXYZ"}}),
            event(93, "referral.claimed", {"referral": {"id": "ref_legacy", "code": "ANNCODE1"}})])
        conn.execute(t["referral_history"].insert(), [
            entry("claimed", {"code": "ANNCODE1"}),
            entry("rewarded", {"rewards": [_reward("rwd_legacy0", codes[0]), ledger_paid],
                               "non_cash": {}}),
            entry("rewarded", {"rewards": [ledger_paid, _reward("rwd_legacy2", codes[2], "friend")],
                               "non_cash": {}}),
            entry("reward_voided", {"reward": _reward("rwd_legacy1", codes[1]), "outcome": "disabled"})])
    engine.dispose()


def _events_and_history(url: str) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """The events' payloads by event id and the history entries' data, in order, read raw."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        events = {row.event_id: row.payload for row in conn.execute(
            sa.text("SELECT event_id, payload FROM outbox ORDER BY id"))}
        history = list(conn.scalars(sa.text("SELECT data FROM referral_history ORDER BY id")))
    engine.dispose()
    return {k: _json(v) for k, v in events.items()}, [_json(v) for v in history]


def test_migrate_masks_the_reward_codes_of_an_existing_database(empty_url, monkeypatch):
    monkeypatch.setattr("referflow.storage.rekey.BATCH_SIZE", 2)  # several batches per table
    upgrade(empty_url, PREVIOUS_HEAD)
    codes = ["A1B2C3D4E5F6G7H8", "Q9R8S7T6U5V4W3X2", "ZYXW98765432MNPQ"]
    _legacy_rows(empty_url, codes)
    before = _events_and_history(empty_url)
    assert codes[0] in _raw_dump(empty_url)  # the starting point really holds them in the clear

    result = CliRunner().invoke(main, ["migrate"], env=gift_cards._env(empty_url))
    assert result.exit_code == 0, result.output
    events, history = _events_and_history(empty_url)
    for i, code in enumerate(codes):
        _kept(events[f"evt_legacy{i}"]["data"]["reward"], code)
    _kept(events["evt_legacy90"]["data"]["reward"], None)  # a perk: no code, the same shape
    _kept(events["evt_legacy91"]["data"]["reward"], codes[1])
    for untouched in ("evt_legacy92", "evt_legacy93"):
        assert events[untouched] == before[0][untouched]
    claimed, first, second, voided = history
    assert claimed == {"code": "ANNCODE1"}  # a referral code: not a reward's
    _kept(first["rewards"][0], codes[0])
    _kept(second["rewards"][1], codes[2])
    assert first["rewards"][1] == second["rewards"][0] == before[1][1]["rewards"][1]  # no code key
    _kept(voided["reward"], codes[1])
    assert list(events["evt_legacy0"]["data"]["reward"]) == list(_reward("x", None))[:8] + \
        ["code_last4", "details", "expires_at"]  # the tail takes the code's place
    _assert_nowhere(empty_url, codes)  # the SQLite file's free pages too: VACUUMed

    app = create_app(Settings.from_env(gift_cards._env(empty_url)))
    with app.extensions["referflow"].db.session() as session:
        row = session.scalar(sa.select(OutboxEvent).where(OutboxEvent.event_id == "evt_legacy2"))
        sent = delivered_payload(session, row)["data"]["reward"]
        assert (sent["code"], sent["code_last4"]) == (codes[2], codes[2][-4:])
    app.extensions["referflow"].db.dispose()

    downgrade(empty_url, PREVIOUS_HEAD, secret_keys=[SECRET_KEY])
    assert _events_and_history(empty_url) == before  # the codes back where 0018 kept them


def _version(url: str) -> str:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        version = str(conn.scalar(sa.text("SELECT version_num FROM alembic_version")))
    engine.dispose()
    return version


def test_the_way_up_needs_no_key_and_the_way_down_without_it_changes_nothing(empty_url):
    upgrade(empty_url, PREVIOUS_HEAD)
    _legacy_rows(empty_url, ["A1B2C3D4E5F6G7H8", "Q9R8S7T6U5V4W3X2", "ZYXW98765432MNPQ"])
    upgrade(empty_url, secret_keys=["not-the-key"])  # masking decrypts nothing
    downgrade(empty_url, "0019")  # the later revisions (SQLite commits each one on its own)
    masked = _events_and_history(empty_url)
    with pytest.raises(UnreadableSecret, match="rewards.code cannot be decrypted"):
        downgrade(empty_url, PREVIOUS_HEAD, secret_keys=["not-the-key"])
    # one transaction: nothing half put back, still at 0019
    assert (_events_and_history(empty_url), _version(empty_url)) == (masked, "0019")


def test_the_advocate_page_lists_a_percent_code_it_earned(app, fakes):
    """A percent off has no amount to show: the list's ``amount`` is the row's 0 (it answered
    422 under response validation, ``amount`` null, when the shown kind overwrote it)."""
    receiver = fakes[3]
    api = _program(app, receiver, {"type": "percent", "percent": 10, "provider": "shopify"})
    _approve(api)
    _run(app)
    (code,) = _codes(app).values()
    advocate = api.get("/v1/advocates/by-external-id/cus_AdvocateAnn").get_json()
    answer = api.get(f"/v1/advocates/{advocate['id']}/portal")
    assert answer.status_code == 200, answer.get_json()
    (issued,) = answer.get_json()["rewards"]["issued"]
    assert (issued["kind"], issued["percent"], issued["amount"]) == ("percent", 10, 0)
    assert issued["code"] == code and issued["label"] == "10% off"


def test_a_refusal_naming_the_code_is_kept_with_its_last_four(app, fakes, settings):
    """The shop already has its own discount with our code: the reward fails, and neither its
    stored error nor reward.failed (stored and sent) holds the code, a live discount of the shop."""
    shopify, receiver = fakes[0], fakes[3]
    api = _program(app, receiver, {"type": "percent", "percent": 10, "provider": "shopify"})
    referral_id = _approve(api)
    services = app.extensions["referflow"]
    with services.db.session() as s:
        reward = s.scalars(sa.select(Reward).where(Reward.referral_id == referral_id)).one()
        code = rewards_actions._code_request(services, reward).code
    shopify.discounts[code.lower()] = {"id": "gid://shopify/DiscountCodeNode/77", "title": "Summer",
                                       "status": "ACTIVE", "asyncUsageCount": 3, "input": {}}
    _run(app)
    with services.db.session() as s:
        failed = s.scalars(sa.select(Reward).where(Reward.referral_id == referral_id)).one()
    assert failed.status == "failed" and f"····{gift_card_code_tail(code)}" in failed.last_error
    (event,) = api.get("/v1/events?type=reward.failed").get_json()["items"]
    (sent,) = [e for e in receiver.events() if e["type"] == "reward.failed"]
    assert "TAKEN" in event["data"]["reason"] and sent["data"]["reason"] == event["data"]["reason"]
    _nowhere(app, settings.database_url, [code, code.lower()])
    assert code not in json.dumps(sent)
