"""The real-browser harness: Debian's Chromium driven by Playwright against a live referflow.

Never ``playwright install``: it downloads browsers from outside. Playwright drives the system's
Chromium (``apt-get install chromium``; ``.ci/run`` installs it when missing). Without it the
browser tests skip, unless REFERFLOW_REQUIRE_BROWSER=1 (CI) makes them fail.

- :func:`chromium` starts the browser; :func:`watch` records a page's console errors, uncaught
  exceptions and failed requests, which the tests assert are empty.
- :func:`screenshots` saves a page at 1280 and 390 px wide under ``artifacts/screenshots/``
  (gitignored; ``.ci/run`` prints the folder to keep as CI artifacts).
- :func:`axe_violations` runs axe-core (``tests/vendor/axe.min.js``, pinned from npm) in the page.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("REFERFLOW_CHROMIUM", "/usr/bin/chromium"))
# Root in CI needs --no-sandbox; the rest keeps the browser off the network and quiet.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
AXE = ROOT / "tests" / "vendor" / "axe.min.js"
WIDTHS = (1280, 390)
HEIGHT = 900
BLOCKING = ("serious", "critical")


def require_browser() -> None:
    """Skip (or fail, when REFERFLOW_REQUIRE_BROWSER=1) if Playwright or Chromium is missing."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[test]')")
    if not (CHROMIUM.exists() or shutil.which(str(CHROMIUM))):
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    if not missing:
        return
    why = "real-browser tests need " + " and ".join(missing)
    if os.environ.get("REFERFLOW_REQUIRE_BROWSER") == "1":
        pytest.fail(why)
    pytest.skip(why)


@contextmanager
def chromium() -> Iterator[Any]:
    """Start the system's Chromium under Playwright; yield the Browser."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watch:
    """What went wrong in a page while it was watched: console errors, exceptions, failed loads."""

    console: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Return every problem seen, one line each."""
        return ([f"console: {m}" for m in self.console] + [f"exception: {m}" for m in self.exceptions]
                + [f"failed request: {m}" for m in self.failed])

    def clear(self) -> None:
        """Forget what was seen (after a step that fails on purpose, e.g. a 403 page)."""
        self.console.clear()
        self.exceptions.clear()
        self.failed.clear()


def watch(page: Any) -> Watch:
    """Record the page's console errors, uncaught exceptions and failed requests from now on."""
    seen = Watch()
    page.on("console", lambda msg: seen.console.append(f"{msg.text} ({page.url})")
            if msg.type == "error" and not _expected_status(msg.text) else None)
    page.on("pageerror", lambda exc: seen.exceptions.append(f"{exc} ({page.url})"))
    page.on("requestfailed", lambda req: seen.failed.append(f"{req.method} {req.url}: {req.failure}"))
    return seen


def _expected_status(text: str) -> bool:
    # Chromium logs every 4xx document as a console error; the tests that open a 403 or 404
    # page on purpose assert its status themselves.
    return text.startswith("Failed to load resource: the server responded with a status of 4")


def screenshots(page: Any, name: str) -> list[Path]:
    """Save the page, full length, at each width in WIDTHS; return the files (name-WIDTH.png)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    saved = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": HEIGHT})
        path = SCREENSHOTS / f"{name}-{width}.png"
        page.screenshot(path=str(path), full_page=True)
        saved.append(path)
    page.set_viewport_size(before)
    return saved


def overflow_x(page: Any) -> int:
    """Return by how many CSS pixels the page is wider than the window (0: no sideways scroll)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


def axe_violations(page: Any, impacts: tuple[str, ...] = BLOCKING) -> list[dict[str, Any]]:
    """Run axe-core in the page; return its violations of the given impacts (WCAG 2.x A/AA)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # The page's CSP allows no inline script, so the file is evaluated through the DevTools
        # protocol rather than added as a <script> element (which the CSP would refuse).
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: 'tag',
            values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']},
            resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ': ' + n.failureSummary)}));
    }""")
    return [v for v in result if v["impact"] in impacts]


class LiveResponse:
    """A requests response that reads like a Flask test response (for tests/conftest.Api)."""

    def __init__(self, response: Any):
        self.response = response
        self.status_code = response.status_code
        self.headers = response.headers

    def get_json(self) -> Any:
        return self.response.json() if self.response.content else None


class LiveClient:
    """Speaks to a live server with the Flask test client's calls, so conftest.Api and
    make_program drive it as they drive the in-process app."""

    def __init__(self, base: str):
        import requests

        self.base = base
        self.http = requests.Session()

    def _send(self, method: str, path: str, json: Any = None, headers: dict[str, str] | None = None) -> LiveResponse:
        return LiveResponse(self.http.request(method, self.base + path, json=json, headers=headers,
                                              allow_redirects=False, timeout=30))

    def get(self, path: str, headers: dict[str, str] | None = None) -> LiveResponse:
        return self._send("GET", path, headers=headers)

    def post(self, path: str, json: Any = None, headers: dict[str, str] | None = None) -> LiveResponse:
        return self._send("POST", path, json, headers)

    def put(self, path: str, json: Any = None, headers: dict[str, str] | None = None) -> LiveResponse:
        return self._send("PUT", path, json, headers)


def describe(violations: list[dict[str, Any]]) -> str:
    """Format axe violations for an assertion message."""
    return json.dumps(violations, indent=2)
