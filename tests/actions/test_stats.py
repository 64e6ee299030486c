"""Statistics: the rollups kept by every transaction agree with the source tables and a rebuild."""

from __future__ import annotations

import secrets
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from referflow.actions import common, giftcards, lifecycle, lists, referrals, rollups
from referflow.actions import stats as stats_actions
from referflow.actions.common import load_program
from referflow.domain.referral import IN_REVIEW
from referflow.domain.stats_periods import StatsQuery
from referflow.storage.models import (
    Advocate,
    Click,
    GiftCardEntry,
    KnownCustomer,
    Referral,
    ReferralHistory,
    StatRollup,
    StatSharer,
)
from tests.conftest import PROGRAM_CONFIG, SECRET_KEY, Api, make_program, unique
from tests.helpers import claim, link, qualify

ZONE = "America/New_York"
CONFIG = {**PROGRAM_CONFIG, "timezone": ZONE, "tiers": [
    {"name": "silver", "min_approved": 1},
    {"name": "gold", "min_approved": 2, "advocate_reward": {"type": "gift_card", "amount": 4000}}]}
STATUSES = ("approved", "rewarded", "reversed", "rejected", "in_review")


def follow(client: Any, code: str, channel: str | None = None) -> str:
    """Visit a share link; return the click id the landing page receives."""
    address = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250)}"
    response = client.get(f"/r/{code}" + (f"?ch={channel}" if channel else ""),
                          environ_base={"REMOTE_ADDR": address},
                          headers={"User-Agent": unique("browser")})
    assert response.status_code == 302
    return parse_qs(urlsplit(response.headers["Location"]).query)["click_id"][0]


def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.get_json()
    return response.get_json()


def seed(client: Any) -> tuple[Api, dict[str, Any]]:
    """A varied program, driven through the API: channels, tiers, reviews, cards, a reversal."""
    api = make_program(client, CONFIG)
    bob_id = unique("bob")
    ann, bob, cy = link(api), link(api, bob_id), link(api)  # cy never shares
    clicks = [follow(client, ann["code"], "email") for _ in range(3)]
    clicks += [follow(client, ann["code"], "social"), follow(client, bob["code"])]
    past = datetime.now(UTC) - timedelta(days=30)
    first = claim(api, ann["code"], click_id=clicks[0])  # approved while ann has no tier
    qualify(api, first["id"], at=past, amount=5000)
    second = claim(api, ann["code"], click_id=clicks[1])  # approved in silver, ann -> gold
    qualify(api, second["id"], at=past - timedelta(days=1), amount=7000)
    third = claim(api, ann["code"], click_id=clicks[3])  # approved in gold
    qualify(api, third["id"], at=past, amount=9000)
    qualify(api, second["id"], at=past, amount=100)  # a renewal: already_qualified
    cards = _ok(api.post("/v1/gift-cards", {"referral_id": first["id"]}), 201)["cards"]
    _ok(api.post("/v1/gift-cards", {"referral_id": second["id"]}), 201)
    _ok(api.post(f"/v1/gift-cards/{cards[0]['code']}/redeem", {"amount": 1500, "currency": "EUR"}))
    _ok(api.post(f"/v1/referrals/{first['id']}/reverse", {"reason": "chargeback"}))
    reviewed = claim(api, bob["code"], click_id=clicks[4], email=f"{unique('x')}@mailinator.com")
    _ok(api.post(f"/v1/referrals/{reviewed['id']}/approve", {"reviewer": "rita"}))
    qualify(api, reviewed["id"], amount=4000)  # held for 14 days
    declined = claim(api, bob["code"], email=f"{unique('y')}@mailinator.com")  # a typed code
    _ok(api.post(f"/v1/referrals/{declined['id']}/decline", {"reviewer": "rita"}))
    claim(api, bob["code"], email=f"{unique('z')}@mailinator.com")  # stays in review
    claim(api, bob["code"], friend_id=bob_id)  # self-referral: rejected
    goodwill = _ok(api.post("/v1/gift-cards", {"advocate_id": cy["advocate_id"], "amount": 700,
                                               "currency": "USD"}), 201)
    _ok(api.post(f"/v1/gift-cards/{goodwill['code']}/redeem", {"amount": 200, "currency": "USD"}))
    _ok(api.post("/v1/customers", {"customers": [{"external_id": "c1"}, {"email": "c2@x.test"}]}))
    return api, {"ann": ann, "bob": bob, "cy": cy, "first": first, "second": second,
                 "third": third}


