"""The pages of the dashboard in a real headless Chromium: the board (live 一级 alarm with its
cue, acknowledge, shelve, masked tab, flood grouping), the regulatory loop (feedback with an
attachment, the regulator's review, the history and its CSV), and the enterprise view,
ledger browser, region map and KPI page.

One Chromium for the module (launching it is the slow part); every test has its own database,
app and browser contexts. Every wait is a Playwright expectation with a deadline, never a
sleep. Screenshots go to test-artifacts/ (gitignored).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import psycopg
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, FilePayload, Page, async_playwright, expect

from alarms.store import apply_transitions
from hazardwatch.ledger import Plant
from rules.types import Condition, Subject, Transition
from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, serving, write_readings
from tests.test_dashboard_api import AWAY, HOME, PASSWORD, Seeded, raise_alarm, seed

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

DESKTOP = {"width": 1280, "height": 900}
TABLET = {"width": 820, "height": 1180}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium")
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def _own_executor() -> AsyncIterator[None]:
    """The module's loop outlives each test: give each test its own default executor and shut it
    down at the end, so the threads the test started end with it."""
    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="browser-test")
    asyncio.get_running_loop().set_default_executor(executor)
    yield
    executor.shutdown(wait=True)


@pytest.fixture
def seeded_db(database_url: str, sample_plant: Plant) -> Seeded:
    return seed(database_url, sample_plant)


def raise_condition(url: str, tag_id: int, condition: Condition, level: int = 1) -> int:
    """Raise an alarm of any condition as ingest would; returns its id."""
    with psycopg.connect(url) as conn:
        with conn.transaction():
            apply_transitions(
                conn, [Transition(tag_id, condition, level, int(time.time() * 1000), 1.0, None)]
            )
        row = conn.execute(
            "SELECT id FROM alarms WHERE tag_id = %s AND condition = %s AND state <> 'NORMAL'",
            (tag_id, condition.value),
        ).fetchone()
    assert row is not None
    return int(str(row[0]))


async def session(
    browser: Browser, base: str, username: str, viewport: dict[str, int]
) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(viewport=viewport, locale="zh-CN")  # type: ignore[arg-type]
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(f"{base}/login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-button")
    await expect(page).to_have_url(f"{base}/")
    await expect(page.locator("body")).to_have_attribute("data-loaded", "1")
    return context, page


def errors_of(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    return errors


async def test_duty_officer_sees_a_p1_live_acknowledges_shelves_and_sees_the_flood(
    browser: Browser, seeded_db: Seeded
) -> None:
    url = seeded_db.url
    async with serving(url) as base:
        context, page = await session(browser, base, "duty", DESKTOP)
        errors = errors_of(page)
        await expect(page.locator("#live-status")).to_have_class(re.compile(r"live-ok"))
        await expect(page.locator('.pages a[data-nav="board"]')).to_have_attribute("aria-current", "page")

        # a new 一级 alarm: the row flashes, a banner names it, the beep is played
        p1 = raise_alarm(url, seeded_db.tags[f"{HOME}/LT101"], value=92.0, limit=90.0)
        row = page.locator(f'tr[data-alarm-id="{p1}"]')
        await expect(row).to_have_class(re.compile(r"\bflash\b"))
        await expect(row.locator("td.priority")).to_have_text("一级")
        await expect(page.locator("#p1-banner")).to_be_visible()
        await expect(page.locator("#p1-banner")).to_contain_text("新一级报警")
        await expect(page.locator("body")).to_have_attribute("data-beeps", "1")
        await page.screenshot(path=ARTIFACTS / "pages-board-new-p1.png", full_page=True)

        # 一级 may not be shelved (the policy): no shelve button on its row, the form says why
        await expect(row.locator("button.shelve")).to_have_count(0)
        await row.locator("button.ack").click()
        await expect(row.locator("td.state")).to_have_text("已确认")
        await row.locator("td.tag").click()
        await expect(page.locator("#detail")).to_have_attribute("data-loaded", str(p1))
        await expect(page.locator("#shelve-note")).to_contain_text("一级报警不可搁置")
        await expect(page.locator("#shelve-fields")).to_be_hidden()
        # a page holding a stale policy offers it anyway: the API refuses, the panel says why
        await page.evaluate(
            "() => { HW.config.shelving.priorities.push(1); HWDetail.changed(HWDetail.current()); }"
        )
        await expect(page.locator("#shelve-fields")).to_be_visible()
        await page.fill("#shelve-reason", "试图搁置一级报警")
        await page.click("#shelve-button")
        await expect(page.locator("#shelve-error")).to_contain_text("may not be shelved")
        await page.evaluate(
            "() => { HW.config.shelving.priorities.pop(); HWDetail.changed(HWDetail.current()); }"
        )
        await expect(page.locator("#shelve-fields")).to_be_hidden()
        await expect(page.locator("#why-fields")).to_contain_text("HH 高高报")
        await expect(page.locator("#why-fields")).to_contain_text("+2")  # 92 against 90

        # a 三级 alarm is shelved with a reason and a duration: off the board, in the masked tab
        p3 = raise_condition(url, seeded_db.tags[f"{HOME}/TT101"], Condition.FAULT)
        row3 = page.locator(f'tr[data-alarm-id="{p3}"]')
        await expect(row3.locator("td.priority")).to_have_text("三级")
        await row3.locator("button.shelve").click()
        await expect(page.locator("#detail")).to_have_attribute("data-loaded", str(p3))
        await expect(page.locator("#shelve-form")).to_be_visible()
        await page.fill("#shelve-reason", "变送器校验中")
        await page.select_option("#shelve-minutes", "30")
        await page.click("#shelve-button")
        await expect(row3).to_have_count(0)
        await expect(page.locator("#unshelve-box")).to_be_visible()
        await expect(page.locator("#shelved-info")).to_contain_text("变送器校验中")
        await page.click("#tab-masked")
        await expect(row3.locator("td.state")).to_contain_text("已搁置")
        await expect(row3.locator("td.state .mask-reason")).to_have_text("变送器校验中")  # and why
        await expect(page.locator(f'tr[data-alarm-id="{p1}"]')).to_have_count(0)
        await page.screenshot(path=ARTIFACTS / "pages-board-masked.png", full_page=True)
        await page.click("#tab-open")
        await expect(page.locator(f'tr[data-alarm-id="{p1}"]')).to_be_visible()

        # a flood: more than 10 alarms in 10 minutes group by hazard source, 一级 never folded
        for code in (
            "PT101",
            "TT102",
            "PT102",
            "LT102",
            "TT103",
            "PT103",
            "LT103",
            "FT101",
            "FT102",
            "GT101",
        ):
            raise_condition(url, seeded_db.tags[f"{HOME}/{code}"], Condition.FAULT)
        for code in ("TT201", "PT201"):
            raise_condition(url, seeded_db.tags[f"{HOME}/{code}"], Condition.FAULT)
        await expect(page.locator("#flood-banner")).to_be_visible(timeout=25_000)
        await expect(page.locator("#flood-text")).to_contain_text("报警泛滥")
        heads = page.locator("tr.group-head")
        await expect(heads).to_have_count(2)
        await expect(heads.first).to_contain_text("液化石油气球罐区")
        first_in_group = page.locator("tr.group-head + tr.group-first").first
        await expect(first_in_group).to_be_visible()
        await expect(page.locator(f'tr[data-alarm-id="{p1}"]')).to_be_visible()
        await expect(page.locator("button.group-toggle").first).to_contain_text("展开其余")
        await page.screenshot(path=ARTIFACTS / "pages-board-flood.png", full_page=True)
        folded = page.locator("#alarm-rows tr.folded")
        await expect(folded).to_have_count(8)
        await expect(folded.first).to_be_hidden()
        await page.locator("button.group-toggle").first.click()
        await expect(page.locator("button.group-toggle").first).to_have_text("收起")
        await expect(folded).to_have_count(0)
        await context.close()
        assert not errors, errors
    with psycopg.connect(url) as conn:
        shelved = conn.execute(
            "SELECT state, shelved_by, shelve_reason FROM alarms WHERE id = %s", (p3,)
        ).fetchone()
    assert shelved == ("SHELVED", "duty", "变送器校验中")


def insert_open_alarms(url: str, count: int) -> None:
    """``count`` open 三级 video alarms spread over the tags (one subject, many conditions each),
    inserted directly: the board's paging is under test, not the rule engine."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "WITH ids AS (SELECT array_agg(id ORDER BY id) AS tag FROM tags)"
            " INSERT INTO alarms (tag_id, subject_kind, subject_id, enterprise_id, hazard_source_id,"
            " equipment_id, condition, kind, level, priority, state, active, raised_at, value)"
            " SELECT t.id, 'tag', t.id, t.enterprise_id, t.hazard_source_id, t.equipment_id,"
            "   'BULK_' || chr(65 + mod(n / 676, 26)) || chr(65 + mod(n / 26, 26)) || chr(65 + mod(n, 26)),"
            "   'video', 1, 3, 'UNACK', true, now() - make_interval(secs => n), 1"
            " FROM generate_series(0, %s - 1) AS n, ids JOIN tags t ON true"
            " WHERE t.id = ids.tag[1 + mod(n, cardinality(ids.tag))]",
            (count,),
        )
        conn.commit()


