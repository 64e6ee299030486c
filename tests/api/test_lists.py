"""The lists: referrals (filters, search, keyset pages), advocates (the leaderboard), gift cards."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, event, select, text, update

from referflow.actions import lists
from referflow.actions.common import load_program
from referflow.errors import BadRequest
from referflow.storage.migrate import upgrade
from referflow.storage.models import Advocate, GiftCard, Referral, ReferralSignal, reason_codes
from tests.conftest import PROGRAM_CONFIG, SECRET_KEY, make_program, unique
from tests.helpers import claim, iso, link, qualify

MONTH_AGO = datetime.now(UTC) - timedelta(days=30)


def _approve(api, code, **claim_args):
    referral = claim(api, code, **claim_args)
    qualify(api, referral["id"], at=MONTH_AGO)  # the hold has passed: approved at once
    return referral


def _click(client, code, channel=None):
    location = client.get(f"/r/{code}" + (f"?ch={channel}" if channel else "")).headers["Location"]
    return location.split("click_id=")[1]


def _claim_by_click(api, click_id, friend_id=None, email=None):
    friend_id = friend_id or unique("friend")
    response = api.post("/v1/referrals/claim", {"click_id": click_id, "friend": {
        "external_id": friend_id, "email": email or f"{friend_id}@mail.test"}})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _get(api, path, expect=200):
    response = api.get(path)
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def _all(api, path, limit):
    """Page through a list to its end; return the pages' ids."""
    pages, after = [], None
    sep = "&" if "?" in path else "?"
    while True:
        body = _get(api, f"{path}{sep}limit={limit}" + (f"&after={after}" if after else ""))
        pages.append([item["id"] for item in body["items"]])
        after = body["next_cursor"]
        if after is None:
            return pages


def _ids(api, path):
    return [item["id"] for item in _get(api, path)["items"]]


# -- referrals --------------------------------------------------------------------------------

def test_referrals_are_listed_newest_first_and_paged_to_the_end(api):
    code = link(api)["code"]
    made = [claim(api, code)["id"] for _ in range(5)]
    pages = _all(api, "/v1/referrals", 2)
    assert pages == [made[::-1][:2], made[::-1][2:4], made[::-1][4:]]
    assert _all(api, "/v1/referrals", 5) == [made[::-1]]  # an exact fit has no empty last page


def test_a_page_is_stable_when_referrals_arrive_between_pages(api):
    code = link(api)["code"]
    made = [claim(api, code)["id"] for _ in range(4)]
    first = _get(api, "/v1/referrals?limit=2")
    newer = [claim(api, code)["id"] for _ in range(3)]
    second = _get(api, f"/v1/referrals?limit=2&after={first['next_cursor']}")
    assert [r["id"] for r in first["items"]] == [made[3], made[2]]
    assert [r["id"] for r in second["items"]] == [made[1], made[0]]  # none repeated or shifted
    assert second["next_cursor"] is None
    assert _ids(api, "/v1/referrals")[:3] == newer[::-1]


def test_referrals_filter_by_status_advocate_and_channel(api, client):
    first, second = link(api)["code"], link(api)
    pending = claim(api, first)
    approved = _approve(api, first)
    by_email = _claim_by_click(api, _click(client, second["code"], "email"))
    by_twitter = _claim_by_click(api, _click(client, second["code"], "twitter"))
    no_channel = _claim_by_click(api, _click(client, second["code"]))
    assert _ids(api, "/v1/referrals?status=approved") == [approved["id"]]
    claimed = [pending, by_email, by_twitter, no_channel]  # clicks from one address: some in review
    for status in ("pending", "in_review"):
        expected = [r["id"] for r in claimed[::-1] if r["status"] == status]
        assert _ids(api, f"/v1/referrals?status={status}") == expected
    assert pending["status"] == "pending"
    assert _ids(api, "/v1/referrals?status=reversed") == []
    assert _ids(api, f"/v1/referrals?advocate_id={second['advocate_id']}") == [
        no_channel["id"], by_twitter["id"], by_email["id"]]
    assert _ids(api, "/v1/referrals?channel=email") == [by_email["id"]]
    assert _ids(api, "/v1/referrals?channel=email&status=approved") == []
    assert _ids(api, f"/v1/referrals?channel=twitter&advocate_id={second['advocate_id']}") == [
        by_twitter["id"]]