def today() -> date:
    return datetime.now(ZoneInfo(ZONE)).date()


def midnight(day: date, zone: str = ZONE) -> datetime:
    return datetime.combine(day, time(), ZoneInfo(zone)).astimezone(UTC)


def answer(app: Any, api: Api, zone: str = ZONE, **args: str) -> dict[str, Any]:
    with app.extensions["referflow"].db.session() as session:
        ctx = load_program(session, api.program_id, SECRET_KEY)
        query = StatsQuery.parse(args, datetime.now(ZoneInfo(zone)).date())
        return stats_actions.program_stats(session, ctx, query)


def expected(session: Any, pid: str, first: date, last: date) -> dict[str, Any]:
    """The figures of a range computed from the source tables, row by row."""
    start, end = midnight(first), midnight(last + timedelta(days=1))

    def inside(at: datetime) -> bool:
        return start <= at < end

    def rows(*columns: Any, where: Any) -> list[Any]:
        return list(session.execute(select(*columns).where(where)))

    refs = {r.id: r for r in session.scalars(select(Referral).where(Referral.program_id == pid))}
    history = list(session.scalars(select(ReferralHistory).where(ReferralHistory.program_id == pid)))
    moves = [h for h in history if inside(h.at) and h.to_status != h.from_status]
    entries = rows(GiftCardEntry.at, GiftCardEntry.kind, GiftCardEntry.amount,
                   where=GiftCardEntry.program_id == pid)
    clicks = rows(Click.advocate_id, Click.created_at, where=Click.program_id == pid)
    firsts: dict[str, datetime] = {}
    for advocate_id, at in clicks:
        firsts[advocate_id] = min(at, firsts.get(advocate_id, at))
    advocates = rows(Advocate.created_at, where=Advocate.program_id == pid)
    customers = rows(KnownCustomer.created_at, where=KnownCustomer.program_id == pid)
    qualified = [refs[h.referral_id] for h in history if inside(h.at)
                 and (h.data.get("event") or {}).get("event_id")
                 == refs[h.referral_id].qualifying_event_id is not None]
    approvals = [h for h in moves if h.to_status == "approved"]
    codes = Counter(c["code"] for h in history if inside(h.at) for c in h.reasons)

    def money(kind: str, upto: bool = False) -> int:
        return sum(abs(a) for at, k, a in entries if k == kind and (at < end if upto else inside(at)))

    return {
        "funnel": {"clicks": sum(inside(at) for _, at in clicks),
                   "claims": sum(inside(r.created_at) for r in refs.values()),
                   "qualified": len(qualified),
                   **{s: sum(h.to_status == s for h in moves) for s in STATUSES}},
        "participation": {
            "advocates_new": sum(inside(at) for (at,) in advocates),
            "advocates_total": sum(at < end for (at,) in advocates),
            "sharing_advocates": sum(inside(at) for at in firsts.values()),
            "known_customers_new": sum(inside(at) for (at,) in customers),
            "known_customers_total": sum(at < end for (at,) in customers)},
        "revenue": sum(r.qualified_amount for r in qualified),
        "committed": sum(refs[h.referral_id].advocate_reward + refs[h.referral_id].friend_reward
                         for h in approvals),
        "cards": {k: money(k) for k in ("issue", "redeem", "void")},
        "outstanding": money("issue", True) - money("redeem", True) - money("void", True),
        "loss": sum(h.data.get("loss_amount", 0) for h in moves if h.to_status == "reversed"),
        "rewarded": sum(h.to_status == "rewarded" for h in moves),
        "codes": dict(codes),
    }


