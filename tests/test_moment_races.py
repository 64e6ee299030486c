"""The ask caps under parallel recordMoment calls for one person, against real gunicorn workers.

A person's decisions are serialised on their ``people`` row (FOR NO KEY UPDATE on PostgreSQL,
the write lock on SQLite), so the weekly cap holds however many moments arrive at once, and a
moment id sent twice at once is decided once.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.test_races import N, _parallel, _program, server  # noqa: F401  (the module's server)

pytestmark = pytest.mark.slow


def _moment(remote: Any, person: str, i: int, **extra: Any) -> Any:
    return remote.post("/v1/moments", {"person": {"external_id": person, "email": f"{person}@x.test"},
                                       "moment": "milestone", "data": {"n": i}, **extra})


@pytest.mark.parametrize("run", range(2))
def test_the_weekly_ask_cap_holds_for_parallel_moments_of_one_new_person(server, settings, run):  # noqa: F811
    remote = _program(server, moments={"caps": {"asks_per_week": 3, "cool_down_days": 0}})
    responses = _parallel(lambda i: _moment(remote, "p", i))
    assert all(r.status_code == 201 for r in responses), Counter(r.status_code for r in responses)
    decided = Counter((r.json()["decision"], r.json()["skip_reason"]) for r in responses)
    assert decided == {("ask", None): 3, ("skip", "frequency_capped"): N - 3}
    codes = {r.json()["link"]["code"] for r in responses if r.json()["link"]}
    assert len(codes) == 1  # one advocate, one link
    profile = remote.get("/v1/people/p/profile").json()
    assert len(profile["asks"]) == N


def test_one_moment_id_sent_in_parallel_is_decided_once(server, settings):  # noqa: F811
    remote = _program(server)
    responses = _parallel(lambda i: _moment(remote, f"q{i % 2}", i, id="crm-moment-1"))
    assert {r.status_code for r in responses} <= {200, 201}
    assert sum(r.status_code == 201 for r in responses) == 1
    assert len({r.json()["id"] for r in responses}) == 1
