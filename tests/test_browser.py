"""The dashboard in a real headless chromium (Debian's, driven by Playwright).

Logs in, sees live numbers change while the fake engine's feed runs, presses
the kill switch, confirms, sees HALTED, and saves a screenshot.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import pytest

from tests.api_fixtures import PASSWORD, api_env

CHROMIUM = Path(os.environ.get("ACTORTRADER_CHROMIUM", "/usr/bin/chromium"))
playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install playwright)")
expect = playwright_api.expect
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} missing (apt-get install chromium)"),
]
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@contextlib.contextmanager
def logged_in_dashboard(url: str):
    """Chromium on the dashboard at ``url``, logged in as alice; yields (page, console errors)."""
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            console_errors: list[str] = []
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.goto(url + "/")
            page.fill("#username", "alice")
            page.fill("#password", PASSWORD)
            page.click("#login-button")
            page.wait_for_selector("#dashboard:not([hidden])", timeout=10_000)
            # expect() runs in Playwright's isolated world: page.wait_for_function would need
            # eval, which our CSP (rightly) forbids.
            expect(page.locator("#stream-status")).to_have_text("live", timeout=10_000)
            yield page, console_errors
        finally:
            browser.close()


def press_kill_switch_and_see_halted(page, console_errors: list[str], shot: Path) -> None:
    """Press the kill switch, confirm, see HALTED, save a screenshot; no CSP violation on the way."""
    page.click("#btn-kill")
    page.wait_for_selector("#confirm[open]", timeout=5_000)
    page.click("#confirm-yes")
    expect(page.locator("#trading-state")).to_have_text("HALTED", timeout=10_000)
    assert "HALTED" in page.get_attribute("#trading-state", "class")
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert not [e for e in console_errors if "Content Security Policy" in e], console_errors


def test_dashboard_login_live_numbers_and_kill_switch(tmp_path):
    with api_env(tmp_path, requests_per_minute=60) as env:
        env.engine.start_feed(interval_s=0.1)
        with logged_in_dashboard(env.server.url) as (page, console_errors):
            # Live numbers: the ticks counter and the fill count move while the feed runs.
            ticks = page.locator("#ticks")
            expect(ticks).to_have_text(re.compile(r"\d"), timeout=10_000)
            first = ticks.text_content()
            expect(ticks).not_to_have_text(first, timeout=10_000)
            expect(page.locator("#fill-count")).to_have_text(re.compile(r"^([3-9]|\d{2,})$"), timeout=10_000)
            assert page.text_content("#trading-state") == "ACTIVE"
            assert page.locator("#actors tr").count() >= 1 and page.text_content("#rss").endswith("MiB")
            assert page.is_visible("#btn-kill")  # admin sees the controls
            shot = Path(os.environ.get("ACTORTRADER_SCREENSHOT_DIR", tmp_path)) / "dashboard-halted.png"
            press_kill_switch_and_see_halted(page, console_errors, shot)
        safety = env.engine.directory.ref("safety").proxy()
        assert safety.killed.get(timeout=5) is True  # the click reached the engine
