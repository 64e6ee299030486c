"""UTC, timezone-aware time helpers."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Return the current time, aware, in UTC."""
    return datetime.now(UTC)


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC 3339 timestamp that carries an offset; raise ValueError otherwise."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("timestamp has no timezone offset")
    try:  # 0001-01-01T00:00:00+03:00 is a valid string whose UTC instant is before year 1
        return parsed.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("timestamp is out of range once its offset is applied") from exc


def to_rfc3339(value: datetime | None) -> str | None:
    """Format an aware datetime as RFC 3339 UTC with a Z suffix."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