async def test_the_board_pages_ten_thousand_open_alarms_and_still_shows_a_new_one(
    browser: Browser, seeded_db: Seeded
) -> None:
    url = seeded_db.url
    insert_open_alarms(url, 10_000)
    async with serving(url) as base:
        context, page = await session(browser, base, "duty", TABLET)
        errors = errors_of(page)
        await expect(page.locator("#alarm-count")).to_have_text("共 10000 条")
        await expect(page.locator("#alarm-rows tr.alarm")).to_have_count(200)
        await expect(page.locator("#page-info")).to_have_text("第 1 / 50 页")
        await page.click("#page-next")
        await expect(page.locator("#page-info")).to_have_text("第 2 / 50 页")
        await expect(page.locator("#alarm-rows tr.alarm")).to_have_count(200)
        # a new 一级 alarm while on page 2: the cue comes at once, the row is first on page 1
        p1 = raise_condition(url, seeded_db.tags[f"{AWAY}/LT301"], Condition.HIGH, level=2)
        await expect(page.locator("#p1-banner")).to_contain_text("LT301")
        await expect(page.locator("#alarm-count")).to_have_text("共 10001 条")
        await page.click("#page-prev")
        await expect(page.locator("#alarm-rows tr.alarm").first).to_have_attribute("data-alarm-id", str(p1))
        await page.screenshot(path=ARTIFACTS / "pages-board-10000.png")
        await context.close()
        assert not errors, errors


