"""Alarm history latency over a generated million alarms, p50/p99 per query, against a scan.

Builds a scratch database on the local PostgreSQL with a province of ``--enterprises``
enterprises in 11 counties (one hazard source, ten tags each) and ``--alarms`` alarms spread
over a year, then times the history queries the dashboard runs (``dashboard.history``: the
first page for a province officer, a county officer and an enterprise; a week of 一级 limit
alarms; one hazard source; a page 200 pages deep by cursor; the capped total), each
``--repeat`` times with varied parameters. The baseline, measured in the same run, is the
province's first page with index scans switched off (what the query costs without its
indexes); each line prints its ratio to it.

    .venv/bin/python -m bench.history_bench [--alarms 1000000] [--enterprises 200] [--repeat 30]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import psycopg

from bench.scratch import scratch_database
from dashboard.db import SESSION_OPTIONS
from dashboard.history import HistoryQuery, count, search
from dashboard.scope import Principal, Role
from ingest.migrate import migrate

COUNTIES = [f"3301{n:02d}" for n in (2, 5, 6, 8, 9, 10, 11, 12, 13, 22, 27)]
END = datetime(2026, 12, 1, tzinfo=UTC)
PAGE = 50


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alarms", type=int, default=1_000_000, help="alarms to generate")
    parser.add_argument("--enterprises", type=int, default=200, help="enterprises in the province")
    parser.add_argument("--repeat", type=int, default=30, help="runs of each query")
    args = parser.parse_args(argv)
    with scratch_database() as url:
        began = time.perf_counter()
        generate(url, args.alarms, args.enterprises)
        took = time.perf_counter() - began
        print(f"generated {args.alarms:,} alarms of {args.enterprises} enterprises in {took:.1f} s")
        asyncio.run(measure(url, args.repeat, args.enterprises))


def generate(url: str, alarms: int, enterprises: int) -> None:
    migrate(url)
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO enterprises (code, name, credit_code, division)"
            " SELECT 'EB' || lpad(n::text, 6, '0'), '企业' || n, lpad(n::text, 18, '0'),"
            " (%s::text[])[1 + n %% %s]"
            " FROM generate_series(1, %s) n",
            (COUNTIES, len(COUNTIES), enterprises),
        )
        conn.execute(
            "INSERT INTO hazard_sources (enterprise_id, code, name, people_within_500m, s, r, grade,"
            " principal, technical, operational)"
            " SELECT id, 'HS' || id, '罐区' || id, 50, 2, 3, 1 + id % 4, 'a', 'b', 'c'"
            " FROM enterprises"
        )
        conn.execute(
            "INSERT INTO equipment (hazard_source_id, code, name, kind) SELECT id, 'T' || id, '储罐', 'tank'"
            " FROM hazard_sources"
        )
        conn.execute("INSERT INTO gateways (enterprise_id, code) SELECT id, 'gw01' FROM enterprises")
        conn.execute(
            "INSERT INTO tags (enterprise_id, hazard_source_id, equipment_id, gateway_id, code, name, kind,"
            " unit, range_low, range_high, h, hh, deadband, poll_interval_s)"
            " SELECT hs.enterprise_id, hs.id, eq.id, g.id, 'LT' || k, '液位' || k, 'level', '%', 0, 100,"
            " 85, 90, 2, 1 FROM hazard_sources hs JOIN equipment eq ON eq.hazard_source_id = hs.id"
            " JOIN gateways g ON g.enterprise_id = hs.enterprise_id, generate_series(1, 10) k"
        )
        conn.execute(
            "INSERT INTO alarms (tag_id, subject_kind, subject_id, enterprise_id, hazard_source_id,"
            " equipment_id, condition, kind, level, priority, state, active, raised_at, value, limit_value,"
            " cleared_at, closed_at, disposition, feedback_required)"
            " SELECT t.id, 'tag', t.id, t.enterprise_id, t.hazard_source_id, t.equipment_id,"
            " (ARRAY['HIGH', 'PREDICT', 'FAULT', 'STALE'])[1 + k],"
            " (ARRAY['limit', 'predict', 'data', 'offline'])[1 + k],"
            " 1, 1 + (n * 7) %% 3, 'NORMAL', false, at, 91, 90, at + interval '5 min', at + interval '9 min',"
            " 'accepted', true"
            " FROM (SELECT n, (n * 2654435761) %% (SELECT max(id) FROM tags) + 1 AS tag, n %% 4 AS k,"
            "   %s - (random() * interval '365 days') AS at FROM generate_series(1, %s) n) g"
            " JOIN tags t ON t.id = g.tag",
            (END, alarms),
        )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


def _principals(enterprises: int) -> dict[str, Principal]:
    return {
        "province officer": Principal(1, "duty", Role.DUTY_OFFICER, "33"),
        "county officer": Principal(2, "county", Role.DUTY_OFFICER, COUNTIES[3]),
        "enterprise": Principal(3, "qiye", Role.ENTERPRISE, enterprise_id=enterprises // 2),
    }


async def _time(repeat: int, run: Callable[[int], Awaitable[object]]) -> list[float]:
    await run(0)  # warm the cache once
    times = []
    for i in range(repeat):
        began = time.perf_counter()
        await run(i)
        times.append((time.perf_counter() - began) * 1000)
    return times


async def measure(url: str, repeat: int, enterprises: int) -> None:
    who = _principals(enterprises)
    rng = random.Random(1)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, options=SESSION_OPTIONS) as conn:
        deep_rows, _ = await search(conn, who["province officer"], HistoryQuery(), 1)
        cursors = []
        query = HistoryQuery()
        for _ in range(200):  # walk 200 pages down to find a deep cursor
            _, cursor = await search(conn, who["province officer"], query, PAGE)
            query = HistoryQuery.parse({"cursor": cursor or ""})
            cursors.append(cursor)
        deep = HistoryQuery.parse({"cursor": cursors[-1] or ""})
        assert deep_rows

        def week(i: int) -> HistoryQuery:
            until = END - timedelta(days=7 * (i % 50))
            return HistoryQuery(
                priorities=(1,), kinds=("limit",), since=until - timedelta(days=7), until=until
            )

        province, county, enterprise = who["province officer"], who["county officer"], who["enterprise"]

        def source(i: int) -> HistoryQuery:
            return HistoryQuery(hazard_source=f"HS{1 + rng.randrange(enterprises)}")

        cases: list[tuple[str, Callable[[int], Awaitable[object]]]] = [
            ("province officer, first page", lambda i: search(conn, province, HistoryQuery(), PAGE)),
            ("county officer, first page", lambda i: search(conn, county, HistoryQuery(), PAGE)),
            ("enterprise, first page", lambda i: search(conn, enterprise, HistoryQuery(), PAGE)),
            ("province, a week of 一级 limit alarms", lambda i: search(conn, province, week(i), PAGE)),
            ("province, one hazard source", lambda i: search(conn, province, source(i), PAGE)),
            ("province, page 200 by cursor", lambda i: search(conn, province, deep, PAGE)),
            ("province, total (capped at 10,000)", lambda i: count(conn, province, HistoryQuery())),
        ]

        async def unindexed(i: int) -> object:
            await conn.execute("SET enable_indexscan = off")
            await conn.execute("SET enable_bitmapscan = off")
            try:
                return await search(conn, who["province officer"], HistoryQuery(), PAGE)
            finally:
                await conn.execute("RESET enable_indexscan")
                await conn.execute("RESET enable_bitmapscan")

        baseline = await _time(max(5, repeat // 3), unindexed)
        base_p50 = statistics.median(baseline)
        print(f"{'query':<40} {'p50 ms':>8} {'p99 ms':>8} {'÷ scan':>8}")
        for label, run in cases:
            times = await _time(repeat, run)
            p50 = statistics.median(times)
            p99 = statistics.quantiles(times, n=100)[98] if len(times) > 1 else times[0]
            print(f"{label:<40} {p50:8.2f} {p99:8.2f} {p50 / base_p50:8.4f}")
        p99 = statistics.quantiles(baseline, n=100)[98] if len(baseline) > 1 else baseline[0]
        print(f"{'baseline: first page, no index scans':<40} {base_p50:8.2f} {p99:8.2f} {1.0:8.4f}")


if __name__ == "__main__":
    main()
