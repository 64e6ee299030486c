"""The advocate page in a real browser (Debian's Chromium under Playwright) against a live server.

One server, one program with branding, tiers and a leaderboard, one advocate with three friends
and a gift card; a second loopback server plays the shop that frames the page (its origin is in
``portal.allowed_origins``), a third one a shop that is not allowed. Screenshots go to
artifacts/screenshots/portal-*.png; axe-core finds no serious or critical violation.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

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
from tests.conftest import _clear, make_program
from tests.helpers import claim, qualify
from tests.live import live_server
from tests.portal.helpers import FRIENDS, PORTAL_CONFIG, enrol, refer_friends

pytestmark = pytest.mark.slow
LOGO = "https://cdn.acme.test/logo.svg"
LOGO_SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="160" height="40"><rect width="160" '
            'height="40" rx="6" fill="#7c2d12"/><text x="14" y="27" font-size="18" fill="#fff" '
            'font-family="sans-serif">Acme Coffee</text></svg>')


WELCOME = '<!doctype html><html lang="en"><head><title>Welcome</title></head><body><h1>Welcome</h1></body></html>'

# The shop's account page, framing the advocate page (allow: the copy button may write the clipboard).
ACCOUNT = ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
           '<meta name="viewport" content="width=device-width, initial-scale=1">'
           '<title>My account</title></head><body><main><h1>My account</h1>'
           '<iframe title="Refer a friend" src="{src}" width="100%" height="1500" '
           'allow="clipboard-write" style="border:0;max-width:100%"></iframe></main></body></html>')


class ShopPage:
    """A loopback site whose page frames ``?src=`` in an iframe, as a store's account page would."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                src = parse_qs(urlsplit(self.path).query).get("src", [""])[0]
                page = WELCOME if self.path.startswith("/welcome") else ACCOUNT.format(src=html.escape(src))
                body = page.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> ShopPage:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Site:
    """The live server, the advocate, and the shops."""

    base: str
    api: Any
    made: dict[str, Any]
    shop: ShopPage
    other_shop: ShopPage

    @property
    def page_url(self) -> str:
        return self.made["portal_url"]


@pytest.fixture(scope="module")
def site(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_browser()
    _clear(database_url)
    tmp = tmp_path_factory.mktemp("portal-browser")
    with ShopPage() as shop, ShopPage() as other_shop, \
            live_server(database_url, tmp, workers=1, threads=8) as base:
        client = LiveClient(base)
        config = {**PORTAL_CONFIG, "landing_url": f"{shop.origin}/welcome",
                  "portal": {**PORTAL_CONFIG["portal"], "logo_url": LOGO, "allowed_origins": [shop.origin]}}
        api = make_program(client, config, name="Acme")
        made = enrol(api)
        refer_friends(api, made["code"])
        issued = api.post("/v1/gift-cards", {"advocate_id": made["advocate_id"], "amount": 1500})
        assert issued.status_code == 201, issued.get_json()
        other = enrol(api, "cus_ben", "Ben Müller", "ben@mail.test")
        refer_friends_of(api, other["code"])
        yield Site(base, api, made, shop, other_shop)


def refer_friends_of(api: Any, code: str) -> None:
    """Give a second advocate one approved friend, for the leaderboard."""
    referral = claim(api, code, "friend_ben_1", "someone.else@private.test")
    qualify(api, referral["id"], at=datetime.now(UTC) - timedelta(days=30))


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture()
def page(browser: Any, site: Site) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  permissions=["clipboard-read", "clipboard-write"])
    context.route(LOGO, lambda route: route.fulfill(status=200, content_type="image/svg+xml",
                                                    body=LOGO_SVG))
    tab = context.new_page()
    seen = watch(tab)
    yield tab
    context.close()
    assert not seen.problems(), "\n".join(seen.problems())


def _check(page: Any, name: str) -> None:
    """axe-core, no sideways scrolling on a phone, screenshots at 1280 and 390 px."""
    violations = axe_violations(page)
    assert not violations, f"{name}: {describe(violations)}"
    page.set_viewport_size({"width": 390, "height": 900})
    assert overflow_x(page) <= 0, f"{name} scrolls sideways at 390 px"
    page.set_viewport_size({"width": 1280, "height": 900})
    screenshots(page, name)