async def test_enterprise_files_feedback_and_the_regulator_accepts_it_and_finds_it_in_history(
    browser: Browser, seeded_db: Seeded
) -> None:
    url = seeded_db.url
    tag_id = seeded_db.tags[f"{HOME}/PT101"]
    write_readings(url, tag_id, [1.5 + i * 0.02 for i in range(20)])
    alarm_id = raise_alarm(url, tag_id, value=1.8, limit=1.77)
    async with serving(url) as base:
        # the enterprise, on a tablet: acknowledge, then file feedback with an attachment
        context, page = await session(browser, base, "qiye", TABLET)
        errors = errors_of(page)
        row = page.locator(f'tr[data-alarm-id="{alarm_id}"]')
        await row.locator("td.tag").click()
        await expect(page.locator("#detail")).to_have_attribute("data-loaded", str(alarm_id))
        await expect(page.locator("#feedback-form")).to_be_hidden()  # acknowledge first
        await page.click("#detail-ack-button")
        await expect(page.locator("#feedback-form")).to_be_visible()
        await page.select_option("#feedback-reason", "real_handled")
        await page.fill("#feedback-measures", "进料阀卡涩致超压，已手动关阀，压力已回落至正常范围")
        await page.set_input_files(
            "#feedback-file",
            files=[
                FilePayload(name="现场照片.txt", mimeType="text/plain", buffer="压力表读数 1.62 MPa".encode())
            ],
        )
        await page.click("#feedback-button")
        item = page.locator("#feedback-list li")
        await expect(item).to_have_count(1)
        await expect(item).to_have_attribute("data-review", "pending")
        await expect(item).to_contain_text("真实异常已处置")
        await expect(item.locator("a.attachment")).to_contain_text("现场照片.txt")
        await expect(page.locator("#feedback-form")).to_be_hidden()
        await expect(page.locator('#journal-rows tr[data-action="feedback"]')).to_have_count(1)
        await page.screenshot(path=ARTIFACTS / "pages-feedback-enterprise-tablet.png", full_page=True)
        await context.close()
        assert not errors, errors

        # the regulator: the alarm's own page, the attachment, accept
        context, page = await session(browser, base, "jianguan", DESKTOP)
        errors = errors_of(page)
        await page.goto(f"{base}/alarms/{alarm_id}")
        await expect(page.locator("#detail")).to_have_attribute("data-loaded", str(alarm_id))
        await expect(page.locator("#shelve-form")).to_be_hidden()  # regulators do not shelve
        await expect(page.locator("#review-form")).to_be_visible()
        link = page.locator("#feedback-list a.attachment")
        href = await link.get_attribute("href")
        assert href is not None
        download = await page.request.get(f"{base}{href}")
        assert download.status == 200
        assert (await download.body()).decode() == "压力表读数 1.62 MPa"
        assert await page.locator("#trend").get_attribute("data-points") not in (None, "0")
        # a real abnormality: the regulator opens a hidden-danger rectification (隐患) with a deadline
        await expect(page.locator("#danger-form")).to_be_visible()
        await page.fill("#danger-description", "进料阀卡涩，需更换阀门并校验联锁")
        # the deadline is written as the page's language reads it, not the browser's mm/dd/yyyy
        deadline = page.locator("#danger-deadline")
        await expect(deadline).to_have_attribute("type", "text")
        await expect(deadline).to_have_attribute("placeholder", "年-月-日 时:分，如 2031-12-31 18:00")
        await page.fill("#danger-deadline", "2031-12-31 18:00")
        await page.click("#danger-button")
        await expect(page.locator("#danger-message")).to_contain_text("2031-12-31 18:00")
        await expect(page.locator('#journal-rows tr[data-action="hidden_danger"]')).to_have_count(1)
        await page.click("#review-accept")
        await expect(page.locator("#feedback-list li")).to_have_attribute("data-review", "accepted")
        await expect(page.locator("#review-form")).to_be_hidden()
        await expect(page.locator("#detail-fields")).to_contain_text("已审核通过")
        await page.screenshot(path=ARTIFACTS / "pages-alarm-reviewed.png", full_page=True)

        # the history: search by enterprise and grade, find it, export the same as CSV
        await page.click('.pages a[data-nav="history"]')
        await expect(page.locator("body")).to_have_attribute("data-loaded", "1")
        await page.select_option("#f-enterprise", HOME)
        await page.select_option("#f-priority", "1")
        await page.select_option("#f-disposition", "accepted")
        await page.click("#history-search")
        found = page.locator(f'#history-rows tr[data-alarm-id="{alarm_id}"]')
        await expect(found).to_be_visible()
        await expect(page.locator("#history-rows tr")).to_have_count(1)
        await expect(found.locator("td.disposition")).to_have_text("已审核通过")
        await expect(page.locator("#history-total")).to_have_text("共 1 条")
        csv_href = await page.locator("#history-csv").get_attribute("href")
        assert csv_href is not None
        assert "enterprise=" + HOME in csv_href
        assert "disposition=accepted" in csv_href
        csv = await page.request.get(f"{base}{csv_href}")
        assert csv.status == 200
        assert str(alarm_id) in (await csv.body()).decode("utf-8-sig")
        await page.screenshot(path=ARTIFACTS / "pages-history.png", full_page=True)

        # nothing matches a time range before the alarm; the page says so
        await page.fill("#f-to", "2020-01-01T00:00")
        await page.click("#history-search")
        await expect(page.locator("#history-message")).to_have_text("没有符合条件的报警")
        await context.close()
        assert not errors, errors


