"""UTC datetimes survive a round trip on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from referflow.storage.models import Program


def test_aware_times_come_back_aware_and_in_utc(app):
    stockholm = timezone(timedelta(hours=1))
    at = datetime(2026, 3, 1, 13, 0, tzinfo=stockholm)
    with app.extensions["referflow"].db.session() as session:
        session.add(Program(id="prg_t", name="t", config={}, created_at=at))
        session.commit()
        session.expire_all()
        got = session.get(Program, "prg_t").created_at
    assert got == at and got.tzinfo is not None and got.utcoffset() == timedelta(0)
    assert got == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_naive_times_are_refused(app):
    with app.extensions["referflow"].db.session() as session:
        session.add(Program(id="prg_n", name="n", config={}, created_at=datetime(2026, 1, 1)))
        with pytest.raises(Exception, match="naive datetime"):
            session.commit()