def _actual(figures: dict[str, Any]) -> dict[str, Any]:
    rewards = figures["rewards"]
    cards = {"issue": 0, "redeem": 0, "void": 0}
    outstanding = 0
    for block in rewards.values():
        for kind, name in (("issue", "issued"), ("redeem", "redeemed"), ("void", "voided")):
            cards[kind] += block[name]
        outstanding += block["outstanding"]
    return {
        "funnel": figures["funnel"], "participation": figures["participation"],
        "revenue": sum(figures["revenue"].values()),
        "committed": sum(b["committed"] for b in rewards.values()),
        "cards": cards, "outstanding": outstanding,
        "loss": sum(b["loss_after_reversal"] for b in rewards.values()),
        "rewarded": figures["claim_to_reward"]["count"],
        "codes": {**figures["signals"], **figures["reasons"]},
    }


@pytest.mark.parametrize("days_back", [0, 1, 31, 45])
def test_every_figure_agrees_with_the_source_tables(app, client, days_back):
    api, _ = seed(client)
    first, last = today() - timedelta(days=days_back), today()
    result = answer(app, api, **{"from": first.isoformat(), "to": last.isoformat()})
    with app.extensions["referflow"].db.session() as session:
        want = expected(session, api.program_id, first, last)
        in_review = session.scalar(select(func.count()).select_from(Referral).where(
            Referral.program_id == api.program_id, Referral.status == IN_REVIEW))
    assert _actual(result["totals"]) == want
    assert result["review_queue"]["size"] == in_review == 1
    assert result["review_queue"]["oldest_age_seconds"] >= 0


def test_the_seeded_program_reads_as_expected(app, client):
    api, _ = seed(client)
    totals = answer(app, api)["totals"]
    assert totals["funnel"] == {"clicks": 5, "claims": 7, "qualified": 4, "approved": 3,
                                "rewarded": 2, "reversed": 1, "rejected": 2, "in_review": 3}
    assert totals["participation"] == {"advocates_new": 3, "advocates_total": 3,
                                       "sharing_advocates": 2, "known_customers_new": 2,
                                       "known_customers_total": 2}
    eur, usd = totals["rewards"]["EUR"], totals["rewards"]["USD"]
    # committed: 2500+1000, 2500+1000 (silver has no own reward), 4000+1000 (gold)
    assert eur["committed"] == 12000 and eur["cac"] == 4000
    assert (eur["issued"], eur["redeemed"], eur["voided"]) == (7000, 1500, 2000)
    assert eur["outstanding"] == 7000 - 1500 - 2000 and eur["loss_after_reversal"] == 1500
    assert (usd["issued"], usd["redeemed"], usd["outstanding"], usd["cac"]) == (700, 200, 500, 0)
    assert totals["revenue"] == {"EUR": 5000 + 7000 + 9000 + 4000}  # recorded today
    assert totals["signals"] == {"disposable_email": 3, "self_referral": 1}
    assert totals["reasons"] == {"already_qualified": 1, "chargeback": 1, "declined_in_review": 1}
    assert totals["conversion"]["claims_per_click"] == round(7 / 5, 4)
    assert totals["claim_to_reward"]["count"] == 2
    assert 0 < totals["claim_to_reward"]["p50_seconds"] <= totals["claim_to_reward"]["p90_seconds"]


def _snapshot(app: Any) -> tuple[Counter[Any], set[Any]]:
    with app.extensions["referflow"].db.session() as session:
        rows = Counter({(r.program_id, r.split, r.day, r.segment, r.metric, r.currency):
                        (r.count, r.amount) for r in session.scalars(select(StatRollup))})
        sharers = {(s.program_id, s.advocate_id, s.day) for s in session.scalars(select(StatSharer))}
    return rows, sharers


