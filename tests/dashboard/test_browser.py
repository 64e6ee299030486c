"""The dashboard in a real browser (Debian's Chromium under Playwright) against a live server.

One server and one seeded program for the module (tests/dashboard/insights_seed.py), a second
program to switch to, three users (owner, reviewer, viewer). Every page is opened at 1280 and
390 px wide and saved under artifacts/screenshots/, checked with axe-core (no serious or
critical violation), for its CSP header and for sideways scrolling on a phone; every test fails
on a console error, an uncaught exception or a failed request.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from referflow.actions import users
from referflow.actions.events import EVENT_TYPES
from referflow.dashboard.insights_figures import money
from referflow.storage.crypto import Keyring
from referflow.storage.db import Database
from referflow.storage.models import Reward, WebhookDelivery
from tests.browser import (
    ROOT,
    LiveClient,
    axe_violations,
    chromium,
    describe,
    overflow_x,
    require_browser,
    screenshots,
    watch,
)
from tests.conftest import SECRET_KEY, _clear, make_program
from tests.dashboard.insights_seed import FAILED_REWARD_ERROR, Seeded, seed
from tests.dashboard_helpers import PASSWORD, make_user
from tests.live import live_server
from tests.receiver import Receiver

pytestmark = pytest.mark.slow
OWNER, REVIEWER, VIEWER = "owner@example.test", "reviewer@example.test", "viewer@example.test"


@dataclass
class Site:
    """The live server and what is in it."""

    base: str
    made: Seeded
    other_program: str
    receiver: Receiver
    db: Database

    def url(self, page: str, program_id: str | None = None) -> str:
        return f"{self.base}/dashboard/p/{program_id or self.made.program_id}/{page}"


@pytest.fixture(scope="module")
def site(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_browser()
    _clear(database_url)
    db = Database(database_url, Keyring([SECRET_KEY]))
    tmp = tmp_path_factory.mktemp("browser")
    try:
        with Receiver() as receiver, live_server(database_url, tmp, workers=1, threads=8,
                                                 REFERFLOW_ALLOW_PRIVATE_WEBHOOK_URLS="1") as base:
            client = LiveClient(base)
            made = seed(client, db, run_jobs=lambda: _settle(db))
            other = make_program(client, name="Beta Bikes")
            subscribed = made.api.post("/v1/webhooks", {"url": receiver.url, "events": ["*"]})
            assert subscribed.status_code == 201, subscribed.get_json()
            made.api.post("/v1/links", {"advocate": {"external_id": "cus_late", "email": "late@example.com"}})
            make_user(db, OWNER, role="owner", program_ids=[made.program_id, other.program_id])
            make_user(db, REVIEWER, role="reviewer", program_ids=[made.program_id])
            make_user(db, VIEWER, role="viewer", program_ids=[made.program_id])
            _wait(lambda: receiver.requests, "the webhook delivery")
            yield Site(base, made, other.program_id, receiver, db)
    finally:
        db.dispose()


def _settle(db: Database) -> None:
    """Wait until the server's job runner has issued every reward it was given."""
    def settled() -> bool:
        with db.session() as session:
            return not session.scalar(select(func.count()).select_from(Reward).where(
                Reward.status.in_(["pending", "issuing"])))
    _wait(settled, "the rewards to be issued")


def _wait(check: Any, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Any]:
    with chromium() as b:
        yield b


def _login(browser: Any, site: Site, email: str, **context: Any) -> tuple[Any, Any]:
    page = browser.new_context(viewport={"width": 1280, "height": 900}, **context).new_page()
    seen = watch(page)
    page.goto(f"{site.base}/dashboard/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/dashboard/p/"))
    return page, seen


@pytest.fixture()
def owner(browser: Any, site: Site) -> Iterator[tuple[Any, Any]]:
    page, seen = _login(browser, site, OWNER)
    yield page, seen
    page.context.close()
    assert not seen.problems(), "\n".join(seen.problems())


