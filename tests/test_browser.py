"""The alarm board in a real headless Chromium: login, live rows, acknowledge, detail, trend.

The app listens on a real port of this test's event loop; Playwright's async API drives
Debian's Chromium. Every wait is a Playwright expectation with a deadline, never a sleep.
Screenshots go to test-artifacts/ (gitignored).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright, expect

from dashboard.app import create_app
from hazardwatch.ledger import Plant
from tests.support import ROOT, free_port
from tests.test_dashboard_api import HOME, PASSWORD, Seeded, raise_alarm, seed

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "test-artifacts"
TIMEOUT_MS = 15_000


@asynccontextmanager
async def serving(url: str) -> AsyncIterator[str]:
    """The dashboard on a free port of 127.0.0.1; yields its base URL."""
    runner = web.AppRunner(create_app(url))
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


def write_readings(url: str, tag_id: int, values: list[float]) -> None:
    """One reading a minute up to now, so the trend has something to draw."""
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        for i, value in enumerate(reversed(values)):
            conn.execute(
                "INSERT INTO readings (ts, tag_id, value, quality) VALUES (%s, %s, %s, 0)",
                (now - timedelta(minutes=i, seconds=5), tag_id, value),
            )
        conn.commit()


async def log_in(page: Page, base: str, username: str) -> None:
    await page.goto(f"{base}/login")
    await expect(page.locator("h1")).to_have_text("重大危险源监测预警")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-button")
    await expect(page).to_have_url(f"{base}/", timeout=TIMEOUT_MS)
    await expect(page.locator("#live-status")).to_have_class(re.compile(r"live-ok"), timeout=TIMEOUT_MS)


async def canvas_has_ink(page: Page) -> bool:
    """Whether the trend canvas holds pixels of the value line's blue."""
    return bool(
        await page.evaluate(
            """() => {
                const c = document.getElementById("trend");
                const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                for (let i = 0; i < d.length; i += 4) {
                    if (d[i] < 60 && d[i + 1] > 80 && d[i + 1] < 130 && d[i + 2] > 170) return true;
                }
                return false;
            }"""
        )
    )


@pytest.fixture
def seeded_db(database_url: str, sample_plant: Plant) -> Seeded:
    return seed(database_url, sample_plant)