def test_the_live_rollups_equal_a_rebuild_from_the_source_tables(app, client):
    api, _ = seed(client)
    other = make_program(client, name="Other")
    claim(other, link(other)["code"])
    live = _snapshot(app)
    with app.extensions["referflow"].db.session() as session:
        written = stats_actions.rebuild(session)
        session.commit()
    assert set(written) == {api.program_id, other.program_id}
    assert _snapshot(app) == live
    with app.extensions["referflow"].db.session() as session:
        assert set(stats_actions.rebuild(session, other.program_id)) == {other.program_id}
        session.commit()
    assert _snapshot(app) == live


@pytest.mark.parametrize("group_by", ["channel", "tier"])
@pytest.mark.parametrize("interval", ["day", "week", "month"])
def test_groups_and_periods_add_up_to_the_totals(app, client, group_by, interval):
    api, _ = seed(client)
    result = answer(app, api, **{"from": (today() - timedelta(days=40)).isoformat(),
                                 "interval": interval, "group_by": group_by})
    counted = ("funnel", "participation")
    for name in counted:
        for key in result["totals"][name]:
            if key.endswith("_total"):
                continue
            assert sum(g["totals"][name][key] for g in result["groups"]) \
                == result["totals"][name][key] == sum(b[name][key] for b in result["buckets"])
    assert result["buckets"][-1]["participation"]["advocates_total"] == 3


def test_each_fact_counts_under_the_tier_the_advocate_had(app, client):
    api, _ = seed(client)
    groups = {g["key"]: g["totals"] for g in answer(app, api, group_by="tier")["groups"]}
    assert {k: g["funnel"]["approved"] for k, g in groups.items()} \
        == {None: 1, "silver": 1, "gold": 1}
    assert {k: g["rewards"]["EUR"]["committed"] for k, g in groups.items()} \
        == {None: 3500, "silver": 3500, "gold": 5000}
    assert groups[None]["funnel"]["clicks"] == 5  # clicked before any approval
    assert groups["gold"]["funnel"]["reversed"] == 1  # reversed after ann reached gold
    assert groups["gold"]["rewards"]["EUR"]["loss_after_reversal"] == 1500


def test_claims_by_channel_equal_the_lists_counts(app, client):
    api, _ = seed(client)
    result = answer(app, api, group_by="channel")
    first, last = date.fromisoformat(result["from"]), date.fromisoformat(result["to"])
    with app.extensions["referflow"].db.session() as session:
        ctx = load_program(session, api.program_id, SECRET_KEY)
        for group in result["groups"]:
            if group["key"] is None:
                continue
            filters = lists.ReferralFilters(channel=group["key"], created_from=midnight(first),
                                            created_to=midnight(last + timedelta(days=1)))
            assert group["totals"]["funnel"]["claims"] \
                == lists.count_referrals(session, ctx, filters)
        assert result["totals"]["funnel"]["in_review"] >= lists.count_referrals(
            session, ctx, lists.ReferralFilters(status="in_review"))
    assert {g["key"]: g["totals"]["funnel"]["claims"] for g in result["groups"]} \
        == {None: 4, "email": 2, "social": 1}


def _at(monkeypatch: Any, instant: str) -> datetime:
    """Set the clock of the use cases (and of the rollups) to ``instant``."""
    now = datetime.fromisoformat(instant).astimezone(UTC)
    for module in (referrals, common, lifecycle, rollups):
        monkeypatch.setattr(module, "utcnow", lambda: now)
    return now