@pytest.fixture()
def reviewer(browser: Any, site: Site) -> Iterator[tuple[Any, Any]]:
    page, seen = _login(browser, site, REVIEWER)
    yield page, seen
    page.context.close()
    assert not seen.problems(), "\n".join(seen.problems())


def _open(page: Any, url: str, status: int = 200) -> Any:
    response = page.goto(url)
    assert response.status == status, (url, response.status)
    return response


def _check_page(page: Any, response: Any, name: str) -> None:
    """The checks every page passes: CSP, axe, no sideways scroll on a phone, screenshots."""
    csp = response.headers["content-security-policy"]
    script_src = next(p for p in csp.split(";") if p.strip().startswith(("script-src", "default-src")))
    assert "unsafe-inline" not in script_src and "unsafe-eval" not in csp, csp
    violations = axe_violations(page)
    assert not violations, f"{name}: {describe(violations)}"
    page.set_viewport_size({"width": 390, "height": 900})
    assert overflow_x(page) <= 0, f"{name} scrolls sideways at 390 px"
    page.set_viewport_size({"width": 1280, "height": 900})
    screenshots(page, name)


def test_every_page_is_accessible_strict_and_fits_a_phone(owner: Any, site: Site) -> None:
    page, _seen = owner
    made = site.made
    in_review = next(r for r, s in _statuses(site).items() if s == "in_review")
    with site.db.session() as session:
        reviewer_id = users.find_user(session, REVIEWER).id
    pages = {
        "overview": site.url("overview"),
        "referrals": site.url("referrals"),
        "referrals-filtered": site.url("referrals?status=rewarded&channel=email"),
        "referral": site.url(f"referrals/{made.claim_order[0]}"),
        "advocates": site.url("advocates"),
        "advocate": site.url(f"advocates/{made.advocate_ids['Ann Andersson']}"),
        "rewards": site.url("rewards"),
        "reviews": site.url("reviews"),
        "review": site.url(f"reviews/{in_review}"),
        "webhooks": site.url("webhooks"),
        "settings": site.url("settings"),
        "users": site.url("users"),
        "member-account": site.url(f"users/{reviewer_id}"),
        "overview-empty-program": site.url("overview", site.other_program),
        "referrals-empty-program": site.url("referrals", site.other_program),
        "bad-request": site.url("referrals?status=nope"),
    }
    for name, url in pages.items():
        response = _open(page, url, 400 if name == "bad-request" else 200)
        _check_page(page, response, name)


def test_overview_figures_match_the_seeded_traffic(owner: Any, site: Site) -> None:
    page, _seen = owner
    _open(page, site.url("overview"))
    made = site.made

    def kpi(key: str) -> str:
        return page.inner_text(f"[data-kpi={key}] .insights-tile-value")

    assert kpi("clicks") == f"{made.clicks:,}"
    assert kpi("claims") == f"{len(made.referrals):,}"
    assert kpi("revenue") == money(made.revenue, "EUR")
    assert kpi("review_queue") == str(made.statuses["in_review"])
    assert page.locator("svg.insights-chart-wide:visible").count() == 5
    page.set_viewport_size({"width": 390, "height": 900})  # a phone gets the narrow drawings
    assert page.locator("svg.insights-chart-narrow:visible").count() == 5
    assert page.locator("svg.insights-chart-wide:visible").count() == 0
    page.set_viewport_size({"width": 1280, "height": 900})
    if os.environ.get("REFERFLOW_DOCS_SCREENSHOT") == "1":  # the README's picture (docs/dashboard.md)
        page.set_viewport_size({"width": 1280, "height": 1400})
        page.screenshot(path=str(ROOT / "docs" / "img" / "dashboard-overview.png"))
        page.set_viewport_size({"width": 1280, "height": 900})
    # The funnel's figures are in a table too (for screen readers and without the chart).
    page.click("#funnel-heading ~ details summary")
    assert page.inner_text("#funnel-heading ~ details table").count(f"{made.clicks:,}") >= 1


