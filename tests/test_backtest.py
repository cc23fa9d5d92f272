"""Backtest: a changed rule set over stored history, against the alarms ingest actually raised."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from hazardwatch.ledger import Plant, load_plant
from hazardwatch.quality import Quality
from ingest.backtest import backtest
from ingest.ledger_sync import sync_ledger
from ingest.migrate import migrate
from ingest.pipeline import Pipeline
from tests.support import ROOT, sample_plant_doc, write_plant
from tests.test_pipeline import batch_message

PEAKS = [86.0, 88.0, 90.5, 86.0]  # LT101: H 85, HH 90, on-delay 60 s; the last one is too short


def _history(database_url: str, sample_plant: Plant) -> tuple[datetime, datetime]:
    """Four excursions of LT101 through ingest, readings every 10 s; returns the span."""
    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        sync_ledger(conn, sample_plant)
    t0 = int(time.time() * 1000) - 3 * 3_600_000
    t = t0
    readings: list[tuple[str, int, float | None, Quality]] = []
    for n, peak in enumerate(PEAKS):
        lasting = 30_000 if n == len(PEAKS) - 1 else 120_000
        for _ in range(30):
            readings.append(("LT101", t, 50.0, Quality.GOOD))
            t += 10_000
        for _ in range(lasting // 10_000):
            readings.append(("LT101", t, peak, Quality.GOOD))
            t += 10_000
    for _ in range(30):
        readings.append(("LT101", t, 50.0, Quality.GOOD))
        t += 10_000
    pipeline = Pipeline(database_url)
    try:
        for seq, start in enumerate(range(0, len(readings), 50), 1):
            pipeline.process([batch_message(seq, readings[start : start + 50])])
    finally:
        pipeline.close()
    return datetime.fromtimestamp(t0 / 1000 - 1, UTC), datetime.fromtimestamp(t / 1000 + 1, UTC)


def test_backtest_agrees_with_ingest_and_shows_a_changed_limit(database_url: str, sample_plant: Plant,
                                                                tmp_path: Path) -> None:  # fmt: skip
    start, end = _history(database_url, sample_plant)
    with psycopg.connect(database_url) as conn:
        same = backtest(conn, sample_plant, start, end)
    assert same.raised[("E330110001", "LT101", "HIGH")] == 3  # the short fourth never held 60 s
    # the engine over history is the engine ingest ran; this ingest never ticked (no clock), the
    # backtest's replayed clock finds the other Modbus tags silent
    assert {k: n for k, n in same.would_raise.items() if k[2] != "STALE"} == same.raised
    assert same.readings == sum(30 + 12 for _ in PEAKS[:-1]) + 30 + 3 + 30

    doc = sample_plant_doc()
    tags = doc["enterprises"][0]["hazard_sources"][0]["equipment"][0]["tags"]
    lt101 = next(tag for tag in tags if tag["code"] == "LT101")
    lt101["limits"] = {**lt101["limits"], "h": 87.0}  # the proposed change
    changed = write_plant(doc, tmp_path)
    with psycopg.connect(database_url) as conn:
        proposed = backtest(conn, load_plant(changed), start, end)
    assert proposed.would_raise[("E330110001", "LT101", "HIGH")] == 2  # the 86 % excursion drops out
    assert proposed.raised == same.raised

    env = {**os.environ, "HW_DATABASE_URL": database_url}
    cli = subprocess.run(
        [sys.executable, "-m", "hazardwatch", "rules", "backtest", "--devices", str(changed),
         "--from", start.isoformat(), "--to", end.isoformat()],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=env,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert "readings/s" in cli.stdout
    line = next(line for line in cli.stdout.splitlines() if "LT101" in line and "HIGH" in line)
    assert line.split()[-3:] == ["3", "2", "-1"]
