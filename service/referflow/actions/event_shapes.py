"""The shapes provider-event mappings read, checked before they act, and exact conversions.

A payload that lacks or garbles a field its mapping reads raises ``InvalidEvent``: the event
settles at once with each field's path and reason, never retried, never truncated, never 1970.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any

from sqlalchemy.orm import Session

from referflow.actions.common import Actor, ProgramContext
from referflow.contract import FORMATS, StrictValidator
from referflow.domain import money
from referflow.domain.timeutil import parse_rfc3339, to_rfc3339, utcnow
from referflow.services import Services

Outcome = dict[str, Any]
Shape = dict[str, Any]
Payload = dict[str, Any]
Handler = Callable[[Session, ProgramContext, Payload, Actor, Services], Outcome]


class InvalidEvent(Exception):
    """The payload lacks or garbles a field its mapping reads: settle it with the reasons, never retry."""

    def __init__(self, problems: list[dict[str, str]]):
        self.problems = [{"path": p["path"], "message": p["message"][:300]} for p in problems[:20]]
        super().__init__("; ".join(f"{p['path']}: {p['message']}" for p in self.problems))

    @classmethod
    def at(cls, path: str, message: str) -> InvalidEvent:
        """Return the problem of one field."""
        return cls([{"path": path, "message": message}])

    def outcome(self) -> Outcome:
        """Return the settled outcome that says why."""
        return {"ignored": "invalid_event", "message": str(self)[:1000], "errors": self.problems}


EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # no provider event of ours is older
MAX_ID = 190  # object ids: "order:" / "ref:" + id must still fit the 200-character columns
ID: Shape = {"type": "string", "minLength": 1, "maxLength": MAX_ID}
NUMERIC_ID: Shape = {"type": ["integer", "string"], "minimum": 1, "maximum": 2**63 - 1,
                     "minLength": 1, "maxLength": MAX_ID}  # Shopify and HubSpot: 64-bit integers
TEXT: Shape = {"type": "string"}
CURRENCY: Shape = {"type": "string", "pattern": "^[A-Za-z]{3}$"}
DECIMAL: Shape = {"type": ["string", "integer"]}  # exact in the currency: checked by minor_units
UNIX_TIME: Shape = {"type": "integer", "minimum": int(EARLIEST.timestamp()), "maximum": 4102444800}
RFC3339: Shape = {"type": "string", "format": "date-time"}


def obj(*required: str, **fields: Shape) -> Shape:
    """Return the shape of an object with these fields (``required`` among them)."""
    return {"type": "object", "required": list(required), "properties": fields}


def maybe(shape: Shape) -> Shape:
    """Return ``shape``, or null."""
    kinds = shape["type"] if isinstance(shape["type"], list) else [shape["type"]]
    return {**shape, "type": [*kinds, "null"]}


def array_of(shape: Shape) -> Shape:
    """Return the shape of a list of ``shape`` items, or null."""
    return {"type": ["array", "null"], "items": shape}


def reads(shape: Shape) -> Callable[[Handler], Handler]:
    """Declare the shape a mapping reads: a payload that does not fit is refused before it acts."""
    validator = StrictValidator(shape, format_checker=FORMATS)

    def declare(handler: Handler) -> Handler:
        @wraps(handler)
        def checked(s: Session, ctx: ProgramContext, payload: Payload, actor: Actor,
                    svc: Services) -> Outcome:
            problems = [{"path": "/" + "/".join(map(str, e.absolute_path)), "message": e.message}
                        for e in validator.iter_errors(payload)]
            if problems:
                raise InvalidEvent(sorted(problems, key=lambda p: p["path"]))
            return handler(s, ctx, payload, actor, svc)

        checked.shape = shape  # type: ignore[attr-defined]
        return checked

    return declare


def minor_units(amount: str | int, currency: str, path: str) -> int:
    """Return a decimal amount in exact minor units, or refuse the event."""
    try:
        return money.to_minor(amount, currency)
    except ValueError as exc:
        raise InvalidEvent.at(path, str(exc)) from exc


def unix_time(seconds: int, path: str) -> str:
    """Return a Unix time (seconds) as RFC 3339, or refuse the event when out of range."""
    return _in_range(datetime.fromtimestamp(seconds, UTC), path)


def rfc3339_time(text: str, path: str) -> str:
    """Return an RFC 3339 time in UTC, or refuse the event when malformed or out of range."""
    try:
        parsed = parse_rfc3339(text)
    except (TypeError, ValueError) as exc:
        raise InvalidEvent.at(path, f"{str(text)[:40]!r} is not an RFC 3339 time: {exc}") from exc
    return _in_range(parsed, path)


def _in_range(value: datetime, path: str) -> str:
    if not EARLIEST <= value <= utcnow() + timedelta(days=1):
        raise InvalidEvent.at(path, f"{to_rfc3339(value)} is not between {EARLIEST.year} and tomorrow")
    return to_rfc3339(value) or ""