def test_charts_render_without_javascript(browser: Any, site: Site) -> None:
    page, seen = _login(browser, site, VIEWER, java_script_enabled=False)
    _open(page, site.url("overview"))
    box = page.locator("#chart-funnel").bounding_box()
    assert box and box["width"] > 300 and box["height"] > 150
    assert page.locator("#chart-funnel rect.rect").count() == 5  # pygal's bars
    page.context.close()
    assert not seen.problems(), "\n".join(seen.problems())


def test_filter_referrals_then_read_a_history(owner: Any, site: Site) -> None:
    page, _seen = owner
    _open(page, site.url("referrals"))
    page.select_option("#f-status", "in_review")
    page.click("form[aria-label=Filters] button[type=submit]")
    page.wait_for_url(re.compile(r"status=in_review"))
    rows = page.locator("table.insights-referrals tbody tr")
    assert rows.count() == site.made.statuses["in_review"]
    assert all(t.strip() == "in review" for t in page.locator("tbody td[data-label=Status]").all_inner_texts())
    rows.first.locator("a").first.click()
    page.wait_for_url(re.compile(r"/referrals/ref_"))
    history = page.inner_text(".insights-history")
    assert "claimed the referral" in history and "Program config version 1" in history
    signals = page.inner_text("#signals-heading + ul")
    assert "the program's policy sends to review this" in signals


def test_rewards_page_shows_the_failed_reward_and_liability(owner: Any, site: Site) -> None:
    page, _seen = owner
    _open(page, site.url("rewards?status=failed"))
    assert FAILED_REWARD_ERROR in page.inner_text("main")
    assert page.inner_text("[data-kpi=rewards-failed] .insights-tile-value") == "1"
    assert page.inner_text("[data-kpi=outstanding] .insights-tile-value").startswith("EUR ")


def test_reviewer_approves_and_declines(reviewer: Any, site: Site) -> None:
    page, _seen = reviewer
    waiting = [r for r, s in _statuses(site).items() if s == "in_review"]
    assert len(waiting) >= 2
    for referral_id, decision in zip(waiting, ("approve", "decline"), strict=False):
        _open(page, site.url(f"reviews/{referral_id}"))
        page.fill("#one-note", f"checked by the browser test: {decision}")
        page.click(f"button[name=decision][value={decision}]")
        page.wait_for_load_state()
        status = site.made.api.get(f"/v1/referrals/{referral_id}").get_json()["status"]
        assert status != "in_review", (decision, status)
        if decision == "decline":
            assert status == "rejected"
        _open(page, site.url(f"referrals/{referral_id}"))
        assert f"checked by the browser test: {decision}" in page.inner_text(".insights-history")
        assert REVIEWER in page.inner_text(".insights-history")


def test_replay_a_webhook_delivery(reviewer: Any, site: Site) -> None:
    page, _seen = reviewer
    before = len(site.receiver.requests)
    _open(page, site.url("webhooks"))
    page.click("a:has-text('Deliveries')")
    page.wait_for_url(re.compile(r"/webhooks/"))
    page.locator("button:has-text('Replay')").first.click()
    page.wait_for_load_state()
    assert "will be sent again" in page.inner_text(".flashes")
    _wait(lambda: len(site.receiver.requests) > before, "the replayed delivery")
    with site.db.session() as session:
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) >= 1


