"""The analytics pages through Flask's test client: figures, filters, paging, the empty program,
other programs' ids, bad query strings (a 400 page, never a 500) and the charts' markup."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from referflow.app import create_app
from referflow.config import Settings
from referflow.dashboard import charts, insights
from referflow.dashboard.insights_figures import bucket_label, duration, money
from referflow.jobs.runner import tick
from tests.browser import AXE
from tests.conftest import ADMIN_TOKEN, SECRET_KEY, _clear, make_program
from tests.dashboard.insights_seed import FAILED_REWARD_ERROR, Seeded, seed
from tests.dashboard_helpers import login, make_user, text

PAGES = ("overview", "referrals", "advocates", "rewards")


@pytest.fixture(scope="module")
def shared(database_url: str) -> Iterator[tuple[Any, Seeded]]:
    """One app and one seeded program for the module (the pages only read; seeding takes seconds)."""
    _clear(database_url)
    application = create_app(Settings(
        database_url=database_url, redis_url=None, admin_token=ADMIN_TOKEN, secret_key=SECRET_KEY,
        public_url="https://refer.example.test", validate_responses=True, start_jobs=False))
    application.testing = True
    services = application.extensions["referflow"]
    made = seed(application.test_client(), services.db, lambda: tick(services, services.queue))
    make_user(application, "viewer@example.test", role="viewer", program_ids=[made.program_id])
    yield application, made
    services.db.dispose()


@pytest.fixture()
def app(shared: tuple[Any, Seeded]) -> Any:
    """This module's shared app (instead of conftest's fresh one, which empties the database)."""
    return shared[0]


@pytest.fixture()
def client(app: Any) -> Any:
    """A test client logged in as a viewer of the seeded program."""
    fresh = app.test_client()
    login(fresh, "viewer@example.test")
    return fresh


@pytest.fixture()
def seeded(shared: tuple[Any, Seeded]) -> Seeded:
    return shared[1]


def _page(client: Any, program_id: str, path: str, status: int = 200) -> str:
    response = client.get(f"/dashboard/p/{program_id}/{path}")
    assert response.status_code == status, (path, response.status_code, text(response)[:500])
    assert response.mimetype == "text/html"
    return text(response)


def _kpi(html: str, key: str) -> str:
    match = re.search(rf'data-kpi="{key}">.*?insights-tile-value">([^<]*)<', html, re.S)
    assert match, key
    return match.group(1)


def _referral_ids(html: str) -> list[str]:
    return re.findall(r'/referrals/(ref_[a-z0-9]+)"', html)


def test_overview_shows_the_seeded_figures(client: Any, seeded: Seeded) -> None:
    html = _page(client, seeded.program_id, "overview")
    assert _kpi(html, "clicks") == str(seeded.clicks)
    assert _kpi(html, "claims") == str(len(seeded.referrals))
    assert _kpi(html, "rewarded") == str(seeded.statuses["rewarded"] + seeded.statuses["reversed"])
    assert _kpi(html, "approved") == str(seeded.statuses["rewarded"] + seeded.statuses["reversed"]
                                         + seeded.statuses["approved"])
    assert _kpi(html, "revenue") == money(seeded.revenue, "EUR")
    assert _kpi(html, "review_queue") == str(seeded.statuses["in_review"])
    for key in ("funnel", "referrals", "money", "channels", "signals"):
        assert f'id="chart-{key}"' in html and f'id="chart-{key}-narrow"' in html
    # by channel: each channel's clicks, in the chart's table
    for channel, clicks in seeded.channels.items():
        assert re.search(rf'<th scope="row">{channel}</th><td class="num">{clicks}</td>', html), channel


def test_pages_hold_no_inline_script_or_style(client: Any, seeded: Seeded) -> None:
    for path in PAGES:
        html = _page(client, seeded.program_id, path)
        assert "<script>" not in html and not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert "<style" not in html and " style=" not in html, path
    css = client.get("/dashboard/insights/charts.css")
    assert css.status_code == 200 and css.mimetype == "text/css"
    assert ".insights-chart .axis" in text(css) and "#chart-" not in text(css)


def test_overview_period_and_interval(client: Any, seeded: Seeded) -> None:
    html = _page(client, seeded.program_id, "overview?from=2020-01-01&to=2020-03-31&interval=month")
    assert _kpi(html, "claims") == "0"
    assert 'value="2020-01-01"' in html and '<option value="month" selected>' in html
    assert "Nothing in this period." in html
    weekly = _page(client, seeded.program_id, "overview?interval=week")
    assert "w/c " in weekly


def test_empty_program(client: Any, app: Any) -> None:
    empty = make_program(client, name="Empty")
    make_user(app, "new@example.test", role="viewer", program_ids=[empty.program_id])
    client = app.test_client()
    login(client, "new@example.test")
    html = _page(client, empty.program_id, "overview")
    assert _kpi(html, "clicks") == "0" and html.count("Nothing in this period.") == 5
    assert "No referrals yet" in _page(client, empty.program_id, "referrals")
    assert "No advocates yet" in _page(client, empty.program_id, "advocates")
    rewards = _page(client, empty.program_id, "rewards")
    assert "No gift cards yet." in rewards and "No rewards through the issuer yet." in rewards


@pytest.mark.parametrize("path, says", [
    ("overview?from=2026-13-01", "from must be a date"),
    ("overview?to=yesterday", "to must be a date"),
    ("overview?interval=hour", "interval must be one of"),
    ("overview?from=2026-02-01&to=2026-01-01", "from must not be after to"),
    ("overview?from=2000-01-01&to=2026-01-01&interval=day", "at most"),
    ("referrals?status=lost", "status: one of"),
    ("referrals?channel=%3Cscript%3E", "channel:"),
    ("referrals?reason=NOT%20A%20CODE", "reason:"),
    ("referrals?created_from=31/12/2025", "created_from: a date"),
    ("referrals?created_from=2026-02-01&created_to=2026-01-01", "later than"),
    ("referrals?after=not-a-cursor", "not a cursor"),
    ("referrals?q=" + "x" * 400, "q:"),
    ("advocates?sort=best", "sort: one of"),
    ("advocates?after=eyJ4IjoxfQ", "not a cursor"),
    ("rewards?status=lost", "status: one of"),
    ("rewards?card_status=lost", "status: one of"),
    ("rewards?cards_after=abc!", "not a cursor"),
])
def test_bad_query_strings_are_a_400_page(client: Any, seeded: Seeded, path: str, says: str) -> None:
    html = _page(client, seeded.program_id, path, status=400)
    assert says in html and "Bad request" in html


def test_a_cursor_of_another_list_is_refused(client: Any, seeded: Seeded, monkeypatch: Any) -> None:
    monkeypatch.setattr(insights, "PAGE_SIZE", 3)
    cursor = re.search(r'after=([A-Za-z0-9_-]+)"', _page(client, seeded.program_id, "advocates"))
    assert cursor
    _page(client, seeded.program_id, f"referrals?after={cursor.group(1)}", status=400)


def test_referral_filters(client: Any, seeded: Seeded) -> None:
    pid = seeded.program_id
    waiting = _page(client, pid, "referrals?status=in_review")
    assert f"{seeded.statuses['in_review']} referral" in waiting
    shown = re.findall(r'data-label="Status"><span class="badge ?[a-z]*">([a-z ]+)</span>', waiting)
    assert shown and set(shown) == {"in review"}
    email = _page(client, pid, "referrals?channel=email")
    assert len(_referral_ids(email)) >= 1 and "instagram</td>" not in email
    household = _page(client, pid, "referrals?reason=same_household")
    assert len(_referral_ids(household)) == 1 and "same_household" in household
    friend = _page(client, pid, "referrals?q=friend_01%40example.net")
    assert len(_referral_ids(friend)) == 1
    ann = seeded.advocate_ids["Ann Andersson"]
    mine = _page(client, pid, f"referrals?advocate_id={ann}")
    assert "Only the referrals of advocate" in mine and len(_referral_ids(mine)) == 7
    none = _page(client, pid, "referrals?created_from=2020-01-01&created_to=2020-01-31")
    assert "No referrals match these filters." in none


def test_referrals_page_through_to_the_end(client: Any, seeded: Seeded, monkeypatch: Any) -> None:
    monkeypatch.setattr(insights, "PAGE_SIZE", 10)
    seen: list[str] = []
    path = "referrals?status="
    for _ in range(10):
        html = _page(client, seeded.program_id, path)
        seen += _referral_ids(html)
        found = re.search(r'href="/dashboard/p/[^/]+/(referrals\?[^"]*after=[^"]+)" rel="next"', html)
        if not found:
            break
        path = found.group(1).replace("&amp;", "&")
        assert "First page" in _page(client, seeded.program_id, path)
    assert len(seen) == len(set(seen)) == len(seeded.referrals)
    end = _page(client, seeded.program_id, path)
    assert 'rel="next"' not in end


def test_referral_history_in_plain_words(client: Any, seeded: Seeded) -> None:
    reversed_id = next(r for r, what in seeded.referrals.items() if what == "reversed")
    html = _page(client, seeded.program_id, f"referrals/{reversed_id}")
    for words in ("claimed the referral", "recorded the qualifying purchase",
                  "completed the referral: every reward is paid", "reversed the referral",
                  "Program config version 1", "Claim rules checked (10)", "self_referral</code>: pass",
                  "The friend&#39;s payment was refunded", "Event ord_"):
        assert words in html, words
    waiting = re.findall(r"/referrals/(ref_[a-z0-9]+)", _page(client, seeded.program_id,
                                                             "referrals?reason=disposable_email"))
    review = _page(client, seeded.program_id, f"referrals/{waiting[0]}")
    assert "mailinator.com is a disposable email domain." in review
    assert "the program's policy sends to review this" in review


def _current_section(html: str) -> list[str]:
    return re.findall(r'<a href="[^"]*"\s+aria-current="(?:page|true)">([^<]+)</a>',
                      html.split('class="mainnav"', 1)[1].split("</nav>", 1)[0])


def test_the_nav_marks_the_section_of_detail_pages(client: Any, seeded: Seeded) -> None:
    pid = seeded.program_id
    referral_id = next(iter(seeded.referrals))
    advocate_id = next(iter(seeded.advocate_ids.values()))
    for path, section in (("referrals", "Referrals"), (f"referrals/{referral_id}", "Referrals"),
                          ("advocates", "Advocates"), (f"advocates/{advocate_id}", "Advocates"),
                          ("rewards", "Rewards"), ("overview", "Overview")):
        assert _current_section(_page(client, pid, path)) == [section], path


def test_unknown_and_foreign_ids_are_404(client: Any, seeded: Seeded, app: Any) -> None:
    other = make_program(client, name="Other")
    link = other.post("/v1/links", {"advocate": {"external_id": "x1", "email": "x1@example.com"}}).get_json()
    claimed = other.post("/v1/referrals/claim", {"code": link["code"], "friend": {
        "external_id": "f1", "email": "f1@example.com"}}).get_json()
    for path in ("referrals/ref_nope", f"referrals/{claimed['id']}", "advocates/adv_nope",
                 f"advocates/{link['advocate_id']}", "referrals/" + "x" * 300):
        _page(client, seeded.program_id, path, status=404)
    # A program the user is not a member of: 404 too (it is not revealed).
    _page(client, other.program_id, "overview", status=404)


def test_advocates_leaderboard_and_detail(client: Any, seeded: Seeded) -> None:
    pid = seeded.program_id
    by_clicks = _page(client, pid, "advocates?sort=clicks")
    names = re.findall(r'/advocates/adv_[a-z0-9]+">([^<]+)</a>', by_clicks)
    assert names[0] == "Ann Andersson"  # the most clicks (seeded most heavily)
    approved = _page(client, pid, "advocates")
    assert '<option value="approved" selected>' in approved
    ann = _page(client, pid, f"advocates/{seeded.advocate_ids['Ann Andersson']}")
    assert "Clicks by channel" in ann and "/r/" in ann and "ambassador" in ann
    assert "more approved referral" in ann  # the way to the next tier
    assert _page(client, pid, "advocates?q=nobody%40example.com").count("No advocate matches.") == 1


def test_rewards_page(client: Any, seeded: Seeded) -> None:
    html = _page(client, seeded.program_id, "rewards")
    assert _kpi(html, "rewards-failed") == "1"
    assert FAILED_REWARD_ERROR in _page(client, seeded.program_id, "rewards?status=failed")
    assert _kpi(html, "redeemed").startswith("EUR ") and _kpi(html, "outstanding") != "EUR 0.00"
    assert _kpi(html, "expired") == "EUR 0.00"  # the seeded cards are a year from expiry
    voided = _page(client, seeded.program_id, "rewards?card_status=voided")
    assert voided.count('class="badge bad">voided</span>') == 2  # the reversed referral's cards


def test_login_is_required(client: Any, seeded: Seeded) -> None:
    client.post("/dashboard/logout", data={"csrf_token": "x"})
    fresh = client.application.test_client()
    for path in PAGES:
        response = fresh.get(f"/dashboard/p/{seeded.program_id}/{path}")
        assert response.status_code == 302 and "/dashboard/login" in response.headers["Location"]


def test_csp_header_has_no_inline_script(client: Any, seeded: Seeded) -> None:
    response = client.get(f"/dashboard/p/{seeded.program_id}/overview")
    policy = dict(p.strip().split(" ", 1) for p in response.headers["Content-Security-Policy"].split(";"))
    assert "unsafe-inline" not in policy["script-src"] and "unsafe-inline" not in policy["style-src"]


def test_chart_text_is_escaped() -> None:
    chart = charts.by_category("x", "<b>title</b>", ["<img src=x onerror=alert(1)>"],
                               [charts.Series("<script>", [3])])
    for svg in (chart.svg, chart.svg_narrow):
        assert "<img" not in svg and "<script" not in svg and "<b>" not in svg
        assert "&lt;img src=x onerror=alert(1)&gt;" in svg


def test_chart_formats() -> None:
    assert duration(None) == "–" and duration(45) == "45 seconds" and duration(90000) == "1 day"
    assert duration(3 * 86400 + 7200) == "3.1 days"
    assert money(123456, "EUR") == "EUR 1,234.56" and money(500, "JPY") == "JPY 500"
    assert bucket_label("2026-03-02", "week") == "w/c 2 Mar" and bucket_label("2026-03-01", "month") == "Mar 2026"


def test_vendored_axe_names_its_pinned_version() -> None:
    pinned = json.loads((AXE.parent / "package.json").read_text())["dependencies"]["axe-core"]
    lock = json.loads((AXE.parent / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/axe-core"]["version"] == pinned
    first = AXE.read_text(encoding="utf-8").split("\n", 2)[:2]
    assert f"axe-core@{pinned}" in first[0] and f"axe v{pinned}" in first[1], first
