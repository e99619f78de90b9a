"""report.html opened in a real headless Chromium (Debian's, driven by Playwright without a
browser of its own): the page loads offline from file:// with no console error, fetches
nothing, draws the series and shadings the plots promise, and fits the window."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from harness.report.html import render_html
from tests.unit.test_report_html import Episode, make_doc

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# No GPU, no network of its own (updates, sync, safe browsing): CI machines have neither.
ARGS = [
    "--no-sandbox",  # root in CI
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDTH = 1280

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="no chromium binary (Debian: apt-get install chromium; scripts/setup.sh does)",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


class Opened:
    """A report open in a page, with every console message, page error and request seen."""

    def __init__(self, browser: Browser, path: Path) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page: Page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        self.page.on(
            "console",
            lambda m: (
                self.errors.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.as_uri(), wait_until="load")

    def ids(self, selector: str) -> set[str]:
        found = self.page.eval_on_selector_all(selector, "els => els.map(e => e.id)")
        return set(found)

    def drawn(self, selector: str) -> bool:
        """The element is there and takes room on the page (a line with no points does not)."""
        box = self.page.locator(selector).first.bounding_box()
        return box is not None and box["width"] > 0 and box["height"] > 0


def open_report(browser: Browser, doc: dict[str, object], tmp_path: Path) -> Opened:
    path = tmp_path / "report.html"
    path.write_text(render_html(doc))
    return Opened(browser, path)


def test_a_report_opens_offline_without_errors_and_draws_every_series(
    browser: Browser, tmp_path: Path
) -> None:
    doc = make_doc(duration_s=300.0, episodes=(Episode(150.0, hold_s=3.0, outage_s=1.5),))
    opened = open_report(browser, doc, tmp_path)
    page = opened.page
    assert opened.errors == []
    assert all(url.startswith("file://") for url in opened.requests), opened.requests
    assert page.locator("#verdict").inner_text() == "PASS"
    assert page.locator("#verdict").evaluate("e => getComputedStyle(e).color") == "rgb(26, 127, 55)"

    series = opened.ids('#figure-run svg [id^="series-"]')
    assert {
        "series-p50",
        "series-p99",
        "series-error-rate",
        "series-availability-frontend",
        "series-availability-node-0",
        "series-head-lag-node-0",
        "series-head-lag-frontend",
    } <= series
    for gid in ("series-p99", "series-error-rate", "series-availability-frontend"):
        assert opened.drawn(f"#{gid}"), f"{gid} takes no room on the page"
    shading = opened.ids('#figure-run svg [id^="fault-window-1-"]')
    assert shading == {
        f"fault-window-1-{p}" for p in ("lane", "latency", "errors", "availability", "head-lag")
    }
    assert opened.drawn("#fault-window-1-latency")
    assert opened.drawn("#figure-episode-1 #e1-marker-ttd-1-latency")  # the zoom's detail

    # Readable at a laptop's width: nothing wider than the window.
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000  # a page of plots and tables, not a blank one


def test_a_game_day_without_load_shades_each_episode_in_chromium(
    browser: Browser, tmp_path: Path
) -> None:
    doc = make_doc(
        duration_s=90.0,
        load=False,
        episodes=(Episode(20.0), Episode(45.0, ttd_s=None), Episode(70.0)),
        p99_baseline_ms=80.0,
    )
    opened = open_report(browser, doc, tmp_path)
    assert opened.errors == []
    assert opened.page.locator("#verdict").inner_text() == "FAIL"
    assert {"series-error-rate", "series-probe-max"} <= opened.ids('svg [id^="series-"]')
    windows = opened.ids('#figure-run svg [id^="fault-window-"][id$="-errors"]')
    assert windows == {"fault-window-1-errors", "fault-window-2-errors", "fault-window-3-errors"}
    rows = opened.page.locator("#verdicts + p + .scroll tbody tr")
    assert rows.count() == 6
    assert rows.first.locator("td").first.inner_text() == "1: kill node-0"