async def test_enterprise_view_ledger_map_and_kpi_pages(browser: Browser, seeded_db: Seeded) -> None:
    url = seeded_db.url
    raise_alarm(url, seeded_db.tags[f"{HOME}/LT101"], value=92.0, limit=90.0)
    raise_alarm(url, seeded_db.tags[f"{AWAY}/LT301"], value=92.0, limit=90.0)
    async with serving(url) as base:
        context, page = await session(browser, base, "jianguan", DESKTOP)
        errors = errors_of(page)
        await page.click('.pages a[data-nav="enterprises"]')
        await expect(page.locator("body")).to_have_attribute("data-loaded", "1")
        rows = page.locator("#enterprises-rows tr")
        await expect(rows).to_have_count(2)
        await expect(rows.first.locator(".risk-badge")).to_be_visible()
        await expect(rows.first.locator("td.open-alarms")).to_contain_text("1")
        await page.screenshot(path=ARTIFACTS / "pages-enterprises.png", full_page=True)

        await rows.first.locator("a").click()
        await expect(page.locator("#enterprise-name")).to_have_text("杭州临港液化气储运有限公司")
        cards = page.locator("#source-cards .card")
        await expect(cards).to_have_count(2)
        await expect(cards.first).to_contain_text("液化石油气球罐区")
        await expect(cards.first).to_contain_text("今日尚未提交")
        await expect(page.locator("#ledger-rows tr[data-id]").first).to_be_visible()
        await expect(page.locator("#ledger-rows")).to_contain_text("LT101")
        await page.screenshot(path=ARTIFACTS / "pages-enterprise.png", full_page=True)
        await page.click('[data-ledger="equipment"]')
        await expect(page.locator("#ledger-table")).to_have_attribute("data-view", "equipment")
        await expect(page.locator("#ledger-rows")).to_contain_text("T101")

        await page.click('.pages a[data-nav="map"]')
        sites = page.locator("#region-map a.map-site")
        await expect(sites).to_have_count(2)
        await expect(page.locator("#region-map .map-grid line").first).to_be_attached()
        await page.screenshot(path=ARTIFACTS / "pages-map.png", full_page=True)

        await page.click('.pages a[data-nav="kpi"]')
        await expect(page.locator("body")).to_have_attribute("data-loaded", "1")
        await expect(page.locator("#kpi-message")).to_be_hidden()
        await expect(page.locator('[data-kpi="alarms"] .tile-value')).to_have_text("2")
        await expect(page.locator('figure[data-chart="priority"] rect.bar')).to_have_count(3)
        await expect(page.locator('figure[data-chart="trend"] circle')).to_have_count(7)
        await expect(page.locator('figure[data-chart="per_enterprise"]')).to_be_visible()
        # the top-10 names its sources as the board does: code, condition in words, enterprise
        top = page.locator('figure[data-chart="bad_actors"] text')
        await expect(top.filter(has_text="高限报警").first).to_be_visible()
        for label in await top.all_text_contents():
            assert not re.search(r"\b(HIGH|LOW|PREDICT|FAULT)\b", label), label
        # no feedback filed yet: its times are no data ("—"), not zero seconds
        await expect(page.locator('figure[data-chart="ttf"] text.no-value')).to_have_count(3)
        await expect(page.locator('figure[data-chart="ttf"] text.no-value').first).to_have_text("—")
        await page.screenshot(path=ARTIFACTS / "pages-kpi-region.png", full_page=True)
        await page.fill("#kpi-division", "330281")
        await page.press("#kpi-division", "Enter")
        await expect(page.locator('[data-kpi="alarms"] .tile-value')).to_have_text("1")
        await page.fill("#kpi-division", "")
        await page.press("#kpi-division", "Enter")
        await expect(page.locator('[data-kpi="alarms"] .tile-value')).to_have_text("2")
        await page.select_option("#kpi-enterprise", HOME)
        await expect(page.locator('[data-kpi="alarms"] .tile-value')).to_have_text("1")
        await expect(page.locator('figure[data-chart="per_enterprise"]')).to_have_count(0)
        await expect(page.locator("body")).to_have_attribute("data-loaded", "1")
        await page.screenshot(path=ARTIFACTS / "pages-kpi.png", full_page=True)

        await page.click("#lang-switch")
        await expect(page.locator('.pages a[data-nav="map"]')).to_have_text("Map")
        await page.goto(f"{base}/enterprises")
        await expect(page.locator("#enterprises-table th").first).to_have_text("Risk")
        await page.screenshot(path=ARTIFACTS / "pages-enterprises-english.png", full_page=True)
        await context.close()
        assert not errors, errors

        # an enterprise user sees only itself; another enterprise's page is "not found"
        context, page = await session(browser, base, "qiye", TABLET)
        await page.goto(f"{base}/enterprises")
        await expect(page.locator("#enterprises-rows tr")).to_have_count(1)
        with psycopg.connect(url) as conn:
            other = conn.execute("SELECT id FROM enterprises WHERE code = %s", (AWAY,)).fetchone()
        assert other is not None
        await page.goto(f"{base}/enterprises/{other[0]}")
        await expect(page.locator("#enterprise-message")).to_have_text("企业不存在或不在您的权限范围内")
        await context.close()


