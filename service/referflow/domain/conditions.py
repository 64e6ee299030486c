"""A small, safe condition language over plain data: configuration, never code. Pure.

A condition names a value (a person attribute, or a field of a moment's data; dots reach into
nested objects), an operator and a value to compare with::

    {"attribute": "seats", "op": "gte", "value": 10}
    {"field": "score", "op": "gte", "value": 9}
    {"attribute": "plan", "op": "in", "value": ["pro", "enterprise"]}
    {"attribute": "churn_risk", "op": "exists", "value": false}

Operators: ``eq``, ``ne``, ``in``, ``not_in``, ``gte``, ``gt``, ``lte``, ``lt``, ``exists``.
Nothing is evaluated as code. A value that is missing (or null) fails every operator but
``exists: false``; the order operators compare numbers with numbers and strings with strings
(ISO dates order as strings), anything else fails; ``true`` is never equal to ``1``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

OPS = ("eq", "ne", "in", "not_in", "gte", "gt", "lte", "lt", "exists")
ORDER_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "gte": lambda a, b: a >= b, "gt": lambda a, b: a > b,
    "lte": lambda a, b: a <= b, "lt": lambda a, b: a < b,
}
MISSING = object()


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same_kind(a: Any, b: Any) -> bool:
    """Tell whether two JSON values may be compared (bool, number and string are apart)."""
    if _number(a) or _number(b):
        return _number(a) and _number(b)
    return type(a) is type(b)


def _equal(a: Any, b: Any) -> bool:
    return _same_kind(a, b) and a == b


def lookup(values: Mapping[str, Any], name: str) -> Any:
    """Return the value a dotted name points at in nested objects, or MISSING."""
    current: Any = values
    for part in name.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return MISSING
        current = current[part]
    return MISSING if current is None else current


@dataclass(frozen=True)
class Condition:
    """One test of a named value; validated on construction."""

    name: str
    op: str
    value: Any = True

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a condition names an attribute or field")
        if self.op not in OPS:
            raise ValueError(f"unknown condition operator {self.op!r}")
        if self.op in ("in", "not_in") and not isinstance(self.value, list | tuple):
            raise ValueError(f"{self.op} compares with a list of values")
        if self.op in ORDER_OPS and not (_number(self.value) or isinstance(self.value, str)):
            raise ValueError(f"{self.op} compares with a number or a string")
        if self.op == "exists" and not isinstance(self.value, bool):
            raise ValueError("exists takes true or false")
        if isinstance(self.value, list):
            object.__setattr__(self, "value", tuple(self.value))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], key: str) -> Condition:
        """Build from ``{key: name, "op": ..., "value": ...}`` (key: attribute or field)."""
        return cls(name=data[key], op=data["op"], value=data.get("value", True))

    def to_dict(self, key: str) -> dict[str, Any]:
        """Return the JSON form, naming the value under ``key``."""
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {key: self.name, "op": self.op, "value": value}

    def holds(self, values: Mapping[str, Any]) -> bool:
        """Tell whether the condition holds for these values."""
        actual = lookup(values, self.name)
        if self.op == "exists":
            return (actual is not MISSING) is bool(self.value)
        if actual is MISSING:
            return False
        if self.op in ("eq", "ne"):
            return _equal(actual, self.value) == (self.op == "eq")
        if self.op in ("in", "not_in"):
            return any(_equal(actual, v) for v in self.value) == (self.op == "in")
        return _same_kind(actual, self.value) and bool(ORDER_OPS[self.op](actual, self.value))

    def describe(self) -> str:
        """Return the condition as a short text (for a rule's outcome), without the actual value."""
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return f"{self.name} {self.op} {value!r}"


def failing(conditions: tuple[Condition, ...], values: Mapping[str, Any]) -> list[Condition]:
    """Return the conditions that do not hold (all of them must hold)."""
    return [c for c in conditions if not c.holds(values)]