def test_owner_adds_and_removes_a_webhook_endpoint(owner: Any, site: Site) -> None:
    page, _seen = owner
    hook = f"{site.receiver.url}/added-in-the-browser"  # loopback: the module's receiver
    _check_page(page, _open(page, site.url("webhooks")), "webhooks-add-form")
    url = page.get_by_label("URL", exact=True)
    url.fill("http://127.1/hook")  # refused by the guard as written: no lookup, no connection
    with page.expect_navigation() as refused:
        page.click("button:has-text('Add endpoint')")
    assert refused.value.status == 422 and url.input_value() == "http://127.1/hook"
    assert "not a valid host name" in page.inner_text("#add-errors")
    _check_page(page, refused.value, "webhooks-refused")
    url.fill(hook)
    page.get_by_role("group", name="Events to send").get_by_label("ask.decided").uncheck()
    with page.expect_navigation() as added:
        page.click("button:has-text('Add endpoint')")
    assert added.value.status == 201
    secret = page.inner_text("#new-secret")
    assert secret.startswith("whsec_") and "shown only this once" in page.inner_text("main")
    assert "added: it receives the events" in page.inner_text(".flashes")
    _check_page(page, added.value, "webhooks-secret")
    sub = next(s for s in site.made.api.get("/v1/webhooks").get_json()["items"] if s["url"] == hook)
    assert sub["events"] == sorted(set(EVENT_TYPES) - {"ask.decided"})
    _open(page, site.url("webhooks"))
    assert secret not in page.content()
    with page.expect_navigation() as asked:
        page.click(f"a[href$='/webhooks/{sub['id']}/remove']")
    _check_page(page, asked.value, "webhooks-remove-confirm")
    with page.expect_navigation():
        page.click("button:has-text('Remove endpoint')")
    assert "Endpoint removed" in page.inner_text(".flashes") and hook not in page.inner_text("main")
    assert all(s["id"] != sub["id"] for s in site.made.api.get("/v1/webhooks").get_json()["items"])


def test_owner_edits_the_config(owner: Any, site: Site) -> None:
    page, _seen = owner
    _open(page, site.url("settings"))
    raw = json.loads(page.input_value("#config-text"))
    raw["hold_days"] = 10
    page.fill("#config-text", json.dumps(raw, indent=2))
    page.click("button:has-text('Save config')")
    page.wait_for_load_state()
    program = site.made.api.get("/v1/program").get_json()
    assert program["config"]["hold_days"] == 10
    assert f"config version {program['config_version']}" in page.inner_text("main")


def test_reviewer_cannot_edit_the_config(reviewer: Any, site: Site) -> None:
    page, seen = reviewer
    _open(page, site.url("settings"))
    assert page.locator("#config-text").count() == 0 or page.locator("#config-text").is_disabled()
    assert page.locator("button:has-text('Save config')").count() == 0
    # A hand-made POST (with a valid CSRF token) is refused too.
    token = page.evaluate("document.querySelector('input[name=csrf_token]').value")
    status = page.evaluate("""async ([url, token]) => (await fetch(url, {method: 'POST',
        headers: {'Content-Type': 'application/x-www-form-urlencoded'},
        body: new URLSearchParams({csrf_token: token, form: 'raw', config: '{}'})})).status""",
                           [site.url("settings"), token])
    assert status == 403
    seen.clear()  # the 403 is logged by the browser


def test_switch_programs_keeps_the_page(owner: Any, site: Site) -> None:
    page, _seen = owner
    _open(page, site.url("advocates"))
    page.select_option("#program-switcher", site.other_program)  # dashboard.js submits on change
    page.wait_for_url(re.compile(rf"/p/{site.other_program}/advocates"))
    assert "No advocates yet" in page.inner_text("main")


def _statuses(site: Site) -> dict[str, str]:
    return {rid: site.made.api.get(f"/v1/referrals/{rid}").get_json()["status"]
            for rid in site.made.referrals}


def test_sign_out_everywhere_from_the_account_page(browser: Any, site: Site) -> None:
    email = "leaver@example.test"
    make_user(site.db, email, role="viewer", program_ids=[site.made.program_id])
    (page, seen), (elsewhere, seen_elsewhere) = (_login(browser, site, email) for _ in range(2))
    page.click(f"header a:has-text('{email}')")
    page.wait_for_url(re.compile(r"/dashboard/account$"))
    _check_page(page, _open(page, f"{site.base}/dashboard/account"), "account")
    page.click("button:has-text('Sign out everywhere')")
    page.wait_for_url(re.compile(r"/dashboard/login$"))
    assert "signed out everywhere" in page.inner_text(".flashes")
    _open(elsewhere, site.url("overview"))  # the other browser lands on the login
    assert re.search(r"/dashboard/login\?next=", elsewhere.url)
    assert page.locator("input[name=password]").count() == 1
    for each, watched in ((page, seen), (elsewhere, seen_elsewhere)):
        each.context.close()
        assert not watched.problems(), "\n".join(watched.problems())
