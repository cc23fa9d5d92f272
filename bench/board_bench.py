"""Raise → visible: how long a newly raised alarm takes to appear on a duty officer's board.

Builds a scratch database with the sample plant, serves the dashboard on a free port and
opens the board in Debian's headless Chromium as a province duty officer. Each round commits
one new alarm the way ingest does (``alarms.store.apply_transitions`` in a transaction) and
measures, from just before the commit:

- **board**: until the alarm's row is in the board's DOM (a MutationObserver in the page
  stamps it with the wall clock, so Playwright's polling adds nothing);
- **socket** (the baseline, in the same run): until a bare WebSocket client of the same
  ``/api/v1/live`` receives the alarm — the NOTIFY → WebSocket path without a browser.

Prints p50/p99 of both and their ratio.

    .venv/bin/python -m bench.board_bench [--rounds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import aiohttp
import psycopg
from aiohttp import web
from playwright.async_api import async_playwright

from alarms.store import apply_transitions
from bench.scratch import scratch_database
from dashboard.app import create_app
from dashboard.auth import create_user
from hazardwatch.ledger import load_plant
from ingest.ledger_sync import sync_ledger
from ingest.migrate import migrate
from rules.types import Condition, Transition

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip
PASSWORD = "bench password 1"  # noqa: S105 - of a scratch database's user
OBSERVER = """() => {
    window.__seen = {};
    const mark = (node) => {
        if (node.nodeType === 1) {
            const row_ = "tr[data-alarm-id]";
            const rows = node.matches(row_) ? [node] : node.querySelectorAll(row_);
            for (const row of rows) {
                const id = row.dataset.alarmId;
                if (!(id in window.__seen)) window.__seen[id] = Date.now();
            }
        }
    };
    new MutationObserver((changes) => {
        for (const change of changes) change.addedNodes.forEach(mark);
    }).observe(document.body, {childList: true, subtree: true});
}"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=60, help="alarms raised one after another")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print("board bench skipped: Debian's chromium is not at /usr/bin/chromium")
        return
    with scratch_database() as url:
        migrate(url)
        with psycopg.connect(url) as conn:
            sync_ledger(conn, load_plant("devices.yaml"))
            create_user(conn, "duty", PASSWORD, "duty_officer", division="33")
            conn.commit()
            tags = [int(str(r[0])) for r in conn.execute("SELECT id FROM tags ORDER BY id").fetchall()]
        asyncio.run(measure(url, tags, args.rounds))


def _raise(url: str, tag_id: int, condition: Condition) -> int:
    """Commit one new alarm as ingest would; returns its id."""
    with psycopg.connect(url) as conn:
        with conn.transaction():
            apply_transitions(conn, [Transition(tag_id, condition, 1, int(time.time() * 1000), 95.0, 90.0)])
        row = conn.execute(
            "SELECT id FROM alarms WHERE tag_id = %s AND condition = %s ORDER BY id DESC LIMIT 1",
            (tag_id, condition.value),
        ).fetchone()
    assert row is not None
    return int(str(row[0]))


async def _socket_listener(base: str, cookie: str, arrived: dict[int, float], ready: asyncio.Event) -> None:
    async with (
        aiohttp.ClientSession(cookies={"hw_session": cookie}) as client,
        client.ws_connect(f"{base}/api/v1/live") as ws,
    ):
        ready.set()
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if data.get("type") == "alarm":
                arrived.setdefault(int(data["alarm"]["id"]), time.time() * 1000)


async def measure(url: str, tags: list[int], rounds: int) -> None:
    runner = web.AppRunner(create_app(url))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}"
    plan = [(tags[i % len(tags)], (Condition.HIGH, Condition.FAULT, Condition.LOW)[i // len(tags) % 3])
            for i in range(rounds)]  # fmt: skip
    loop = asyncio.get_running_loop()
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = await browser.new_page()
            await page.goto(f"{base}/login")
            await page.fill("#username", "duty")
            await page.fill("#password", PASSWORD)
            await page.click("#login-button")
            await page.wait_for_selector("#live-status.live-ok", timeout=20_000)
            await page.evaluate(OBSERVER)
            cookie = next(c["value"] for c in await page.context.cookies() if c["name"] == "hw_session")
            arrived: dict[int, float] = {}
            ready = asyncio.Event()
            listener = asyncio.create_task(_socket_listener(base, cookie, arrived, ready))
            await asyncio.wait_for(ready.wait(), 10)
            await asyncio.sleep(0.5)  # the socket's hello and first snapshot
            board, socket = [], []
            for tag_id, condition in plan:
                began = time.time() * 1000
                alarm_id = await loop.run_in_executor(None, _raise, url, tag_id, condition)
                await page.wait_for_function(f"() => '{alarm_id}' in window.__seen", timeout=20_000)
                seen = await page.evaluate(f"() => window.__seen['{alarm_id}']")
                board.append(float(seen) - began)
                for _ in range(200):
                    if alarm_id in arrived:
                        break
                    await asyncio.sleep(0.01)
                socket.append(arrived[alarm_id] - began)
            listener.cancel()
            await browser.close()
    finally:
        await runner.cleanup()
    print(f"{'raise → visible, ms':<34} {'p50':>8} {'p99':>8}")
    for label, values in (("board (Chromium, DOM row)", board), ("socket (bare WebSocket client)", socket)):
        p99 = statistics.quantiles(values, n=100)[98]
        print(f"{label:<34} {statistics.median(values):8.1f} {p99:8.1f}")
    ratio = statistics.median(board) / statistics.median(socket)
    print(f"board ÷ socket (p50): {ratio:.2f} over {rounds} alarms")


if __name__ == "__main__":
    main()