def test_referrals_filter_by_reason_code_including_reasons_added_later(api):
    code = link(api, email="jane.doe@gmail.com")["code"]
    selfish = claim(api, code, email="JaneDoe@gmail.com")  # self-referral by normalised email
    assert selfish["status"] == "rejected"
    signal = selfish["reasons"][0]["code"]
    honest = _approve(api, code)
    assert _ids(api, f"/v1/referrals?reason={signal}") == [selfish["id"]]
    assert _ids(api, "/v1/referrals?reason=no_such_code") == []
    reversed_ = api.post(f"/v1/referrals/{honest['id']}/reverse", {"reason": "chargeback"}).get_json()
    added = reversed_["reasons"][-1]["code"]
    assert _ids(api, f"/v1/referrals?reason={added}") == [honest["id"]]
    assert _ids(api, f"/v1/referrals?reason={added}&status=approved") == []


def test_the_signals_table_holds_exactly_the_codes_of_every_referral(app, api):
    code = link(api, email="jane.doe@gmail.com")["code"]
    claim(api, code, email="janedoe@gmail.com")
    honest = _approve(api, code)
    api.post(f"/v1/referrals/{honest['id']}/reverse", {"reason": "chargeback"})
    with app.extensions["referflow"].db.session() as session:
        referrals = session.scalars(select(Referral)).all()
        signals = session.execute(select(ReferralSignal.referral_id, ReferralSignal.code,
                                         ReferralSignal.program_id)).all()
        assert sorted(signals) == sorted((r.id, c, r.program_id) for r in referrals
                                         for c in reason_codes(r.reasons))
        assert len(signals) >= 2


def test_referrals_filter_by_creation_time_from_inclusive_to_exclusive(api):
    code = link(api)["code"]
    made = [claim(api, code) for _ in range(3)]
    middle = quote(made[1]["created_at"])
    assert _ids(api, f"/v1/referrals?created_from={middle}") == [made[2]["id"], made[1]["id"]]
    assert _ids(api, f"/v1/referrals?created_to={middle}") == [made[0]["id"]]
    assert _ids(api, f"/v1/referrals?created_from={middle}&created_to={middle}") == []
    # Another offset, the same instant
    later = datetime.fromisoformat(made[2]["created_at"]).astimezone(ZoneInfo("Asia/Kolkata"))
    assert _ids(api, f"/v1/referrals?created_from={quote(later.isoformat())}") == [made[2]["id"]]


@pytest.mark.parametrize("typed", ["Ann.Lee+shop@GoogleMail.com", "  ann.lee@gmail.com ",
                                   "ANNLEE@gmail.com"])
def test_q_finds_a_friend_by_email_in_another_case_and_spacing(api, typed):
    code = link(api)["code"]
    ann = claim(api, code, friend_id="cus_ann", email="annlee@gmail.com")
    claim(api, code, friend_id="cus_bob", email="bob@example.test")
    assert _ids(api, f"/v1/referrals?q={quote(typed)}") == [ann["id"]]
    assert _ids(api, "/v1/referrals?q=cus_ann") == [ann["id"]]
    assert _ids(api, "/v1/referrals?q=cus_nobody") == []
    assert _ids(api, "/v1/referrals?q=CUS_ANN") == []  # external ids are exact


def test_count_referrals_agrees_with_the_list(app, api, client):
    code = link(api)["code"]
    for _ in range(3):
        claim(api, code)
    _approve(api, code)
    _claim_by_click(api, _click(client, code, "email"))
    with app.extensions["referflow"].db.session() as session:
        ctx = load_program(session, api.program_id, SECRET_KEY)
        for filters in (lists.ReferralFilters(), lists.ReferralFilters(status="pending"),
                        lists.ReferralFilters(channel="email"),
                        lists.ReferralFilters(status="approved", channel="email")):
            listed = lists.list_referrals(session, ctx, filters, limit=200)
            assert lists.count_referrals(session, ctx, filters) == len(listed.items)
        assert lists.count_referrals(session, ctx, lists.ReferralFilters()) == 5


