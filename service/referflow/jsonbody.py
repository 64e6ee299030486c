"""Strict JSON parsing for request bodies and provider webhooks."""

from __future__ import annotations

import json
from typing import Any

from referflow.errors import BadRequest

MAX_DEPTH = 16


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def loads_strict(raw: bytes) -> Any:
    """Parse JSON refusing NaN/Infinity, bad UTF-8 and nesting deeper than MAX_DEPTH."""
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError as exc:
        raise BadRequest("the JSON body is nested too deeply", code="too_deep") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", code="invalid_json") from exc
    if _depth(data) > MAX_DEPTH:
        raise BadRequest(f"the JSON body is nested deeper than {MAX_DEPTH}", code="too_deep")
    return data


def _depth(value: Any, level: int = 1) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level