@pytest.mark.parametrize(("zone", "instant", "local_day"), [
    (ZONE, "2026-11-08T04:59:59+00:00", "2026-11-07"),  # New York, EST (-05:00)
    (ZONE, "2026-11-08T05:00:00+00:00", "2026-11-08"),
    (ZONE, "2026-11-01T03:59:59+00:00", "2026-10-31"),  # the night clocks go back: EDT to 06:00Z
    (ZONE, "2026-11-01T04:00:00+00:00", "2026-11-01"),
    (ZONE, "2026-11-01T06:30:00+00:00", "2026-11-01"),
    ("Europe/Paris", "2026-03-28T22:59:59+00:00", "2026-03-28"),  # +01:00 until 01:00Z
    ("Europe/Paris", "2026-03-28T23:00:00+00:00", "2026-03-29"),
    ("Europe/Paris", "2026-03-29T21:59:59+00:00", "2026-03-29"),  # +02:00 after
    ("Europe/Paris", "2026-03-29T22:00:00+00:00", "2026-03-30"),
])
def test_facts_count_on_the_program_s_local_day(app, client, monkeypatch, zone, instant,
                                                local_day):
    api = make_program(client, {**CONFIG, "timezone": zone, "hold_days": 0})
    code = link(api)["code"]
    now = _at(monkeypatch, instant)
    qualify(api, claim(api, code, click_id=follow(client, code, "email"))["id"], at=now)
    day = date.fromisoformat(local_day)
    result = answer(app, api, zone, **{"from": (day - timedelta(days=1)).isoformat(),
                                       "to": (day + timedelta(days=1)).isoformat()})
    assert [(b["key"], b["funnel"]["clicks"], b["funnel"]["claims"], b["funnel"]["qualified"],
             b["funnel"]["approved"], b["revenue"]["EUR"], b["participation"]["sharing_advocates"])
            for b in result["buckets"]] == [
        ((day - timedelta(days=1)).isoformat(), 0, 0, 0, 0, 0, 0),
        (local_day, 1, 1, 1, 1, 5000, 1),
        ((day + timedelta(days=1)).isoformat(), 0, 0, 0, 0, 0, 0)]


def test_weeks_start_on_monday_and_months_on_the_first_in_the_program_s_calendar(
        app, client, monkeypatch):
    api = make_program(client, {**PROGRAM_CONFIG, "timezone": "Europe/Paris"})
    code = link(api)["code"]
    for instant in ("2026-03-28T22:59:59+00:00", "2026-03-28T23:00:00+00:00",  # Sat 28, Sun 29
                    "2026-03-29T21:59:59+00:00", "2026-03-29T22:00:00+00:00",  # Sun 29, Mon 30
                    "2026-02-28T23:00:00+00:00"):  # Sunday 1 March in Paris
        _at(monkeypatch, instant)
        claim(api, code)

    def claims(**args: str) -> list[tuple[str, str, str, int]]:
        return [(b["key"], b["start"], b["end"], b["funnel"]["claims"])
                for b in answer(app, api, "Europe/Paris", **args)["buckets"]]

    assert claims(**{"from": "2026-03-28", "to": "2026-03-30"}) == [
        ("2026-03-28", "2026-03-28", "2026-03-28", 1),
        ("2026-03-29", "2026-03-29", "2026-03-29", 2),
        ("2026-03-30", "2026-03-30", "2026-03-30", 1)]
    assert claims(**{"from": "2026-03-28", "to": "2026-04-07", "interval": "week"}) == [
        ("2026-W13", "2026-03-28", "2026-03-29", 3), ("2026-W14", "2026-03-30", "2026-04-05", 1),
        ("2026-W15", "2026-04-06", "2026-04-07", 0)]
    assert claims(**{"from": "2026-02-15", "to": "2026-04-10", "interval": "month"}) == [
        ("2026-02", "2026-02-15", "2026-02-28", 0), ("2026-03", "2026-03-01", "2026-03-31", 5),
        ("2026-04", "2026-04-01", "2026-04-10", 0)]