async def test_board_shows_live_alarm_ack_journal_and_trend(seeded_db: Seeded) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    tag_id = seeded_db.tags[f"{HOME}/LT101"]
    write_readings(seeded_db.url, tag_id, [70.0 + i for i in range(22)])
    async with serving(seeded_db.url) as base, chromium() as browser:
        context = await browser.new_context(viewport={"width": 1024, "height": 768}, locale="zh-CN")
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))

        await log_in(page, base, "duty")
        await expect(page.locator("#user-role")).to_have_text("值班员")
        await expect(page.locator("#board-message")).to_have_text("当前无未关闭报警")
        await page.evaluate("() => { window.__sameDocument = true; }")
        await page.screenshot(path=ARTIFACTS / "board-empty.png", full_page=True)

        # a new 一级 alarm appears without a reload, flashing
        alarm_id = raise_alarm(seeded_db.url, tag_id, value=92.0, limit=90.0)
        row = page.locator(f'tr[data-alarm-id="{alarm_id}"]')
        await expect(row).to_be_visible()
        await expect(row).to_have_class(re.compile(r"\bflash\b"))
        await expect(row.locator("td.priority")).to_have_text("一级")
        await expect(row.locator("td.tag")).to_contain_text("LT101")
        await expect(row.locator("td.condition")).to_have_text("HH 高高报")
        await expect(row.locator("td.value")).to_contain_text("92 %")
        await expect(row.locator("td.value")).to_contain_text("90 %")
        await expect(row.locator("td.state")).to_have_text("未确认")
        await expect(row.locator("td.source")).to_contain_text("液化石油气球罐区")
        raised = await row.locator("td.time").inner_text()
        shanghai = datetime.now(UTC) + timedelta(hours=8)
        assert raised.startswith(shanghai.strftime("%Y-%m-%d")) or raised.startswith(
            (shanghai - timedelta(minutes=1)).strftime("%Y-%m-%d")
        )
        assert await page.evaluate("() => window.__sameDocument === true")  # no reload happened
        await page.screenshot(path=ARTIFACTS / "board-new-alarm.png", full_page=True)

        # the detail panel: fields, trend on a canvas with data, journal
        await row.locator("td.tag").click()
        detail = page.locator("#detail")
        await expect(detail).to_be_visible()
        await expect(detail).to_have_attribute("data-alarm-id", str(alarm_id))
        canvas = page.locator("#trend")
        await expect(canvas).to_have_attribute("data-points", re.compile(r"^(1\d|2\d)$"))
        assert await canvas_has_ink(page)
        # each axis label sits at its own value: a limit line falls where the labels say it is
        ticks = json.loads(await canvas.get_attribute("data-ticks") or "[]")
        limits = json.loads(await canvas.get_attribute("data-limits") or "[]")
        assert len(ticks) >= 3
        assert limits
        (v0, y0), (v1, y1) = ticks[0], ticks[-1]
        for label, value, y in limits:
            assert abs(y0 + (value - v0) * (y1 - y0) / (v1 - v0) - y) < 1.0, (label, value, y, ticks)
        step = ticks[1][0] - ticks[0][0]
        assert all(abs(v / step - round(v / step)) < 1e-6 for v, _ in ticks), ticks  # round values
        await expect(page.locator("#journal-rows tr")).to_have_count(1)

        # acknowledge from the row: the state changes and the journal shows who did it
        await row.locator("button.ack").click()
        await expect(row.locator("td.state")).to_have_text("已确认")
        await expect(row.locator("button.ack")).to_have_count(0)
        ack_entry = page.locator('#journal-rows tr[data-action="ack"]')
        await expect(ack_entry).to_have_count(1)
        await expect(ack_entry.locator("td").nth(1)).to_have_text("duty")
        await expect(ack_entry.locator("td").nth(2)).to_have_text("确认")
        await expect(page.locator("#detail-fields")).to_contain_text("已确认")
        await page.screenshot(path=ARTIFACTS / "board-acknowledged.png", full_page=True)

        # the trend keeps refreshing: a new reading shows up on its own
        drawn = await canvas.get_attribute("data-drawn")
        write_readings(seeded_db.url, tag_id, [93.0])
        await expect(canvas).not_to_have_attribute("data-drawn", drawn or "", timeout=25_000)

        # English
        await page.click("#lang-switch")
        await expect(page.locator(".board-head h2")).to_have_text("Live alarms")
        await expect(page.locator(f'tr[data-alarm-id="{alarm_id}"] td.state')).to_have_text("Acknowledged")
        await page.screenshot(path=ARTIFACTS / "board-english.png", full_page=True)

        await context.close()
        assert not errors, errors
    with psycopg.connect(seeded_db.url) as conn:
        journal = conn.execute(
            "SELECT actor, role, action FROM alarm_journal WHERE alarm_id = %s ORDER BY id", (alarm_id,)
        ).fetchall()
    assert journal == [("system", "rules", "raise"), ("duty", "duty_officer", "ack")]


async def test_enterprise_user_board_and_logout(seeded_db: Seeded) -> None:
    mine = raise_alarm(seeded_db.url, seeded_db.tags[f"{HOME}/PT101"], value=1.8, limit=1.77)
    theirs = raise_alarm(seeded_db.url, seeded_db.tags["E330281002/LT301"])
    async with serving(seeded_db.url) as base, chromium() as browser:
        context = await browser.new_context(viewport={"width": 820, "height": 1180})  # tablet, portrait
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        await log_in(page, base, "qiye")
        await expect(page.locator(f'tr[data-alarm-id="{mine}"]')).to_be_visible()
        await expect(page.locator(f'tr[data-alarm-id="{theirs}"]')).to_have_count(0)
        await expect(page.locator("#alarm-rows tr")).to_have_count(1)
        await page.screenshot(path=ARTIFACTS / "board-enterprise-tablet.png", full_page=True)
        await page.click("#logout")
        await expect(page).to_have_url(f"{base}/login")
        await page.goto(f"{base}/")
        await expect(page).to_have_url(f"{base}/login")
        await context.close()
