"""The dashboard in a real headless chromium against the REAL engine (synthetic feed, paper venue).

Logs in, sees live numbers change while the synthetic feed runs (ticks from the
monitor, fills from the journal path), presses the kill switch, confirms, sees
HALTED (and the engine really is halted), and saves a screenshot.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.api_fixtures import real_engine_env
from tests.test_browser import CHROMIUM, logged_in_dashboard, press_kill_switch_and_see_halted

playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install playwright)")
expect = playwright_api.expect
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} missing (apt-get install chromium)"),
]


def test_real_engine_dashboard_live_numbers_and_kill_switch(tmp_path):
    with real_engine_env(tmp_path, rate=2000.0) as env:
        with logged_in_dashboard(env.server.url) as (page, console_errors):
            expect(page.locator("#trading-state")).to_have_text("ACTIVE", timeout=10_000)
            # Live numbers from the real engine: the tick counter moves, throughput is shown,
            # the strategy's fills arrive, the actor tree lists the real actors.
            ticks = page.locator("#ticks")
            expect(ticks).to_have_text(re.compile(r"^\d[\d,]*$"), timeout=10_000)
            first = ticks.text_content()
            expect(ticks).not_to_have_text(first, timeout=10_000)
            expect(page.locator("#throughput")).to_have_text(re.compile(r"\d ticks/s$"), timeout=10_000)
            expect(page.locator("#fill-count")).to_have_text(re.compile(r"^[1-9]\d*$"), timeout=20_000)
            expect(page.locator("#pnl-total")).to_have_text(re.compile(r"^-?\d+\.\d\d$"), timeout=10_000)
            names = page.locator("#actors tr td:first-child").all_text_contents()
            assert {"orders", "safety", "feed", "strategy:rsi_mr"} <= set(names), names
            assert page.text_content("#rss").endswith("MiB")
            shot = Path(os.environ.get("ACTORTRADER_SCREENSHOT_DIR", tmp_path)) / "dashboard-real-engine-halted.png"
            press_kill_switch_and_see_halted(page, console_errors, shot)
        state = env.client.get("/api/v1/trading-state", headers=env.headers("vic")).json()
        assert state["state"] == "HALTED" and state["kill_switch"] is True  # the click reached the real SafetyActor
