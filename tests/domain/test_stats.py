"""The statistics' definitions: calendar periods, the query, the histogram, the figures."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from referflow.domain import stats, stats_figures, stats_periods
from referflow.domain.stats import Delta, Metric, Move, Tiers
from referflow.domain.stats_periods import InvalidStatsQuery, LocalDays, StatsQuery

TODAY = date(2026, 11, 30)


def test_day_week_and_month_periods_are_cut_to_the_range():
    assert [(b.key, b.start, b.end) for b in stats_periods.buckets(date(2026, 3, 30), date(2026, 4, 1),
                                                           "day")] \
        == [("2026-03-30", date(2026, 3, 30), date(2026, 3, 30)),
            ("2026-03-31", date(2026, 3, 31), date(2026, 3, 31)),
            ("2026-04-01", date(2026, 4, 1), date(2026, 4, 1))]
    weeks = stats_periods.buckets(date(2026, 12, 30), date(2027, 1, 12), "week")
    assert [(b.key, b.start.isoformat(), b.end.isoformat()) for b in weeks] == [
        ("2026-W53", "2026-12-30", "2027-01-03"),  # 2026 has 53 ISO weeks; Thursday 31 Dec
        ("2027-W01", "2027-01-04", "2027-01-10"), ("2027-W02", "2027-01-11", "2027-01-12")]
    months = stats_periods.buckets(date(2024, 1, 31), date(2024, 3, 1), "month")
    assert [(b.key, b.start.isoformat(), b.end.isoformat()) for b in months] == [
        ("2024-01", "2024-01-31", "2024-01-31"), ("2024-02", "2024-02-01", "2024-02-29"),
        ("2024-03", "2024-03-01", "2024-03-01")]


def test_a_week_starts_on_monday():
    (week,) = stats_periods.buckets(date(2026, 11, 23), date(2026, 11, 29), "week")
    assert week.start.weekday() == 0 and week.end.weekday() == 6 and week.key == "2026-W48"


@pytest.mark.parametrize(("instant", "zone", "day"), [
    ("2026-03-28T22:59:59Z", "Europe/Paris", "2026-03-28"),  # +01:00 until 01:00Z on the 29th
    ("2026-03-28T23:00:00Z", "Europe/Paris", "2026-03-29"),
    ("2026-03-29T21:59:59Z", "Europe/Paris", "2026-03-29"),  # +02:00 after
    ("2026-03-29T22:00:00Z", "Europe/Paris", "2026-03-30"),
    ("2026-10-25T22:59:59Z", "Europe/Paris", "2026-10-25"),  # back to +01:00
    ("2026-11-01T03:59:59Z", "America/New_York", "2026-10-31"),
    ("2026-11-01T04:00:00Z", "America/New_York", "2026-11-01"),
    ("2026-11-02T04:59:59Z", "America/New_York", "2026-11-01"),
    ("2026-04-04T12:59:59Z", "Australia/Lord_Howe", "2026-04-04"),  # +11:00 until 15:00Z
    ("2026-04-04T13:00:00Z", "Australia/Lord_Howe", "2026-04-05"),
    ("2026-04-05T13:29:59Z", "Australia/Lord_Howe", "2026-04-05"),  # +10:30 after
    ("2026-04-05T13:30:00Z", "Australia/Lord_Howe", "2026-04-06"),
    ("2026-06-30T18:14:59Z", "Asia/Kathmandu", "2026-06-30"),  # +05:45
    ("2026-06-30T18:15:00Z", "Asia/Kathmandu", "2026-07-01"),
])
def test_the_local_day_of_an_instant(instant, zone, day):
    at = datetime.fromisoformat(instant)
    assert stats.local_day(at, zone) == LocalDays(zone).day(at) == date.fromisoformat(day)


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York", "Australia/Lord_Howe",
                                  "Pacific/Chatham", "Asia/Kathmandu", "UTC"])
def test_the_remembered_offsets_give_the_zone_s_own_day(zone):
    days, rng = LocalDays(zone), random.Random(zone)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for _ in range(3000):
        at = start + timedelta(seconds=rng.randrange(2 * 366 * 86400))
        assert days.day(at) == stats.local_day(at, zone), at


# -- the query ---------------------------------------------------------------------------------

def test_the_query_defaults_to_the_last_30_days_by_day():
    query = StatsQuery.parse({}, TODAY)
    assert (query.first, query.last, query.interval, query.group_by, query.format) \
        == (date(2026, 11, 1), TODAY, "day", "none", "json")
    assert query.split == stats.Split.TOTAL
    assert StatsQuery.parse({"to": "2026-01-31"}, TODAY).first == date(2026, 1, 2)
    assert StatsQuery.parse({"from": "2026-11-29"}, TODAY).last == TODAY
    assert StatsQuery.parse({"group_by": "tier"}, TODAY).split == stats.Split.TIER


@pytest.mark.parametrize(("args", "field"), [
    ({"from": "2026-13-01"}, "from"),
    ({"from": "20260101"}, "from"),
    ({"to": "2026-02-30"}, "to"),
    ({"from": "2026-1-1"}, "from"),
    ({"from": "٢٠٢٦-٠١-٠١"}, "from"),  # non-ASCII digits
    ({"from": "2026-01-01T00:00:00Z"}, "from"),
    ({"from": "2026-02-01", "to": "2026-01-31"}, "from"),
    ({"interval": "hour"}, "interval"),
    ({"interval": ""}, "interval"),
    ({"group_by": "advocate"}, "group_by"),
    ({"format": "xml"}, "format"),
    ({"from": "2000-01-01", "to": "2026-01-01", "interval": "month"}, "to"),
    ({"from": "2023-01-01", "to": "2025-12-31"}, "interval"),
])
def test_a_bad_query_names_its_parameter(args, field):
    with pytest.raises(InvalidStatsQuery) as caught:
        StatsQuery.parse(args, TODAY)
    assert caught.value.field == field


def test_the_longest_ranges_allowed():
    assert len(stats_periods.buckets(*_range(StatsQuery.parse(
        {"from": "2024-11-30", "to": "2026-11-30"}, TODAY)), "day")) == stats_periods.MAX_BUCKETS
    StatsQuery.parse({"from": "2016-12-03", "to": "2026-11-30", "interval": "month"}, TODAY)


def _range(query: StatsQuery) -> tuple[date, date]:
    return query.first, query.last


# -- deltas ------------------------------------------------------------------------------------

def test_a_move_into_a_status_is_counted_once():
    assert stats.move_deltas(Move("pending", "pending")) == []
    assert stats.move_deltas(Move("held", "held", ("advocate_cap_reached",))) \
        == [Delta("reason:advocate_cap_reached")]
    assert stats.move_deltas(Move(None, "in_review", ("disposable_email",))) \
        == [Delta("reason:disposable_email"), Delta(Metric.IN_REVIEW)]
    assert stats.move_deltas(Move("in_review", "rejected")) == [Delta(Metric.REJECTED)]
    assert stats.move_deltas(Move("held", "approved", committed=3500, currency="EUR")) \
        == [Delta(Metric.APPROVED, amount=3500, currency="EUR")]
    assert stats.move_deltas(Move("rewarded", "reversed", ("chargeback",), loss=1500,
                                  loss_currency="EUR")) \
        == [Delta("reason:chargeback"), Delta(Metric.REVERSED, amount=1500, currency="EUR")]
    assert stats.move_deltas(Move("approved", "rewarded", seconds_since_claim=86400.0)) \
        == [Delta(Metric.REWARDED), Delta(f"claim_to_reward:{stats.duration_bucket(86400)}")]


def test_card_entries_count_positive_amounts():
    assert stats.card_deltas("redeem", -1500, "EUR") == [Delta(Metric.REDEEMED, amount=1500,
                                                               currency="EUR")]
    assert stats.card_deltas("adjust", 10, "EUR") == []


def test_an_approval_counts_under_the_tier_it_recorded():
    assert stats.recorded_tier("approved", "held", {"tier": "silver"}) == (True, "silver")
    assert stats.recorded_tier("approved", "pending", {"tier": None}) == (True, None)
    assert stats.recorded_tier("approved", "held", {}) == (False, None)
    assert stats.recorded_tier("rewarded", "approved", {"tier": "gold"}) == (False, None)


def test_the_qualifying_entry_is_the_one_with_the_referral_s_event():
    assert stats.is_qualifying({"event": {"event_id": "inv_1"}}, "inv_1")
    assert not stats.is_qualifying({"event": {"event_id": "inv_2"}}, "inv_1")
    assert not stats.is_qualifying({"event": {"event_id": None}}, None)
    assert not stats.is_qualifying({"hold_until": "x"}, "inv_1")


def test_tiers_through_time():
    t = datetime(2026, 1, 1, tzinfo=UTC)
    tiers = Tiers({"a": "gold", "b": "silver"}, {"a": [
        (t + timedelta(days=2), "silver", "gold"), (t + timedelta(days=1), None, "silver")]})
    assert [tiers.at("a", t + timedelta(days=d)) for d in (0, 1, 1.5, 2, 3)] \
        == [None, "silver", "silver", "gold", "gold"]
    assert tiers.at("b", t) == "silver" and tiers.at("c", t) is None and tiers.at(None, t) is None


# -- the histogram and the ratios --------------------------------------------------------------

def test_a_bucket_stands_for_its_durations_within_9_percent():
    for seconds in [60, 61, 100, 3599, 3600, 86400, 14 * 86400, 14 * 86400 + 1, 365 * 86400]:
        value = stats.bucket_value(stats.duration_bucket(seconds))
        assert abs(value - seconds) / seconds < 0.091, seconds
    assert stats.duration_bucket(0) == stats.duration_bucket(59.9) == 0
    assert stats.bucket_value(0) == 30
    assert stats.duration_bucket(120) == 5  # a doubling is four buckets


def test_percentiles_of_a_histogram_by_nearest_rank():
    day, week = stats.duration_bucket(86400), stats.duration_bucket(7 * 86400)
    assert stats.percentile({}, 0.5) is None
    assert stats.percentile({day: 5, week: 5}, 0.5) == stats.bucket_value(day)
    assert stats.percentile({day: 5, week: 5}, 0.9) == stats.bucket_value(week)
    assert stats.percentile({day: 1}, 0.9) == stats.bucket_value(day)
    assert stats.percentile({day: 9, week: 1}, 0.9) == stats.bucket_value(day)


@pytest.mark.parametrize(("numerator", "denominator", "ratio"), [
    (3, 0, None), (0, 4, 0.0), (1, 3, 0.3333), (7, 5, 1.4)])
def test_conversion(numerator, denominator, ratio):
    assert stats.ratio(numerator, denominator) == ratio


@pytest.mark.parametrize(("cost", "approved", "cac"), [
    (0, 0, None), (1000, 0, None), (0, 3, 0), (10, 4, 3), (10, 3, 3), (11, 2, 6)])
def test_cac_rounds_half_up(cost, approved, cac):
    assert stats.cac(cost, approved) == cac


# -- from rows to the answer -------------------------------------------------------------------

def test_period_numbers_count_from_the_origin():
    first = date(2026, 11, 4)  # a Wednesday
    for interval in stats_periods.INTERVALS:
        origin = stats_periods.period_origin(first, interval)
        periods = stats_periods.buckets(first, date(2027, 3, 2), interval)
        for number, bucket in enumerate(periods):
            for offset in range((bucket.end - bucket.start).days + 1):
                day = bucket.start + timedelta(days=offset)
                assert stats_periods.period_number(day, origin, interval) == number, (interval, day)
    assert stats_periods.period_origin(first, "week") == date(2026, 11, 2)
    assert stats_periods.period_origin(first, "month") == date(2026, 11, 1)


def test_rows_become_periods_totals_and_running_figures():
    query = StatsQuery.parse({"from": "2026-11-01", "to": "2026-11-10", "interval": "week",
                              "group_by": "channel"}, TODAY)
    total = [("", 0, "clicks", "", 4, 0), ("", 0, "claims", "", 2, 0),
             ("", 1, "claims", "", 1, 0), ("", 1, "card_issued", "EUR", 1, 2500),
             ("", 2, "card_redeemed", "EUR", 1, 1000), ("", 2, "reason:velocity", "", 1, 0),
             ("", 2, "reason:chargeback", "", 1, 0), ("", 2, "advocates", "", 2, 0)]
    grouped = [("email", 0, "clicks", "", 4, 0), ("email", 0, "claims", "", 2, 0),
               ("", 1, "claims", "", 1, 0), ("", 2, "advocates", "", 2, 0)]
    before = [("", "advocates", "", 5, 0), ("", "card_issued", "EUR", 1, 500)]
    answer = stats_figures.summarise(query, (total, before), (grouped, before[:1]), "EUR")
    assert [b["key"] for b in answer["buckets"]] == ["2026-W44", "2026-W45", "2026-W46"]
    first, second, third = answer["buckets"]
    assert first["funnel"]["clicks"] == 4 and first["funnel"]["claims"] == 2
    assert first["conversion"]["claims_per_click"] == 0.5
    assert second["rewards"]["EUR"]["outstanding"] == 3000
    assert third["rewards"]["EUR"]["outstanding"] == 2000
    assert third["participation"] == {"advocates_new": 2, "advocates_total": 7,
                                      "sharing_advocates": 0, "known_customers_new": 0,
                                      "known_customers_total": 0}
    totals = answer["totals"]
    assert totals["funnel"]["claims"] == 3 and totals["signals"] == {"velocity": 1}
    assert totals["reasons"] == {"chargeback": 1}
    assert totals["rewards"]["EUR"]["issued"] == 2500
    assert [g["key"] for g in answer["groups"]] == [None, "email"]
    none, email = answer["groups"]
    assert none["totals"]["participation"]["advocates_total"] == 7
    assert email["totals"]["participation"]["advocates_total"] == 0
    assert email["totals"]["funnel"]["claims"] + none["totals"]["funnel"]["claims"] == 3


def test_an_ungrouped_answer_has_no_groups_and_empty_periods_are_zero():
    query = StatsQuery.parse({"from": "2026-11-01", "to": "2026-11-03"}, TODAY)
    answer = stats_figures.summarise(query, ([], []), None, "USD")
    assert "groups" not in answer and len(answer["buckets"]) == 3
    assert answer["totals"]["revenue"] == {"USD": 0}
    assert answer["totals"]["rewards"]["USD"]["cac"] is None
