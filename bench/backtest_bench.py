"""Backtest speed: the sample plant's rules over hours of stored 1 Hz history, in readings/s.

Builds a scratch database on the local PostgreSQL with the sample plant and ``--hours`` of
readings for every tag (random walks around normal, with excursions), then runs
``ingest.backtest`` over it: prints the readings per second of the whole backtest (reading the
history out of the database included) and of the engine alone.

    .venv/bin/python -m bench.backtest_bench [--hours 6]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg

from bench.scratch import scratch_database
from hazardwatch.ledger import load_plant
from ingest.backtest import backtest
from ingest.ledger_sync import sync_ledger
from ingest.migrate import migrate
from ingest.storage import backend_of, write_readings

SAMPLE = "devices.yaml"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hours", type=float, default=6, help="hours of 1 Hz history per tag")
    args = parser.parse_args(argv)
    with scratch_database() as url:
        run(url, args.hours)


def run(url: str, hours: float) -> None:
    plant = load_plant(SAMPLE)
    migrate(url)
    rng = np.random.default_rng(3)
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(hours=hours)
    with psycopg.connect(url) as conn:
        sync_ledger(conn, plant)
        conn.commit()
        rows = conn.execute("SELECT id, range_low, range_high FROM tags ORDER BY id").fetchall()
        tag_ids = np.array([r[0] for r in rows], dtype=np.int64)
        low = np.array([r[1] for r in rows], dtype=np.float64)
        high = np.array([r[2] for r in rows], dtype=np.float64)
        level = low + (high - low) * 0.5
        seconds = int(hours * 3600)
        t0 = int(start.timestamp() * 1000)
        written = 0
        backend = backend_of(conn)  # TimescaleDB or plain PostgreSQL, as the database has
        for chunk in range(0, seconds, 600):  # ten minutes at a time
            steps = min(600, seconds - chunk)
            ts = t0 + (chunk + np.repeat(np.arange(steps), tag_ids.size)) * 1000
            walk = rng.normal(0, 0.004, (steps, tag_ids.size)) * (high - low)
            excursion = (rng.random(tag_ids.size) < 0.02) * (high - low) * 0.3
            values = np.clip(level + np.cumsum(walk, axis=0) + excursion, low, high)
            level = values[-1]
            with conn.transaction():
                conn.execute("SELECT hw_ensure_partitions(%s, %s)", (start.date(), end.date()))
                written += write_readings(conn, backend, ts.astype(np.int64), np.tile(tag_ids, steps),
                                          values.ravel(), np.zeros(ts.size, np.int16))  # fmt: skip
        began = time.perf_counter()
        report = backtest(conn, plant, start, end + timedelta(seconds=1))
        total = time.perf_counter() - began
    print(f"backtest: sample plant ({tag_ids.size} tags), {hours:g} h of 1 Hz history, {written:,} readings")
    print(f"  whole backtest (history read by COPY)  {report.readings / total:>12,.0f} readings/s")
    print(f"  engine alone                           {report.rate:>12,.0f} readings/s")
    print(f"  alarms it would raise                  {sum(report.would_raise.values()):>12}")
    print(f"  a month of this plant would take about {30 * 24 / hours * total:,.0f} s")


if __name__ == "__main__":
    main()
