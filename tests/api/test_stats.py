"""getProgramStats over HTTP: parameters, the JSON answer (checked against its schema), CSV."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest

from tests.actions.test_stats import seed, today
from tests.conftest import ADMIN_TOKEN, Api, make_program
from tests.helpers import claim, link


@pytest.mark.parametrize("group_by", ["none", "channel", "tier"])
@pytest.mark.parametrize("interval", ["day", "week", "month"])
def test_stats_answer_every_interval_and_grouping(client, group_by, interval):
    api, _ = seed(client)
    first = (today() - timedelta(days=60)).isoformat()
    response = api.get(f"/v1/stats?from={first}&interval={interval}&group_by={group_by}")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()  # validated against schemas/program-stats.json by the app
    assert (body["interval"], body["group_by"], body["timezone"]) \
        == (interval, group_by, "America/New_York")
    assert body["buckets"][0]["start"] == first and body["buckets"][-1]["end"] == body["to"]
    assert body["totals"]["funnel"]["claims"] == 7
    assert ("groups" in body) == (group_by != "none")


@pytest.mark.parametrize("query", [
    "from=2026-13-01", "from=20260101", "to=yesterday", "from=2026-02-01&to=2026-01-31",
    "interval=hour", "group_by=advocate", "format=xml", "from=1990-01-01&interval=month",
    "from=2020-01-01&to=2023-01-01", "from=2026-01-01%20", "interval=Day",
])
def test_bad_parameters_answer_400_invalid_query(api, query):
    response = api.get(f"/v1/stats?{query}")
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["code"] == "invalid_query"


def test_stats_need_a_program_key(client, api):
    assert client.get("/v1/stats").status_code == 401
    assert Api(client, ADMIN_TOKEN).get("/v1/stats").status_code == 401
    read_key = api.post("/v1/api-keys", {"label": "reports", "scopes": ["read"]}).get_json()
    assert Api(client, read_key["key"]).get("/v1/stats").status_code == 200


def test_stats_are_per_program(client):
    mine, theirs = make_program(client), make_program(client, name="Other")
    claim(theirs, link(theirs)["code"])
    assert mine.get("/v1/stats").get_json()["totals"]["funnel"]["claims"] == 0
    assert theirs.get("/v1/stats").get_json()["totals"]["funnel"]["claims"] == 1


def test_stats_as_csv(client):
    api, _ = seed(client)
    first = today() - timedelta(days=1)
    response = api.get(f"/v1/stats?from={first}&group_by=channel&format=csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    json_body = api.get(f"/v1/stats?from={first}&group_by=channel").get_json()
    assert [(r["group"], r["period"]) for r in rows] == [
        (group, period) for group in ["(all)", "(none)", "email", "social"]
        for period in ["total", first.isoformat(), today().isoformat()]]
    total = rows[0]
    assert int(total["claims"]) == json_body["totals"]["funnel"]["claims"]
    assert int(total["issued_EUR"]) == json_body["totals"]["rewards"]["EUR"]["issued"]
    assert int(total["outstanding_USD"]) == 500
    assert int(total["signal_disposable_email"]) == 3 and int(total["reason_chargeback"]) == 1
    assert total["approved_per_qualified"] == str(
        json_body["totals"]["conversion"]["approved_per_qualified"])
    empty = [r for r in rows if r["group"] == "social" and r["period"] == first.isoformat()][0]
    assert empty["claims_per_click"] == "" and empty["cac_EUR"] == ""


def test_an_empty_range_as_csv_has_a_header_and_zero_rows(api):
    day = date(2021, 5, 1)
    response = api.get(f"/v1/stats?from={day}&to={day}&format=csv")
    lines = response.get_data(as_text=True).splitlines()
    assert lines[0].startswith("group,period,start,end,clicks,claims")
    assert len(lines) == 3 and lines[1].startswith("(all),total,2021-05-01,2021-05-01,0,0")
