"""The advocate page shows every reward kind by its kind, in a real browser (Chromium).

A program whose advocate earns a Shopify ``percent`` code, then (Silver) a perk, then (Gold) a
Stripe ``free_period``, then (Platinum) a Stripe ``amount`` code: four approved friends, the
discounts issued in the background against the store fakes. The page says "15% off" with the
code and its expiry, the perk's name, "1 month free", "€10.00 off", never "€0.00"; the same in
German. Screenshots: artifacts/screenshots/portal-kinds-*.png.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.browser import (
    LiveClient,
    axe_violations,
    chromium,
    describe,
    overflow_x,
    require_browser,
    screenshots,
    watch,
)
from tests.conftest import PROGRAM_CONFIG, _clear, make_program
from tests.fakes.shopify import SHOP, TOKEN, FakeShopify
from tests.fakes.stripe import API_KEY, FakeStripe
from tests.helpers import claim, qualify
from tests.live import live_server
from tests.portal.helpers import enrol

pytestmark = pytest.mark.slow
ADVOCATE = "cus_AdvocateAnn"
VIP = "VIP support for a year"
KINDS_CONFIG: dict[str, Any] = {
    **PROGRAM_CONFIG, "hold_days": 0,
    "rewards": {"advocate": {"type": "percent", "percent": 15, "provider": "shopify",
                             "expiry_days": 60},
                "friend": {"type": "none"}},
    "tiers": [{"name": "Silver", "min_approved": 1,
               "advocate_reward": {"type": "non_cash", "perk": VIP}},
              {"name": "Gold", "min_approved": 2,
               "advocate_reward": {"type": "free_period", "provider": "stripe"}},
              {"name": "Platinum", "min_approved": 3,
               "advocate_reward": {"type": "amount", "amount": 1000, "provider": "stripe"}},
              {"name": "Diamond", "min_approved": 10, "perks": ["Dinner with the founders"]}],
    "portal": {"name": "Acme Coffee", "colours": {"primary": "#7c2d12", "accent": "#b45309"}},
}


@dataclass
class KindsSite:
    """The live server and the advocate whose rewards are of every kind."""

    api: Any
    made: dict[str, Any]


def _wait_for_rewards(api: Any, advocate_id: str, count: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        body = api.get(f"/v1/advocates/{advocate_id}/portal").get_json()
        issued = body["rewards"]["issued"]
        if len(issued) == count and all(r["status"] == "issued" for r in issued):
            return body
        assert time.monotonic() < deadline, issued
        time.sleep(0.5)


@pytest.fixture(scope="module")
def kinds_site(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KindsSite]:
    require_browser()
    _clear(database_url)
    tmp = tmp_path_factory.mktemp("portal-kinds")
    with FakeShopify() as shopify, FakeStripe() as stripe, live_server(
            database_url, tmp, workers=1, threads=8, REFERFLOW_SHOPIFY_API_BASE=shopify.base,
            REFERFLOW_STRIPE_API_BASE=stripe.base) as base:
        stripe.subscriptions["sub_AnnPro"] = {"id": "sub_AnnPro", "object": "subscription",
                                              "customer": ADVOCATE, "status": "active",
                                              "discounts": []}
        api = make_program(LiveClient(base), KINDS_CONFIG, name="Acme")
        api.put("/v1/providers/stripe", {"credentials": {"api_key": API_KEY}})
        api.put("/v1/providers/shopify", {"credentials": {"shop": SHOP, "access_token": TOKEN}})
        made = enrol(api, ADVOCATE)
        for n, friend in enumerate(("Jonas", "Mia", "Li", "Zoe")):
            referral = claim(api, made["code"], f"friend_{n}", f"{friend.lower()}@private.test")
            qualify(api, referral["id"], at=datetime.now(UTC) - timedelta(days=1))
        _wait_for_rewards(api, made["advocate_id"], 4)
        yield KindsSite(api, made)


@pytest.fixture(scope="module")
def browser(kinds_site: KindsSite) -> Iterator[Any]:
    with chromium() as b:
        yield b


def test_the_json_gives_each_reward_its_kind(kinds_site: KindsSite) -> None:
    body = kinds_site.api.get(f"/v1/advocates/{kinds_site.made['advocate_id']}/portal").get_json()
    issued = sorted(body["rewards"]["issued"], key=lambda r: r["kind"])
    assert [(r["kind"], r["label"]) for r in issued] == [
        ("amount", "€10.00 off"), ("free_period", "1 month free"), ("non_cash", VIP),
        ("percent", "15% off")]
    by_kind = {r["kind"]: r for r in issued}
    assert by_kind["percent"]["code"] and by_kind["percent"]["expires_at"]
    assert by_kind["amount"]["code"] and by_kind["amount"]["amount"] == 1000
    assert by_kind["non_cash"]["perks"] == [VIP] and by_kind["non_cash"]["code"] is None
    assert by_kind["free_period"]["months"] == 1
    assert sorted(r["reward_shown"]["label"] for r in body["referrals"]) == sorted(
        r["label"] for r in issued)
    assert body["rewards"]["per_friend"] == "€10.00 off"
    assert body["tier"]["current"] == "Platinum" and body["tier"]["next_perks"] == [
        "Dinner with the founders"]
    german = kinds_site.api.get(
        f"/v1/advocates/{kinds_site.made['advocate_id']}/portal?lang=de").get_json()
    assert sorted(r["label"] for r in german["rewards"]["issued"]) == [
        "1 Monat gratis", "10,00\xa0€ Rabatt", "15\xa0% Rabatt", VIP]


@pytest.mark.parametrize(("query", "name"), [("", "portal-kinds"), ("?lang=de", "portal-kinds-de")])
def test_the_page_says_each_reward_by_its_kind(browser: Any, kinds_site: KindsSite, query: str,
                                               name: str) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        seen = watch(page)
        assert page.goto(kinds_site.made["portal_url"] + query).status == 200
        rewards = page.locator(".issued .reward-what").all_inner_texts()
        text = page.locator("main").inner_text()
        assert not re.search(r"(?<![\d,.])0[.,]00", text)  # no reward said as €0.00
        if query:
            assert sorted(rewards) == ["1 Monat gratis", "10,00\xa0€ Rabatt", "15\xa0% Rabatt", VIP]
            assert "Gültig bis" in text
        else:
            assert sorted(rewards) == ["1 month free", "15% off", VIP, "€10.00 off"]
            codes = page.locator(".issued dd.code").all_inner_texts()
            assert len(codes) == 2 and all(len(c) == 16 for c in codes)
            assert "You get €10.00 off for each friend" in text
            assert f"placed an order. You earned {VIP}." in text
            assert "Earned so far" not in text
            assert "At Diamond: Dinner with the founders." in text
        violations = axe_violations(page)
        assert not violations, describe(violations)
        page.set_viewport_size({"width": 390, "height": 900})
        assert overflow_x(page) <= 0
        page.set_viewport_size({"width": 1280, "height": 900})
        screenshots(page, name)
        assert not seen.problems(), "\n".join(seen.problems())
    finally:
        context.close()