def raise_video_alarm(url: str) -> tuple[int, int]:
    """A danger-zone intrusion on CAM101 with its snapshot stored, as ingest.video does it:
    returns (alarm id, snapshot id)."""
    image = np.zeros((90, 160, 3), dtype=np.uint8)
    image[20:70, 40:120] = (0, 0, 220)  # a red block, to tell the picture apart
    ok, jpeg = cv2.imencode(".jpg", image)
    assert ok
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('cameras') IS NULL").fetchone() == (True,):
            pytest.skip("this database's ledger has no cameras table")
        camera = conn.execute("SELECT id, enterprise_id FROM cameras WHERE code = 'CAM101'").fetchone()
        assert camera is not None
        snapshot = conn.execute(
            "INSERT INTO snapshots (camera_id, enterprise_id, event_id, taken_at, image)"
            " VALUES (%s, %s, 'ev-1', %s, %s) RETURNING id",
            (camera[0], camera[1], now, jpeg.tobytes()),
        ).fetchone()
        assert snapshot is not None
        detail: dict[str, object] = {
            "camera": "CAM101",
            "event_id": "ev-1",
            "phase": "new",
            "score": 0.91,
            "suspected": False,
            "zone": "dike",
            "snapshot_id": int(str(snapshot[0])),
        }
        with conn.transaction():
            apply_transitions(
                conn,
                [
                    Transition(
                        int(str(camera[0])),
                        "INTRUSION",
                        1,
                        int(now.timestamp() * 1000),
                        None,
                        None,
                        Subject.CAMERA,
                        detail,
                    )
                ],
            )
        row = conn.execute(
            "SELECT id FROM alarms WHERE subject_kind = 'camera' AND subject_id = %s AND state <> 'NORMAL'",
            (camera[0],),
        ).fetchone()
    assert row is not None
    return int(str(row[0])), int(str(snapshot[0]))