def test_an_empty_program_and_an_empty_range_answer_zeros(app, client):
    api = make_program(client, CONFIG)
    result = answer(app, api, **{"from": "2020-01-01", "to": "2020-03-31", "interval": "month",
                                 "group_by": "channel"})
    totals = result["totals"]
    assert set(totals["funnel"].values()) == {0} and set(totals["conversion"].values()) == {None}
    assert totals["claim_to_reward"] == {"count": 0, "p50_seconds": None, "p90_seconds": None}
    assert totals["rewards"] == {"EUR": {"committed": 0, "issued": 0, "redeemed": 0, "voided": 0,
                                         "expired": 0, "outstanding": 0,
                                         "loss_after_reversal": 0, "cac": None}}
    assert [b["key"] for b in result["buckets"]] == ["2020-01", "2020-02", "2020-03"]
    assert result["groups"] == [] and result["review_queue"] == {
        "size": 0, "oldest_age_seconds": None, "next_deadline": None}


def test_figures_as_of_a_date_count_everything_before_the_range(app, client):
    api, _ = seed(client)
    tomorrow = (today() + timedelta(days=1)).isoformat()
    totals = answer(app, api, **{"from": tomorrow, "to": tomorrow})["totals"]
    assert totals["funnel"]["claims"] == 0 and totals["participation"]["advocates_new"] == 0
    assert totals["participation"]["advocates_total"] == 3
    assert totals["participation"]["known_customers_total"] == 2
    assert totals["rewards"]["EUR"]["outstanding"] == 3500
    assert totals["rewards"]["EUR"]["issued"] == 0
    yesterday = (today() - timedelta(days=1)).isoformat()
    before = answer(app, api, **{"from": yesterday, "to": yesterday})["totals"]
    assert before["participation"]["advocates_total"] == 0
    assert before["rewards"]["EUR"]["outstanding"] == 0


def test_a_rolled_back_transaction_leaves_no_count(app, client):
    api = make_program(client, CONFIG)
    advocate_id = link(api)["advocate_id"]
    before = _snapshot(app)
    with app.extensions["referflow"].db.session() as session:
        session.add(Click(id=unique("clk"), program_id=api.program_id, advocate_id=advocate_id,
                          code="X"))
        session.flush()
        session.rollback()
        session.commit()
    assert _snapshot(app) == before