# -- tenancy and empty programs -----------------------------------------------------------------

def test_rows_of_another_program_are_never_listed(api, client):
    mine = link(api)
    my_referral = claim(api, mine["code"], friend_id="cus_shared")
    other = make_program(client, name="Other")
    theirs = link(other)
    their_referral = _approve(other, theirs["code"], friend_id="cus_theirs")
    claim(other, theirs["code"], friend_id="cus_shared")  # the same friend id, in their program
    other.post("/v1/gift-cards", {"referral_id": their_referral["id"]})
    assert _ids(api, "/v1/referrals") == [my_referral["id"]]
    assert _ids(api, "/v1/referrals?q=cus_shared") == [my_referral["id"]]
    assert _ids(api, f"/v1/referrals?advocate_id={theirs['advocate_id']}") == []
    assert _ids(api, "/v1/referrals?q=cus_theirs") == []
    assert _ids(api, "/v1/advocates") == [mine["advocate_id"]]
    assert _ids(api, "/v1/advocates?q=" + quote(theirs["advocate_id"])) == []
    assert _ids(api, "/v1/gift-cards") == []
    # A cursor is a position, never a program: theirs, given to my list, shows only my rows.
    cursor = _get(other, "/v1/referrals?limit=1")["next_cursor"]
    assert _ids(api, f"/v1/referrals?after={cursor}") == [my_referral["id"]]
    assert len(_ids(other, "/v1/referrals")) == 2


@pytest.mark.parametrize("path", ["/v1/referrals", "/v1/referrals?status=approved&q=x@y.test",
                                  "/v1/advocates", "/v1/advocates?sort=approved",
                                  "/v1/advocates?sort=clicks&tier=gold", "/v1/gift-cards",
                                  "/v1/gift-cards?status=expired"])
def test_an_empty_program_lists_nothing(api, path):
    assert _get(api, path) == {"items": [], "next_cursor": None}


# -- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("query", "code"), [
    ("status=bogus", "invalid_query"),
    ("status=Pending", "invalid_query"),
    ("status=", "invalid_query"),
    ("channel=Email", "invalid_query"),
    ("channel=" + "x" * 41, "invalid_query"),
    ("reason=same%20ip", "invalid_query"),
    ("reason=" + "x" * 65, "invalid_query"),
    ("advocate_id=", "invalid_query"),
    ("advocate_id=" + "a" * 65, "invalid_query"),
    ("created_from=2026-01-01T00:00:00", "invalid_query"),  # no offset
    ("created_from=yesterday", "invalid_query"),
    ("created_to=2026-02-30T00:00:00Z", "invalid_query"),
    ("created_from=2026-02-01T00:00:00Z&created_to=2026-01-01T00:00:00Z", "invalid_query"),
    ("q=", "invalid_query"),
    ("q=%20%20", "invalid_query"),
    ("q=" + "a" * 321, "invalid_query"),
    ("limit=0", "invalid_query"),
    ("limit=201", "invalid_query"),
    ("limit=%EF%BC%91", "invalid_query"),  # a fullwidth digit
    ("after=not-a-cursor", "invalid_cursor"),
    ("after=%F0%9F%98%80", "invalid_cursor"),
    ("after=WyJyZWZlcnJhbHMiLDEsImEiXQ", "invalid_cursor"),  # ["referrals",1,"a"]
    ("after=WyJnaWZ0X2NhcmRzIiwiMjAyNi0wMS0wMVQwMDowMDowMFoiLCJhIl0", "invalid_cursor"),  # a card's
    ("after=eyJhIjoxfQ", "invalid_cursor"),  # {"a":1}
])
def test_bad_referral_list_parameters_are_400(api, query, code):
    body = _get(api, f"/v1/referrals?{query}", expect=400)
    assert body["code"] == code


