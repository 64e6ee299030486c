"""Structured logs: JSON lines, each carrying the request id of the work in hand.

The request id follows a request into what it causes. The web app binds it for each request
(``X-Request-Id``); the outbox rows the request writes keep it; the jobs that fan those rows out
and deliver them bind it again, log it, and send it on each webhook (``referflow-request-id``).
Work that no request caused (a sweep, a retry timer) gets an id of its own.

Flask-free on purpose: use cases (actions/) read the id, and they never import the web layer.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, TextIO

_request_id: ContextVar[str | None] = ContextVar("referflow_request_id", default=None)
# A caller's id is kept when it is a plain token: what proxies and tracing tools send (UUIDs,
# ULIDs, hex, "abc-123.4") fits, and nothing in it can break a log line or a header.
_SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_OURS = "referflow_json"  # marks the handler ``configure`` installed, so it can be replaced


def new_request_id() -> str:
    """Return a fresh request id (a UUID4 in hex)."""
    return uuid.uuid4().hex


def accept_request_id(raw: str | None) -> str:
    """Return the caller's request id when it is a sane token, else a fresh one."""
    return raw if raw is not None and _SANE_ID.fullmatch(raw) else new_request_id()


def current_request_id() -> str | None:
    """Return the request id bound to the work in hand, if any."""
    return _request_id.get()


def bind_request_id(request_id: str) -> Token[str | None]:
    """Bind ``request_id`` until ``unbind_request_id`` is called with the token."""
    return _request_id.set(request_id)


def unbind_request_id(token: Token[str | None]) -> None:
    """Restore the request id that was bound before ``bind_request_id``."""
    _request_id.reset(token)


@contextmanager
def request_id_bound(request_id: str) -> Iterator[str]:
    """Bind ``request_id`` for the duration of a block."""
    token = bind_request_id(request_id)
    try:
        yield request_id
    finally:
        unbind_request_id(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and the record's ``data``.

    Exceptions are logged as their type and stack only: messages of database errors carry the
    statement's parameters, which may be personal data.
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            line["request_id"] = request_id
        line.update(getattr(record, "data", None) or {})
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line["exc_type"] = type(exc).__name__
            line["stack"] = "".join(traceback.format_tb(exc.__traceback__))
        return json.dumps(line, default=str, ensure_ascii=False)


def configure(stream: TextIO | None = None, level: int = logging.INFO) -> logging.Handler:
    """Send referflow's logs to ``stream`` (stderr) as JSON lines; return the handler installed."""
    logger = logging.getLogger("referflow")
    for old in [h for h in logger.handlers if getattr(h, _OURS, False)]:
        logger.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    setattr(handler, _OURS, True)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # one line per record, whatever the root logger has
    return handler