@pytest.mark.parametrize(("query", "name"), [
    ("", "portal"), ("?theme=dark", "portal-dark"), ("?lang=de", "portal-de"),
    ("?embed=1&theme=light", "portal-embed"),
])
def test_the_page_is_accessible_and_fits_a_phone(page: Any, site: Site, query: str, name: str) -> None:
    response = page.goto(site.page_url + query)
    assert response.status == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp
    if "embed" not in query:  # embedded, the shop's page is the frame: no header, no logo
        assert page.locator("img.logo").evaluate("img => img.complete && img.naturalWidth > 0")
    _check(page, name)


def test_the_copy_button_copies_the_link_tagged_copy(page: Any, site: Site) -> None:
    from playwright.sync_api import expect  # here: without playwright the module still loads (skips)

    page.goto(site.page_url)
    page.click("#copy-button")
    expect(page.locator("#copy-status")).to_have_text("Link copied")
    assert page.evaluate("navigator.clipboard.readText()") == f"{site.made['url']}?ch=copy"
    page.goto(site.page_url + "?lang=de")
    page.click("#copy-button")
    expect(page.locator("#copy-status")).to_have_text("Link kopiert")


def test_share_links_carry_the_share_url_and_their_channel(page: Any, site: Site) -> None:
    page.goto(site.page_url)
    links = page.eval_on_selector_all(
        "a[data-channel]", "els => els.map(a => [a.dataset.channel, a.href, a.target, a.rel])")
    assert [c for c, *_ in links] == ["email", "sms", "whatsapp", "x", "linkedin", "facebook", "telegram"]
    for channel, href, target, rel in links:
        tagged = f"{site.made['url']}?ch={channel}"
        assert tagged in unquote(href), (channel, href)
        assert target == "_blank" and "noopener" in rel and "noreferrer" in rel
        assert " " not in href
    assert page.get_attribute("#share-link", "value") == f"{site.made['url']}?ch=copy"


def test_a_friend_through_the_qr_link_shows_up_with_its_channel(page: Any, site: Site) -> None:
    page.goto(f"{site.made['url']}?ch=qr")  # the QR code's URL: referflow redirects to the shop
    page.wait_for_url(f"{site.shop.origin}/welcome?**")
    click_id = parse_qs(urlsplit(page.url).query)["click_id"][0]
    claimed = site.api.post("/v1/referrals/claim", {
        "code": site.made["code"], "click_id": click_id,
        "friend": {"external_id": "friend_qr_5", "email": "zoe.qr@private.test"}})
    assert claimed.status_code == 201, claimed.get_json()
    page.goto(site.page_url)
    assert page.locator(".referrals li").first.inner_text().startswith("Z. signed up on")
    body = site.api.get(f"/v1/advocates/{site.made['advocate_id']}/portal").get_json()
    assert body["referrals"][0]["channel"] == "qr"


def test_no_friend_data_beyond_a_first_name_or_initial_is_in_the_page(page: Any, site: Site) -> None:
    page.goto(site.page_url)
    content = page.content().lower()
    for friend_id, email in (*FRIENDS, ("friend_ben_1", "someone.else@private.test")):
        for secret in (friend_id, email, email.split("@")[0]):
            assert secret.lower() not in content, secret
    for other in ("müller", "ben@mail.test", "cus_ben", "schmidt", "anna.schmidt"):
        assert other not in content, other
    leaders = page.locator(".leaderboard li").all_inner_texts()
    assert leaders[0].startswith("Anna (you)") and leaders[1].startswith("Ben")


def test_the_page_embeds_in_an_allowed_shop_and_nowhere_else(browser: Any, site: Site) -> None:
    token = site.api.post(f"/v1/advocates/{site.made['advocate_id']}/portal/tokens").get_json()
    src = f"{token['url']}?embed=1"
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  permissions=["clipboard-read", "clipboard-write"])
    try:
        shop = context.new_page()
        seen = watch(shop)
        shop.goto(f"{site.shop.origin}/?src={src}")
        frame = shop.frame_locator("iframe")
        frame.locator("h1").wait_for()
        assert "Hi Anna" in frame.locator("h1").inner_text()
        frame.locator("#copy-button").click()
        frame.locator("#copy-status").filter(has_text="Link copied").wait_for()
        assert not seen.problems(), "\n".join(seen.problems())
        screenshots(shop, "portal-in-shop")
        blocked = context.new_page()
        blocked.goto(f"{site.other_shop.origin}/?src={src}")
        blocked.wait_for_timeout(500)
        inner = blocked.frames[1] if len(blocked.frames) > 1 else None
        assert inner is None or "Hi Anna" not in (inner.content() or "")
    finally:
        context.close()