@pytest.mark.parametrize(("path", "code"), [
    ("/v1/advocates?sort=best", "invalid_query"),
    ("/v1/advocates?tier=" + "t" * 41, "invalid_query"),
    ("/v1/advocates?q=", "invalid_query"),
    ("/v1/advocates?limit=500", "invalid_query"),
    ("/v1/advocates?after=WyJhZHZvY2F0ZXMuYXBwcm92ZWQiLDMsImFkdl94Il0&sort=clicks",  # approved's
     "invalid_cursor"),
    ("/v1/advocates?sort=approved&after=WyJhZHZvY2F0ZXMuYXBwcm92ZWQiLC0xLCJhZHZfeCJd",  # count -1
     "invalid_cursor"),
    ("/v1/advocates?sort=approved&after=WyJhZHZvY2F0ZXMuYXBwcm92ZWQiLHRydWUsImFkdl94Il0",  # true
     "invalid_cursor"),
    ("/v1/gift-cards?status=spent", "invalid_query"),
    ("/v1/gift-cards?side=both", "invalid_query"),
    ("/v1/gift-cards?expiring_before=soon", "invalid_query"),
    ("/v1/gift-cards?after=WyJyZWZlcnJhbHMiLCIyMDI2LTAxLTAxVDAwOjAwOjAwWiIsImEiXQ",  # a referral's
     "invalid_cursor"),
])
def test_bad_advocate_and_gift_card_list_parameters_are_400(api, path, code):
    assert _get(api, path, expect=400)["code"] == code


def test_the_actions_refuse_bad_filters_as_the_api_does(app, api):
    with pytest.raises(BadRequest) as caught:
        lists.ReferralFilters(status="done")
    assert caught.value.code == "invalid_query" and caught.value.errors[0]["path"] == "status"
    with app.extensions["referflow"].db.session() as session:
        ctx = load_program(session, api.program_id, SECRET_KEY)
        for call in (lambda: lists.list_referrals(session, ctx, lists.ReferralFilters(), limit=0),
                     lambda: lists.list_advocates(session, ctx, sort="loudest"),
                     lambda: lists.list_gift_cards(session, ctx, side="nobody")):
            with pytest.raises(BadRequest, match="invalid|limit|sort|side"):
                call()


# -- advocates and the leaderboard ---------------------------------------------------------------

def _leaderboard(api, client):
    """Ann: 3 approved, 1 click. Bob: 1 approved + 1 pending, 3 clicks. Cy: nothing. Newest: Cy."""
    ann = link(api, "cus_ann", "Ann.Lee@example.test")
    bob = link(api, "cus_bob")
    cy = link(api, "cus_cy")
    for _ in range(3):
        _approve(api, ann["code"])
    _click(client, ann["code"])
    _approve(api, bob["code"])
    claim(api, bob["code"])
    for _ in range(3):
        _click(client, bob["code"], "email")
    return ann["advocate_id"], bob["advocate_id"], cy["advocate_id"]


def test_the_leaderboard_sorts_by_approved_referrals_or_clicks(api, client):
    ann, bob, cy = _leaderboard(api, client)
    assert _ids(api, "/v1/advocates?sort=approved") == [ann, bob, cy]
    assert _ids(api, "/v1/advocates?sort=clicks") == [bob, ann, cy]
    assert _ids(api, "/v1/advocates") == [cy, bob, ann]  # recent, the default
    assert _ids(api, "/v1/advocates?sort=recent") == [cy, bob, ann]
    assert _all(api, "/v1/advocates?sort=approved", 1) == [[ann], [bob], [cy]]
    assert _all(api, "/v1/advocates?sort=clicks", 2) == [[bob, ann], [cy]]


def test_advocate_items_are_the_advocate_payload_with_the_counts_of_get_advocate(api, client):
    _leaderboard(api, client)
    items = _get(api, "/v1/advocates?sort=approved")["items"]
    for item in items:
        got = _get(api, f"/v1/advocates/{item['id']}")
        for key in ("external_id", "email", "name", "stats", "tier", "flagged", "events",
                    "created_at"):
            assert item[key] == got[key], key
        assert [c["code"] for c in item["codes"]] == [c["code"] for c in got["codes"]]
    ann = items[0]
    assert (ann["stats"]["referrals"], ann["stats"]["approved"], ann["stats"]["clicks"]) == (3, 3, 1)
    bob = items[1]
    assert (bob["stats"]["referrals"], bob["stats"]["approved"], bob["stats"]["clicks"]) == (2, 1, 3)


