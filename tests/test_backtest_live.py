"""One recorded scenario run live (the real ingest pipeline on a real PostgreSQL, a fake clock
ticking every 5 s) and as a backtest over the readings it stored: the same transitions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from hazardwatch.clock import FakeClock
from hazardwatch.ledger import load_plant
from hazardwatch.quality import Quality
from ingest.backtest import backtest
from ingest.ledger_sync import sync_ledger
from ingest.migrate import migrate
from ingest.pipeline import Pipeline
from tests.support import ROOT, sample_plant_doc, write_plant
from tests.test_pipeline import batch_message

NORMAL = {"LT": 50.0, "PT": 1.0, "TT": 20.0, "FT": 50.0, "GT": 2.0, "WS": 3.0}
SECONDS = 300


def _reading(code: str, s: int, t: int) -> tuple[str, int, float | None, Quality]:
    """plc-lpg's tag ``code`` at second ``s`` of the scenario."""
    if 120 <= s <= 140 or 200 <= s <= 201:  # the PLC does not answer: 21 s, then 2 s (the on-delay's 5 s)
        return code, t, None, Quality.BAD_COMM
    if code == "TT103" and 50 <= s <= 60:  # one channel lost while the PLC answers for the others
        return code, t, None, Quality.BAD_COMM
    value = NORMAL[code[:2]]
    if code == "LT102" and 10 <= s < 100:  # above H (85 %) for 90 s: on-delay 60 s, off-delay 60 s
        value = 87.0
    if code in ("GT101", "GT102") and 20 <= s <= 40:  # 2 of GV101's 3 at HH: VOTE and SOURCE
        value = 60.0
    if code == "WS101":  # out of service: a gale it reads is no alarm
        value = 30.0
    return code, t, value, Quality.GOOD


def _live(database_url: str, plant_path: Path) -> tuple[datetime, datetime]:
    plant = load_plant(plant_path)
    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        sync_ledger(conn, plant)
    codes = [
        tag.code
        for e, _, _, tag in plant.iter_tags()
        if e.code == "E330110001" and tag.modbus is not None and tag.modbus.device == "plc-lpg"
    ]
    t0 = (int(time.time() * 1000) - 3_600_000) // 5000 * 5000  # on a tick of the backtest's clock
    clock = FakeClock(t0)
    pipeline = Pipeline(database_url, clock=clock)
    try:
        for s in range(SECONDS + 1):
            t = clock.now_ms()
            pipeline.process([batch_message(s + 1, [_reading(code, s, t) for code in codes])])
            if s % 5 == 0:
                pipeline.tick()
            clock.advance(1)
    finally:
        pipeline.close()
    end = t0 + SECONDS * 1000 + 1
    return datetime.fromtimestamp((t0 - 1) / 1000, UTC), datetime.fromtimestamp(end / 1000, UTC)


def test_a_recorded_scenario_backtests_to_the_transitions_live_made(
    database_url: str, tmp_path: Path
) -> None:
    doc = sample_plant_doc()
    tags = doc["enterprises"][0]["hazard_sources"][0]["equipment"][4]["tags"]
    ws101 = next(tag for tag in tags if tag["code"] == "WS101")
    ws101["out_of_service"] = {
        "reason": "anemometer replaced",
        "by": "赵海峰",
        "at": "2026-01-01T08:00:00+08:00",
    }
    plant_path = write_plant(doc, tmp_path)
    start, end = _live(database_url, plant_path)
    with psycopg.connect(database_url) as conn:
        report = backtest(conn, load_plant(plant_path), start, end)

    changed = {c.name: (c.live, c.would) for c in report.comparisons if c.live != c.would}
    assert changed == {}  # every transition: subject, condition, level and time
    assert report.totals()["only_live"] == report.totals()["only_would"] == report.totals()["different"] == 0
    names = {c.name: c for c in report.comparisons}
    e = "E330110001"
    level = names[(e, "LT102", "HIGH")].live
    assert [(a.levels[0].level, a.cleared_ms is not None) for a in level] == [(1, True)]
    expected = [("GT101", "HIGH"), ("GT102", "HIGH"), ("GV101", "VOTE"), ("HS330110001-01", "SOURCE"),
                ("TT103", "FAULT"), ("gw01", "DEVICE_COMM")]  # fmt: skip
    for code, condition in expected:
        assert len(names[(e, code, condition)].live) == 1, (code, condition)
    device = names[(e, "gw01", "DEVICE_COMM")].live[0]
    assert device.raised_ms is not None
    assert device.cleared_ms is not None
    assert device.cleared_ms - device.raised_ms == 16_000  # down at 120 s, raised at 125 s, back at 141 s
    faults = {c.name[1] for c in report.comparisons if c.name[2] == "FAULT"}
    assert faults == {"TT103"}  # the PLC's loss is one DEVICE_COMM, not a FAULT per tag
    assert not any(c.name[1] == "WS101" for c in report.comparisons)  # out of service: not evaluated
    stale = {c.name[1] for c in report.comparisons if c.name[2] == "STALE"}
    assert "LT101" not in stale
    assert "LT201" in stale  # plc-nh3's tags were never read: silent in both

    env = {**os.environ, "HW_DATABASE_URL": database_url, "HW_TIMEZONE": "Asia/Shanghai"}
    cli = subprocess.run(
        [sys.executable, "-m", "hazardwatch", "rules", "backtest", "--devices", str(plant_path),
         "--from", start.isoformat(), "--to", end.isoformat(), "--json"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=env,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    out = json.loads(cli.stdout)
    assert out["totals"]["same"] == out["totals"]["live"] == out["totals"]["would"] > 0
    row = next(r for r in out["subjects"] if (r["code"], r["condition"]) == ("gw01", "DEVICE_COMM"))
    raised = datetime.fromisoformat(row["live"][0]["raised"])
    offset = raised.utcoffset()
    assert offset is not None
    assert offset.total_seconds() == 8 * 3600
    assert raised == datetime.fromtimestamp(device.raised_ms / 1000, UTC)
    assert row["would"] == row["live"]
    assert row["differences"]["only_live"] == []

    text = subprocess.run(
        [sys.executable, "-m", "hazardwatch", "rules", "backtest", "--devices", str(plant_path),
         "--from", start.isoformat(), "--to", end.isoformat()],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=env,
    ).stdout  # fmt: skip
    assert "E330110001 gw01 DEVICE_COMM (gateway): live 1, would-be 1" in text
    assert "only live 0, only would-be 0" in text
    assert "+08:00" in text


def test_a_backtest_from_before_the_gateways_were_heard_raises_no_stale(
    database_url: str, tmp_path: Path
) -> None:
    """Live's clock ran only once the plant was there: half an hour of no gateway yet is no silence
    (the walkthrough saw one would-be STALE per Modbus tag, 'raised' 15 s after --from)."""
    plant_path = write_plant(sample_plant_doc(), tmp_path)
    start, end = _live(database_url, plant_path)
    before = datetime.fromtimestamp(start.timestamp() - 1800, UTC)
    with psycopg.connect(database_url) as conn:
        report = backtest(conn, load_plant(plant_path), before, end)
    stale = [c.name for c in report.comparisons if c.name[2] == "STALE" and c.would != c.live]
    assert stale == []  # the channels that never answered go STALE in both, at the same times
    assert report.totals()["only_would"] == report.totals()["different"] == 0
