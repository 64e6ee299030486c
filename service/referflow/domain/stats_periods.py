"""Statistics' calendar and query: periods of local days in a program's timezone. Pure.

Days are calendar days of the program's timezone; a week is an ISO week (Monday to Sunday); a
month a calendar month. The first and last periods of a range are cut to it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from referflow.domain.stats import Split

GROUP_BY = {"none": Split.TOTAL, "channel": Split.CHANNEL, "tier": Split.TIER}


SLOT = 900  # every offset change of the IANA zones falls on a quarter hour of UTC


class LocalDays:
    """The calendar day of an instant in a timezone, remembered per quarter hour (rebuilds).

    Offsets are whole quarter hours and change on a quarter hour of UTC, so a local midnight
    never falls inside a quarter hour: the day of its first instant is the day of all of them.
    """

    def __init__(self, timezone: str):
        self.zone = ZoneInfo(timezone)
        self._days: dict[int, date] = {}

    def day(self, at: datetime) -> date:
        """Return the local calendar day of ``at`` (an aware datetime)."""
        slot = int(at.timestamp()) // SLOT
        day = self._days.get(slot)
        if day is None:
            day = self._days[slot] = datetime.fromtimestamp(slot * SLOT, self.zone).date()
        return day


@dataclass(frozen=True)
class Bucket:
    """A period of the answer: local calendar days ``start`` to ``end``, both included."""

    key: str
    start: date
    end: date


def _period(day: date, interval: str) -> tuple[str, date, date]:
    if interval == "day":
        return day.isoformat(), day, day
    if interval == "week":  # ISO 8601: weeks start on Monday, numbered in their ISO year
        year, week, weekday = day.isocalendar()
        start = day - timedelta(days=weekday - 1)
        return f"{year}-W{week:02d}", start, start + timedelta(days=6)
    start = day.replace(day=1)
    following = (start + timedelta(days=32)).replace(day=1)
    return f"{day.year}-{day.month:02d}", start, following - timedelta(days=1)


def buckets(first: date, last: date, interval: str) -> list[Bucket]:
    """Return the periods from ``first`` to ``last``; the first and last are cut to the range."""
    out: list[Bucket] = []
    day = first
    while day <= last:
        key, _, end = _period(day, interval)
        out.append(Bucket(key, day, min(end, last)))
        day = end + timedelta(days=1)
    return out


INTERVALS = ("day", "week", "month")
FORMATS = ("json", "csv")
DEFAULT_DAYS = 30
MAX_DAYS = 3660  # ten years
MAX_BUCKETS = 731  # two years of days
DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class InvalidStatsQuery(ValueError):
    """A statistics query the caller must fix; ``field`` names the parameter."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class StatsQuery:
    """What getProgramStats is asked: local dates ``first`` to ``last`` (both included)."""

    first: date
    last: date
    interval: str = "day"
    group_by: str = "none"
    format: str = "json"

    @property
    def split(self) -> Split:
        """Return the rollup split this query reads."""
        return GROUP_BY[self.group_by]

    @classmethod
    def parse(cls, args: Mapping[str, str], today: date) -> StatsQuery:
        """Read and check the query parameters (defaults: the 30 days to ``today``, by day)."""
        last = _date(args, "to") or today
        first = _date(args, "from") or last - timedelta(days=DEFAULT_DAYS - 1)
        if first > last:
            raise InvalidStatsQuery("from", "from must not be after to")
        interval = _choice(args, "interval", INTERVALS)
        query = cls(first, last, interval, _choice(args, "group_by", tuple(GROUP_BY)),
                    _choice(args, "format", FORMATS))
        if (last - first).days + 1 > MAX_DAYS:
            raise InvalidStatsQuery("to", f"a range covers at most {MAX_DAYS} days")
        if len(buckets(first, last, interval)) > MAX_BUCKETS:
            raise InvalidStatsQuery("interval", f"at most {MAX_BUCKETS} periods: use a longer "
                                    "interval or a shorter range")
        return query


def _date(args: Mapping[str, str], name: str) -> date | None:
    raw = args.get(name)
    if raw is None:
        return None
    try:
        if not DATE.match(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidStatsQuery(name, f"{name} must be a date, YYYY-MM-DD") from None


def _choice(args: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = args.get(name, allowed[0])
    if value not in allowed:
        raise InvalidStatsQuery(name, f"{name} must be one of {', '.join(allowed)}")
    return value


def period_origin(first: date, interval: str) -> date:
    """Return the day period numbers count from: period n holds the days n periods after it."""
    if interval == "week":
        return first - timedelta(days=first.weekday())
    return first.replace(day=1) if interval == "month" else first


def period_number(day: date, origin: date, interval: str) -> int:
    """Return the number of the period of ``day`` (the SQL of actions/stats.py computes the same)."""
    if interval == "month":
        return (day.year - origin.year) * 12 + day.month - origin.month
    return (day - origin).days // (7 if interval == "week" else 1)