def _queries(app, fn):
    """Run fn; return how many SQL statements it sent (the API key's last use, written at most
    once a minute, and transaction statements aside)."""
    sent = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if "api_keys" not in statement and statement.split()[0].upper() in ("SELECT", "INSERT",
                                                                             "UPDATE", "DELETE"):
            sent.append(statement)

    engine = app.extensions["referflow"].db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(sent)


def test_an_advocate_page_costs_the_same_queries_however_many_advocates_it_holds(app, api,
                                                                               client):
    _leaderboard(api, client)
    _get(api, "/v1/advocates")  # page tokens stored: the later reads write nothing
    small = _queries(app, lambda: _get(api, "/v1/advocates?limit=1"))
    for i in range(6):
        _approve(api, link(api, f"cus_more{i}")["code"])
    _get(api, "/v1/advocates")
    large = _queries(app, lambda: _get(api, "/v1/advocates?limit=50"))
    assert len(_get(api, "/v1/advocates?limit=50")["items"]) == 9
    assert large == small, (small, large)


def test_the_kept_counters_agree_with_counting(app, api, client):
    ann, bob, _cy = _leaderboard(api, client)
    pending = claim(api, link(api, "cus_ann")["code"])
    qualify(api, pending["id"], at=MONTH_AGO)  # ann: a 4th approval
    approved = _get(api, f"/v1/referrals?advocate_id={bob}&status=approved")["items"][0]
    api.post(f"/v1/referrals/{approved['id']}/reverse", {"reason": "fraud"})  # bob: one less
    with app.extensions["referflow"].db.session() as session:
        ctx = load_program(session, api.program_id, SECRET_KEY)
        rows = lists.list_advocates(session, ctx, sort="approved").items
    counted = {r.advocate.id: (r.referrals, r.approved, r.clicks) for r in rows}
    for advocate_id, counts in counted.items():
        stats = _get(api, f"/v1/advocates/{advocate_id}")["stats"]
        assert counts == (stats["referrals"], stats["approved"], stats["clicks"]), advocate_id
    assert counted[ann] == (4, 4, 1) and counted[bob] == (2, 0, 3)


@pytest.mark.parametrize("typed", ["ann.lee@example.test", " ANN.LEE@Example.Test", "cus_ann"])
def test_advocates_q_by_external_id_or_email(api, client, typed):
    ann, _bob, _cy = _leaderboard(api, client)
    assert _ids(api, f"/v1/advocates?q={quote(typed)}") == [ann]
    assert _ids(api, "/v1/advocates?q=nobody@example.test") == []


def test_advocates_filter_by_tier(client):
    api = make_program(client, {**PROGRAM_CONFIG, "tiers": [
        {"name": "starter", "min_approved": 0}, {"name": "gold", "min_approved": 2}]})
    gold, starter = link(api), link(api)
    for _ in range(2):
        _approve(api, gold["code"])
    _approve(api, starter["code"])
    assert _ids(api, "/v1/advocates?tier=gold") == [gold["advocate_id"]]
    assert _ids(api, "/v1/advocates?tier=starter&sort=approved") == [starter["advocate_id"]]
    assert _ids(api, "/v1/advocates?tier=platinum") == []


# -- gift cards ---------------------------------------------------------------------------------

