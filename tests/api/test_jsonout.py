"""Response bodies written by orjson keep Flask's rules (service/referflow/jsonout.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum

from flask import Flask
from markupsafe import Markup

from referflow.jsonout import OrjsonProvider


class Colour(StrEnum):
    RED = "red"


@dataclass
class Point:
    x: int
    y: int


def _app() -> Flask:
    app = Flask("t")
    app.json = OrjsonProvider(app)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # as app.py sets it
    return app


def test_what_flask_writes_is_written_the_same_way() -> None:
    app = _app()
    value = {"b": 1, "a": [True, None, 1.5], 3: "int key", "when": datetime(2026, 11, 30, 8, 0,
                                                                                tzinfo=UTC),
             "day": date(2026, 11, 30), "amount": Decimal("12.50"), "point": Point(1, 2),
             "colour": Colour.RED, "markup": Markup("<b>x</b>")}
    with app.app_context():
        body = app.json.response(value).get_data()
        standard = Flask("s")
        standard.json.sort_keys = False  # type: ignore[attr-defined]
        with standard.app_context():
            expected = standard.json.response(value).get_data()
    assert json.loads(body) == json.loads(expected)
    assert list(json.loads(body)) == ["b", "a", "3", "when", "day", "amount", "point", "colour",
                                      "markup"]  # the order given, not sorted
    assert body.startswith(b'{"b":1,"a":[true,null,1.5],') and body.endswith(b"}\n")  # compact


def test_text_is_utf8_and_large_integers_fall_back_to_the_standard_encoder() -> None:
    app = _app()
    with app.app_context():
        assert app.json.response({"name": "Zoë €"}).get_data() == '{"name":"Zoë €"}\n'.encode()
        huge = app.json.response({"n": 2**70}).get_data()
        assert json.loads(huge) == {"n": 2**70}
        assert json.loads(app.json.dumps({"n": 1})) == {"n": 1}
        assert app.json.dumps({"b": 1, "a": 2}, sort_keys=True) == '{"a": 2, "b": 1}'
