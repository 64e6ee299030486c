"""Response bodies encoded by orjson (Flask's JSON provider), with Flask's own rules kept.

A year of statistics by day and channel is about 2 MB of JSON: the standard library's encoder
takes about 28 ms of CPU over it, orjson about 7 (measured with bench/stats.py's database).
Request bodies are still parsed by jsonbody.py (its strict rules are the standard parser's).

What Flask's default provider does and this one keeps: keys in the order given (sort_keys is
off in app.py), non-string keys as strings, dates and datetimes as HTTP dates, dataclasses as
objects, ``__html__`` objects as their markup. It differs only where the bytes are equivalent
JSON: non-ASCII text is written as UTF-8 rather than as ``\\u`` escapes. An integer beyond 64
bits (which orjson refuses) falls back to the standard encoder.
"""

from __future__ import annotations

import json
from typing import Any, cast

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider

# str, int, dict and list subclasses (StrEnum members) and enums are written by value, as the
# standard encoder does; dates and dataclasses go through Flask's own ``default``.
OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class OrjsonProvider(DefaultJSONProvider):
    """Flask's JSON provider with orjson writing compact response bodies."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        """Serialise as Flask does (indent, sort_keys and other options: the standard encoder)."""
        if kwargs or self.sort_keys:
            return super().dumps(obj, **kwargs)
        return self._bytes(obj).decode()

    def response(self, *args: Any, **kwargs: Any) -> Response:
        """Return a JSON response; compact bodies come from orjson as bytes."""
        if (self.compact is None and self._app.debug) or self.compact is False or self.sort_keys:
            return cast(Response, super().response(*args, **kwargs))
        obj = self._prepare_response_obj(args, kwargs)
        return Response(self._bytes(obj) + b"\n", mimetype=self.mimetype)

    def _bytes(self, obj: Any) -> bytes:
        try:
            return orjson.dumps(obj, default=self.default, option=OPTIONS)
        except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits: the standard encoder
            return json.dumps(obj, default=self.default, ensure_ascii=False,
                              separators=(",", ":")).encode()