async def test_a_video_alarm_shows_its_snapshot_and_the_ledger_lists_the_cameras(
    browser: Browser, seeded_db: Seeded
) -> None:
    url = seeded_db.url
    alarm_id, snapshot_id = raise_video_alarm(url)
    async with serving(url) as base:
        context, page = await session(browser, base, "duty", DESKTOP)
        errors = errors_of(page)
        row = page.locator(f'tr[data-alarm-id="{alarm_id}"]')
        await expect(row.locator("td.tag")).to_contain_text("CAM101")
        await expect(row.locator("td.condition")).to_have_text("危险区域闯入")
        await row.locator("td.tag").click()
        await expect(page.locator("#detail")).to_have_attribute("data-loaded", str(alarm_id))
        image = page.locator("#snapshot-img")
        await expect(page.locator("#snapshot")).to_be_visible()
        await expect(image).to_have_attribute("src", f"/api/v1/snapshots/{snapshot_id}")
        await expect(image).to_have_js_property("complete", True)
        assert await image.evaluate("img => img.naturalWidth") == 160
        await expect(page.locator("#why-fields")).to_contain_text("0.91")
        await expect(page.locator("#why-json")).to_contain_text('"snapshot_id"')
        await expect(page.locator("#trend")).to_be_hidden()  # a camera has no trend
        await page.screenshot(path=ARTIFACTS / "pages-video-alarm.png", full_page=True)

        with psycopg.connect(url) as conn:
            home = conn.execute("SELECT id FROM enterprises WHERE code = %s", (HOME,)).fetchone()
        assert home is not None
        await page.goto(f"{base}/enterprises/{home[0]}")
        await page.click('[data-ledger="cameras"]')
        await expect(page.locator("#ledger-table")).to_have_attribute("data-view", "cameras")
        await expect(page.locator("#ledger-rows")).to_contain_text("CAM101")
        await expect(page.locator("#ledger-rows")).not_to_contain_text("http://")  # no stream address
        await context.close()
        assert not errors, errors


