"""Calendar months in a program's timezone, as UTC instants."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo


def month_start(now: datetime, timezone: str) -> datetime:
    """Return the start of ``now``'s calendar month in ``timezone``, in UTC."""
    local = now.astimezone(ZoneInfo(timezone))
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start.astimezone(UTC)


def next_month_start(now: datetime, timezone: str) -> datetime:
    """Return the start of the calendar month after ``now``'s in ``timezone``, in UTC."""
    local = now.astimezone(ZoneInfo(timezone))
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return datetime(year, month, 1, tzinfo=ZoneInfo(timezone)).astimezone(UTC)
