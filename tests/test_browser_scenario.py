"""The whole path in a real browser: a duty officer watches the board while a simulator scenario
drives a tank over its limits — simulators → agent → MQTT → ingest → PostgreSQL → dashboard
(every part its own process, as `hazardwatch up` runs them) → Chromium.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from tests.support import free_port, wait_for_port
from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS
from tests.test_dashboard_api import PASSWORD
from tests.test_e2e import Stack, make_stack, quick_plant_doc, start_everything, stop_and_show

pytestmark = pytest.mark.browser


@pytest.fixture
def stack(tmp_path: Path, mqtt_port: int, database_url: str) -> Iterator[Stack]:
    s = make_stack(tmp_path, mqtt_port, database_url, quick_plant_doc())
    added = subprocess.run(
        s.hw("user", "add", "duty", "--role", "duty_officer", "--division", "33", "--password-stdin"),
        input=PASSWORD, env=s.env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    start_everything(s)
    port = free_port()
    s.start("dashboard", "dashboard", "--host", "127.0.0.1", "--port", str(port))
    wait_for_port(port, timeout=30)
    s.env["HW_TEST_DASHBOARD"] = f"http://127.0.0.1:{port}"
    try:
        yield s
    finally:
        stop_and_show(s)


async def test_a_duty_officer_sees_an_overfill_appear_live_and_acknowledges_it(stack: Stack) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium")
    base = stack.env["HW_TEST_DASHBOARD"]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page()
            await page.goto(f"{base}/login")
            await page.fill("#username", "duty")
            await page.fill("#password", PASSWORD)
            await page.click("#login-button")
            live = page.locator("#live-status")
            await expect(live).to_have_class(re.compile(r"live-ok"), timeout=TIMEOUT_MS)

            scenario = stack.run(
                "simulate", "--scenario", "overfill", "--enterprise", "E330110001", "--tag", "LT101"
            )
            assert scenario.returncode == 0, scenario.stderr
            # no reload: the row arrives over the WebSocket, at HH (一级) once the level holds there
            row = page.locator("tr[data-alarm-id]").filter(has_text="LT101").filter(has_text="HH")
            await expect(row).to_have_count(1, timeout=60_000)
            await expect(row.locator("td.priority")).to_have_text("一级")
            await expect(row.locator("td.source")).to_contain_text("液化石油气球罐区")
            await page.screenshot(path=ARTIFACTS / "scenario-overfill-live.png", full_page=True)
            await row.locator("button.ack").click()
            await expect(row.locator("td.state")).to_have_text("已确认")
        finally:
            await browser.close()