async def test_a_device_that_does_not_answer_shows_as_one_gateway_alarm_naming_it(
    browser: Browser, seeded_db: Seeded
) -> None:
    url = seeded_db.url
    with psycopg.connect(url) as conn:
        gateway = conn.execute(
            "SELECT g.id FROM gateways g JOIN enterprises e ON e.id = g.enterprise_id"
            " WHERE e.code = %s AND g.code = 'gw01'",
            (HOME,),
        ).fetchone()
        assert gateway is not None
        with conn.transaction():
            apply_transitions(conn, [Transition(int(str(gateway[0])), Condition.DEVICE_COMM, 1,
                                                int(time.time() * 1000), 1.0, None, Subject.GATEWAY,
                                                {"devices": ["plc-lpg"]})])  # fmt: skip
        alarm = conn.execute("SELECT id FROM alarms WHERE condition = 'DEVICE_COMM'").fetchone()
    assert alarm is not None
    async with serving(url) as base:
        context, page = await session(browser, base, "duty", DESKTOP)
        errors = errors_of(page)
        row = page.locator(f'tr[data-alarm-id="{alarm[0]}"]')
        await expect(row.locator("td.condition")).to_have_text("设备通讯中断")
        await expect(row.locator("td.tag")).to_contain_text("gw01")
        await row.locator("td.tag").click()
        await expect(page.locator("#detail")).to_have_attribute("data-loaded", str(alarm[0]))
        await expect(page.locator("#why-fields")).to_contain_text("未应答设备")
        await expect(page.locator("#why-fields")).to_contain_text("plc-lpg")
        await context.close()
        assert not errors, errors


async def test_the_enterprise_files_its_daily_safety_commitment_from_its_page(
    browser: Browser, seeded_db: Seeded
) -> None:
    async with serving(seeded_db.url) as base:
        context, page = await session(browser, base, "qiye", TABLET)
        errors = errors_of(page)
        await page.click('.pages a[data-nav="enterprises"]')
        await expect(page.locator("#enterprises-rows tr")).to_have_count(1)  # only its own
        await page.locator("#enterprises-rows tr a").first.click()
        card = page.locator("#source-cards .card").first
        await expect(card).to_contain_text("今日尚未提交")
        await card.locator("button.file-commitment").click()
        form = page.locator("#commitment-form")
        await expect(form).to_be_visible()
        await expect(page.locator("#c-principal")).to_have_value("陈建国")  # its 主要负责人 by default
        await page.select_option("#c-unit-status", "running")
        await page.fill('#commitment-form [data-op="hot_work"]', "1")
        await page.select_option("#c-risk", "3")
        await page.click("#commitment-submit")
        await expect(form).to_be_hidden()
        await expect(card).to_contain_text("动火 1")
        await expect(card).to_contain_text("陈建国")
        await expect(card.locator("button.file-commitment")).to_have_text("修改今日安全承诺")
        await page.screenshot(path=ARTIFACTS / "pages-commitment.png", full_page=True)
        await context.close()
        assert not errors, errors
    with psycopg.connect(seeded_db.url) as conn:
        stored = conn.execute(
            "SELECT c.unit_status, c.special_operations, c.risk_level, c.principal FROM safety_commitments c"
            " JOIN hazard_sources hs ON hs.id = c.hazard_source_id WHERE hs.code = 'HS330110001-01'"
        ).fetchall()
    assert stored == [("running", {"hot_work": 1}, 3, "陈建国")]
