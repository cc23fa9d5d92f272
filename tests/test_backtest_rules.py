"""Backtest with a rules file: composites over stored history, and a tuning tried before applying it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from hazardwatch.ledger import Plant
from hazardwatch.ledger.rulesfile import with_rules
from hazardwatch.quality import Quality
from ingest.backtest import backtest
from ingest.ledger_sync import sync_ledger
from ingest.migrate import migrate
from ingest.pipeline import Pipeline
from tests.support import ROOT, SAMPLE_DEVICES
from tests.test_pipeline import batch_message

FARM = "HS330110001-01"
TUNING = f"""\
version: 1
tags:
  - tag: E330110001/GT101
    on_delay_s: 30   # the 20 s leaks of GT101 no longer alarm
hazard_sources:
  - hazard_source: E330110001/{FARM}
    voting:
      - {{code: GV101, tags: [GT101, GT102, GT103], k: 3}}
    source_warning: null
"""


def _history(database_url: str, plant: Plant) -> tuple[datetime, datetime]:
    """Twice GT101 and GT102 at 30 %LEL for 20 s (readings every 5 s), through ingest."""
    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        sync_ledger(conn, plant)
    t0 = int(time.time() * 1000) - 3_600_000
    readings: list[tuple[str, int, float | None, Quality]] = []
    t = t0
    for leak in (False, True, False, True, False):
        for _ in range(6):
            for tag in ("GT101", "GT102", "GT103"):
                value = 30.0 if leak and tag != "GT103" else 3.0
                readings.append((tag, t, value, Quality.GOOD))
            t += 5_000 if leak else 10_000
    pipeline = Pipeline(database_url)
    try:
        for seq, start in enumerate(range(0, len(readings), 7), 1):
            pipeline.process([batch_message(seq, readings[start : start + 7])])
    finally:
        pipeline.close()
    return datetime.fromtimestamp(t0 / 1000 - 1, UTC), datetime.fromtimestamp(t / 1000 + 1, UTC)


def test_backtest_replays_composites_and_a_rules_file_tunes_them(database_url: str, sample_plant: Plant,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    start, end = _history(database_url, sample_plant)
    with psycopg.connect(database_url) as conn:
        same = backtest(conn, sample_plant, start, end)
    expected = {("E330110001", code, condition): 2 for code, condition in
                [("GT101", "HIGH"), ("GT102", "HIGH"), ("GV101", "VOTE"), (FARM, "SOURCE")]}  # fmt: skip
    assert dict(same.raised) == expected
    # day chunks or ingest's batches of 7: the same composites (this ingest never ticked: the
    # backtest's replayed clock finds the other Modbus tags silent)
    assert _without_stale(same.would_raise) == same.raised

    rules = tmp_path / "tuning.yaml"
    rules.write_text(TUNING, encoding="utf-8")
    with psycopg.connect(database_url) as conn:
        tuned = backtest(conn, with_rules(sample_plant, rules), start, end)
    assert _without_stale(tuned.would_raise) == {("E330110001", "GT102", "HIGH"): 2}

    env = {**os.environ, "HW_DATABASE_URL": database_url}
    cli = subprocess.run(
        [sys.executable, "-m", "hazardwatch", "rules", "backtest", "--devices", str(SAMPLE_DEVICES),
         "--rules", str(rules), "--from", start.isoformat(), "--to", end.isoformat()],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=env,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert f"with {rules}" in cli.stdout.splitlines()[0]
    lines = cli.stdout.splitlines()
    table = lines[lines.index(next(line for line in lines if line.split()[:1] == ["enterprise"])) + 1 :]
    table = table[: table.index(next(line for line in table if line.split()[:1] == ["total"]))]
    rows = {tuple(line.split()[:3]): line.split()[-3:] for line in table if "STALE" not in line}
    assert rows == {
        ("E330110001", "GT101", "HIGH"): ["2", "0", "-2"],
        ("E330110001", "GT102", "HIGH"): ["2", "2", "+0"],
        ("E330110001", "GV101", "VOTE"): ["2", "0", "-2"],
        ("E330110001", FARM, "SOURCE"): ["2", "0", "-2"],
    }


def _without_stale(counts: Mapping[tuple[str, str, str], int]) -> dict[tuple[str, str, str], int]:
    return {k: n for k, n in counts.items() if k[2] != "STALE"}