def test_concurrent_claims_and_clicks_are_counted_exactly(app, client):
    api = make_program(client, CONFIG)
    codes = [link(api)["code"] for _ in range(4)]
    n = 24

    def one(i: int) -> None:
        own = app.test_client()
        click_id = follow(own, codes[i % 4], "email" if i % 2 else None)
        response = own.post("/v1/referrals/claim", headers=api.headers(), json={
            "click_id": click_id, "friend": {"external_id": f"f{i}", "email": f"f{i}@x.test"}})
        assert response.status_code == 201, response.get_json()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(n)))
    result = answer(app, api, group_by="channel")
    assert result["totals"]["funnel"]["claims"] == result["totals"]["funnel"]["clicks"] == n
    assert result["totals"]["participation"]["sharing_advocates"] == 4
    assert {g["key"]: g["totals"]["funnel"]["claims"] for g in result["groups"]} \
        == {None: n // 2, "email": n // 2}
    live = _snapshot(app)
    with app.extensions["referflow"].db.session() as session:
        stats_actions.rebuild(session, api.program_id)
        session.commit()
    assert _snapshot(app) == live


def test_the_rebuild_command_restores_the_rollups(app, client, database_url, monkeypatch):
    from click.testing import CliRunner

    from referflow.cli import main
    from tests.live import service_env

    for name, value in service_env(database_url).items():
        monkeypatch.setenv(name, value)
    api, _ = seed(client)
    live = _snapshot(app)
    with app.extensions["referflow"].db.session() as session:
        session.execute(StatRollup.__table__.delete())
        session.commit()
    out = CliRunner().invoke(main, ["stats", "rebuild", "--program", api.program_id])
    assert out.exit_code == 0, out.output
    assert out.output.startswith(f"{api.program_id}: ") and _snapshot(app) == live
    missing = CliRunner().invoke(main, ["stats", "rebuild", "--program", "prg_nobody"])
    assert missing.exit_code != 0 and "not found" in missing.output


def test_a_first_click_counts_its_advocate_once_whatever_the_session_holds(app, client):
    api = make_program(client, CONFIG)
    advocate_id = link(api)["advocate_id"]
    for _ in range(2):
        with app.extensions["referflow"].db.session() as session:
            assert session.get(Advocate, advocate_id) is not None  # loaded: its tier is known
            session.add(Click(id=unique("clk"), program_id=api.program_id,
                              advocate_id=advocate_id, code="X", channel="sms"))
            session.commit()
    follow(client, link(api, unique("ann"))["code"])
    totals = answer(app, api)["totals"]
    assert (totals["funnel"]["clicks"], totals["participation"]["sharing_advocates"]) == (3, 2)



def test_the_migration_counts_the_rows_already_there(app, client, monkeypatch):
    import importlib.util
    from types import SimpleNamespace

    from referflow.storage.migrate import MIGRATIONS

    path = MIGRATIONS / "versions" / "0010_stat_rollups.py"
    spec = importlib.util.spec_from_file_location("migration_0010", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    seed(client)
    live = _snapshot(app)
    engine = app.extensions["referflow"].db.engine
    with engine.begin() as conn:  # as Alembic runs it: in the upgrade's transaction
        conn.execute(StatRollup.__table__.delete())
        conn.execute(StatSharer.__table__.delete())
        monkeypatch.setattr(migration, "op", SimpleNamespace(get_bind=lambda: conn))
        migration._build()
    assert _snapshot(app) == live and live[0]


def test_a_savepoint_s_facts_go_with_it(app, client):
    api = make_program(client, CONFIG)
    advocate_id = link(api)["advocate_id"]

    def click() -> Click:
        return Click(id=unique("clk"), program_id=api.program_id, advocate_id=advocate_id,
                     code="X")

    with app.extensions["referflow"].db.session() as session:
        session.add(click())
        with session.begin_nested():
            session.add(click())  # kept
        savepoint = session.begin_nested()
        session.add(click())
        session.flush()
        savepoint.rollback()  # dropped, with its fact
        session.commit()
    assert answer(app, api)["totals"]["funnel"]["clicks"] == 2


# -- gift cards past their expiry, erasure -------------------------------------------------------

def _cards_balance(api: Api, status: str) -> int:
    """Add up the balances listGiftCards shows for a status (every page)."""
    total, after = 0, None
    while True:
        page = _ok(api.get(f"/v1/gift-cards?status={status}&limit=200"
                           + (f"&after={after}" if after else "")))
        total += sum(card["balance"] for card in page["items"] if card["currency"] == "EUR")
        after = page["next_cursor"]
        if after is None:
            return total


def test_expired_cards_count_as_expired_not_outstanding_as_the_lists_show_them(app, client,
                                                                               monkeypatch):
    # no tiers: the clock goes back for the cards only, and a tier reached now would place the
    # cards' facts under it where a rebuild places them under the tier of their (past) time
    api = make_program(client, {**PROGRAM_CONFIG, "timezone": ZONE, "gift_card_expiry_days": 30,
                                "hold_days": 0})
    ann = link(api)
    then = datetime.now(UTC) - timedelta(days=60)  # issued then: expired 30 days ago
    monkeypatch.setattr(giftcards, "utcnow", lambda: then)
    kept = _ok(api.post("/v1/gift-cards", {"advocate_id": ann["advocate_id"], "amount": 1000}),
               201)
    _ok(api.post(f"/v1/gift-cards/{kept['code']}/redeem", {"amount": 300, "currency": "EUR"}))
    _ok(api.post("/v1/gift-cards", {"advocate_id": ann["advocate_id"], "amount": 800}), 201)
    reversed_ = claim(api, ann["code"])
    qualify(api, reversed_["id"], at=then)
    _ok(api.post("/v1/gift-cards", {"referral_id": reversed_["id"]}), 201)
    monkeypatch.undo()
    # voided after it expired: it shows voided, no longer expired
    _ok(api.post(f"/v1/referrals/{reversed_['id']}/reverse", {"reason": "chargeback"}))
    _ok(api.post("/v1/gift-cards", {"advocate_id": ann["advocate_id"], "amount": 500}), 201)
    expired, active = _cards_balance(api, "expired"), _cards_balance(api, "active")
    assert (expired, active) == (700 + 800, 500)
    for group_by in ("none", "channel", "tier"):
        result = answer(app, api, **{"from": (today() - timedelta(days=90)).isoformat(),
                                     "group_by": group_by, "interval": "week"})
        eur = result["totals"]["rewards"]["EUR"]
        assert (eur["expired"], eur["outstanding"]) == (expired, active), group_by
        assert eur["issued"] - eur["redeemed"] - eur["voided"] - eur["expired"] == active
        assert sum(b["rewards"]["EUR"]["expired"] for b in result["buckets"]) == expired
        for name in ("expired", "outstanding"):
            assert sum(g["totals"]["rewards"].get("EUR", {}).get(name, 0)
                       for g in result.get("groups", [])) in (0, eur[name]), (group_by, name)
    before = answer(app, api, **{"from": (today() - timedelta(days=45)).isoformat(),
                                 "to": (today() - timedelta(days=45)).isoformat()})
    assert before["totals"]["rewards"]["EUR"]["outstanding"] == 700 + 800 + 3500  # not yet expired
    live = _snapshot(app)
    with app.extensions["referflow"].db.session() as session:
        stats_actions.rebuild(session, api.program_id)
        session.commit()
    rebuilt = _snapshot(app)
    assert {k: v for k, v in rebuilt[0].items() if live[0].get(k) != v} == {}
    assert {k: v for k, v in live[0].items() if rebuilt[0].get(k) != v} == {}
    with app.extensions["referflow"].db.session() as session:  # what migration 0017 runs
        session.execute(StatRollup.__table__.delete().where(StatRollup.metric == "card_expiring"))
        stats_actions.recount_card_expiry(session)
        session.commit()
    assert _snapshot(app) == live


def test_an_erasure_takes_the_known_customer_out_of_the_figures_at_once(app, client):
    api = make_program(client, CONFIG)
    _ok(api.post("/v1/customers", {"customers": [{"external_id": "c1"}, {"external_id": "c2"},
                                                 {"email": "c3@x.test"}]}))
    link(api, "c1")  # a known customer who became an advocate
    assert answer(app, api)["totals"]["participation"]["known_customers_total"] == 3
    _ok(api.client.delete("/v1/people/c1", headers=api.headers()))
    participation = answer(app, api)["totals"]["participation"]
    assert (participation["known_customers_new"], participation["known_customers_total"]) == (2, 2)
    live = _snapshot(app)
    with app.extensions["referflow"].db.session() as session:
        stats_actions.rebuild(session, api.program_id)
        session.commit()
    assert _snapshot(app) == live


def test_a_group_lists_only_the_periods_it_has_facts_in_and_the_csv_all(app, client):
    api, _ = seed(client)
    args = {"from": (today() - timedelta(days=9)).isoformat(), "group_by": "channel"}
    result = answer(app, api, **args)
    assert len(result["buckets"]) == 10
    groups = {g["key"]: g for g in result["groups"]}
    assert [b["key"] for b in groups["social"]["buckets"]] == [today().isoformat()]
    assert groups["social"]["buckets"][0]["funnel"] == groups["social"]["totals"]["funnel"]
    for name in ("funnel", "participation"):
        for key, value in result["totals"][name].items():
            if not key.endswith("_total"):
                assert sum(g["totals"][name][key] for g in result["groups"]) == value, key
    assert result["totals"] == answer(app, api, **{"from": args["from"]})["totals"]
    full = answer(app, api, **args, format="csv")
    assert all(len(g["buckets"]) == 10 for g in full["groups"])
    assert [g["totals"] for g in full["groups"]] == [g["totals"] for g in result["groups"]]
