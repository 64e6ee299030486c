"""One endpoint, one subscription: parallel creates of one URL against real gunicorn workers.

The check before the insert cannot see a create that has not committed; the partial unique index
on (program, normal URL) of active subscriptions (migration 0022) makes every create but one
fail, and the loser answers 409 naming the winner, never a 500.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.live import live_server
from tests.test_races import N, _parallel, _program

pytestmark = pytest.mark.slow
# The same endpoint spelled four ways (domain.urls.normal_url): loopback, never connected to.
SPELLINGS = ("https://127.0.0.1/race?x=1", "https://127.0.0.1:443/race?x=1",
             "https://127.0.0.1/race?x=1#a", "https://127.0.0.1:443/race?x=1#b")


@pytest.fixture(scope="module")
def server(database_url, tmp_path_factory):
    with live_server(database_url, tmp_path_factory.mktemp("webhook-races"), threads=N,
                     REFERFLOW_ALLOW_PRIVATE_WEBHOOK_URLS="true") as base:
        yield base


@pytest.mark.parametrize("run", range(3))
def test_parallel_creates_of_one_endpoint_make_one_subscription(server, settings, run):
    remote = _program(server)
    responses = _parallel(lambda i: remote.post("/v1/webhooks", {
        "url": SPELLINGS[i % len(SPELLINGS)], "events": ["*"]}))
    assert Counter(r.status_code for r in responses) == {201: 1, 409: N - 1}, \
        Counter((r.status_code, r.json().get("code")) for r in responses)
    [winner] = [r.json()["id"] for r in responses if r.status_code == 201]
    for refused in (r.json() for r in responses if r.status_code == 409):
        assert refused["code"] == "subscription_exists"
        assert refused["errors"][0]["subscription_id"] == winner
    assert [s["id"] for s in remote.get("/v1/webhooks").json()["items"]] == [winner]


def test_parallel_creates_in_two_programs_make_one_each(server, settings):
    remotes = [_program(server), _program(server)]
    responses = _parallel(lambda i: remotes[i % 2].post("/v1/webhooks", {
        "url": SPELLINGS[0], "events": ["*"]}))
    assert Counter(r.status_code for r in responses) == {201: 2, 409: N - 2}
    assert all(len(r.get("/v1/webhooks").json()["items"]) == 1 for r in remotes)
