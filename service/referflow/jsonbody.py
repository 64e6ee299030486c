"""Strict JSON parsing for request bodies and provider webhooks, and the text rule of the edge."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from referflow.errors import BadRequest, ValidationFailed

MAX_DEPTH = 16
# NUL and lone surrogates (U+D800-U+DFFF) are not storable text: PostgreSQL refuses NUL and
# no UTF-8 encoder takes a surrogate, so they are refused where they enter, not at the database.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# In valid JSON text such characters can only come from a \u escape (the parser refuses raw
# control characters; UTF-8 decoding refuses surrogates): without one, no string needs a look.
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400: valid JSON, but no database or JS number holds it
        raise ValidationFailed(f"the number {text[:40]} is out of range (beyond a double)",
                               code="number_out_of_range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise BadRequest(f"the key {key!r} appears twice in one object", code="duplicate_key")
        obj[key] = value
    return obj


def loads_strict(raw: bytes) -> Any:
    """Parse JSON refusing NaN/Infinity, bad UTF-8, duplicate keys, unstorable text and depth."""
    try:
        text = raw.decode("utf-8")
        data = json.loads(text, parse_constant=_reject_constant,
                          parse_float=_finite_float, object_pairs_hook=_unique_keys)
    except RecursionError as exc:
        raise BadRequest("the JSON body is nested too deeply", code="too_deep") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", code="invalid_json") from exc
    if _too_deep(data):
        raise BadRequest(f"the JSON body is nested deeper than {MAX_DEPTH}", code="too_deep")
    if _UNSTORABLE_ESCAPE.search(text):  # only then walk the strings (to name the path)
        _check_strings(data, "")
    return data


def check_text(value: str, where: str) -> None:
    """Refuse text holding NUL or a lone surrogate (422 ``invalid_text``)."""
    if _UNSTORABLE.search(value):
        raise ValidationFailed(f"{where or '/'}: text must be Unicode without NUL or lone surrogates",
                               code="invalid_text", errors=[{"path": where or "/", "message":
                                                             "NUL or lone surrogate"}])


def ascii_digits(value: str) -> bool:
    """Tell whether ``value`` is a whole number in ASCII digits (``str.isdigit`` takes ``²``)."""
    return value.isascii() and value.isdigit()


def _check_strings(value: Any, path: str) -> None:
    if isinstance(value, str):
        check_text(value, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, path)
            _check_strings(item, f"{path}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_strings(item, f"{path}/{index}")


def _too_deep(value: Any) -> bool:
    """Tell whether a value nests deeper than MAX_DEPTH (a scalar at the top is depth 1).

    Iterative, containers only, and it stops at the first one too deep: a non-empty object or
    array at level MAX_DEPTH puts its members below the limit.
    """
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        container, level = stack.pop()
        members = container.values() if isinstance(container, dict) else container
        if members and level >= MAX_DEPTH:
            return True
        stack.extend((member, level + 1) for member in members
                     if isinstance(member, (dict, list)))
    return False