def test_gift_cards_filter_by_status_side_and_expiry_newest_first(app, api):
    code = link(api)["code"]
    cards = []
    for _ in range(3):
        referral = _approve(api, code)
        cards += api.post("/v1/gift-cards", {"referral_id": referral["id"]}).get_json()["cards"]
    by_side = {s: [c["id"] for c in cards if c["side"] == s] for s in ("advocate", "friend")}
    newest_first = [c["id"] for c in sorted(cards, key=lambda c: (c["created_at"], c["id"]),
                                            reverse=True)]
    assert _ids(api, "/v1/gift-cards?limit=200") == newest_first
    assert sum(_all(api, "/v1/gift-cards", 4), []) == newest_first
    assert set(_ids(api, "/v1/gift-cards?side=friend")) == set(by_side["friend"])
    assert _ids(api, "/v1/gift-cards?side=goodwill") == []
    redeemed = cards[0]
    assert api.post(f"/v1/gift-cards/{redeemed['code']}/redeem",
                    {"amount": redeemed["amount"], "currency": "EUR"}).status_code == 200
    expired = cards[1]
    with app.extensions["referflow"].db.session() as session:
        session.execute(update(GiftCard).where(GiftCard.id == expired["id"]).values(
            expires_at=datetime.now(UTC) - timedelta(days=1)))
        session.commit()
    assert _ids(api, "/v1/gift-cards?status=redeemed") == [redeemed["id"]]
    assert _ids(api, "/v1/gift-cards?status=expired") == [expired["id"]]
    active = _get(api, "/v1/gift-cards?status=active")["items"]
    assert {c["id"] for c in active} == set(newest_first) - {redeemed["id"], expired["id"]}
    assert {c["status"] for c in active} == {"active"}
    soon = quote(iso(datetime.now(UTC)))
    assert _ids(api, f"/v1/gift-cards?expiring_before={soon}") == [expired["id"]]
    assert _ids(api, "/v1/gift-cards?status=voided") == []


# -- the migration's backfill ---------------------------------------------------------------------

def test_the_migration_backfills_channels_signals_and_counters(tmp_path):
    url = f"sqlite:///{tmp_path / 'backfill.db'}"
    upgrade(url, "0008")
    engine = create_engine(url)
    now = "2026-01-01 00:00:00.000000"
    reasons = '[{"code": "same_household", "message": "m"}, {"code": "velocity", "message": "m"}]'
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO programs (id, name, config, config_version, created_at) "
                          "VALUES ('prg_1', 'P', :config, 1, :now)"),
                     {"config": json.dumps(PROGRAM_CONFIG), "now": now})
        conn.execute(text("INSERT INTO advocates (id, program_id, external_id, flagged, "
                          "created_at) VALUES ('adv_1', 'prg_1', 'cus_1', 0, :now)"), {"now": now})
        for click, channel in (("clk_1", "email"), ("clk_2", None)):
            conn.execute(text("INSERT INTO clicks (id, program_id, advocate_id, code, channel, "
                              "created_at) VALUES (:id, 'prg_1', 'adv_1', 'C', :ch, :now)"),
                         {"id": click, "ch": channel, "now": now})
        for ref, click, status, why in (("ref_1", "clk_1", "approved", reasons),
                                        ("ref_2", None, "rewarded", "[]"),
                                        ("ref_3", "clk_2", "pending", "[]")):
            conn.execute(text(
                "INSERT INTO referrals (id, program_id, advocate_id, code, click_id, "
                "friend_external_id, status, reasons, created_at, updated_at, version) VALUES "
                "(:id, 'prg_1', 'adv_1', 'C', :click, :id, :status, :why, :now, :now, 1)"),
                {"id": ref, "click": click, "status": status, "why": why, "now": now})
    upgrade(url, "0009")
    with engine.connect() as conn:
        assert dict(conn.execute(text("SELECT id, channel FROM referrals")).all()) == {
            "ref_1": "email", "ref_2": None, "ref_3": None}
        assert sorted(conn.execute(text("SELECT referral_id, code, program_id FROM "
                                        "referral_signals")).all()) == [
            ("ref_1", "same_household", "prg_1"), ("ref_1", "velocity", "prg_1")]
        assert conn.execute(text("SELECT referral_count, approved_count, click_count FROM "
                                 "advocates")).one() == (3, 2, 2)
    engine.dispose()


def test_advocate_rows_read_their_counts_fresh(app, api, client):
    """An Advocate already in the session keeps old counter values; the list reads the row."""
    code = link(api)["code"]
    with app.extensions["referflow"].db.session() as session:
        ctx = load_program(session, api.program_id, SECRET_KEY)
        before = lists.list_advocates(session, ctx).items[0]
        _click(client, code)
        session.commit()  # a new transaction sees the click (expire_on_commit is off)
        after = lists.list_advocates(session, ctx).items[0]
        assert (before.clicks, after.clicks) == (0, 1)
        assert after.advocate is before.advocate
        assert session.get(Advocate, after.advocate.id) is not None
