"""Storage backends: plain PostgreSQL partitions, and TimescaleDB where the extension exists."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest

from hazardwatch.errors import ConfigError
from hazardwatch.ledger import Plant
from ingest.ledger_sync import sync_ledger
from ingest.migrate import available, migrate
from ingest.storage import Retention, maintain, online_rates, resolution_for, trend_query, write_readings


def _has_timescale(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
            is not None
        )


def test_migrations_are_versioned_and_idempotent(database_url: str) -> None:
    backend, applied = migrate(database_url)
    assert applied == [f"{m.version:04d}_{m.name}" for m in available(backend)]
    assert migrate(database_url) == (backend, [])


def test_plain_backend_partitions_by_day(database_url: str) -> None:
    if _has_timescale(database_url):
        pytest.skip("TimescaleDB is installed here: the plain path is chosen only without it")
    backend, _ = migrate(database_url)
    assert backend == "plain"
    with psycopg.connect(database_url) as conn:
        parts = conn.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'readings'::regclass"
        ).fetchone()
        assert parts is not None
        assert parts[0] >= 8  # yesterday, today and a week ahead
        created = conn.execute("SELECT hw_ensure_partitions('2020-01-01', '2020-01-02')").fetchone()
        assert created == (3,)  # two days of raw data and the month of minute rollups holding them
        conn.execute("INSERT INTO readings VALUES ('2020-01-01T23:59:59Z', 1, 1.0, 0)")
        conn.execute("INSERT INTO readings VALUES ('2020-01-01T23:59:59Z', 1, 2.0, 0) ON CONFLICT DO NOTHING")
        where = conn.execute("SELECT tableoid::regclass::text, value FROM readings").fetchall()
        assert where == [("readings_p20200101", 1.0)]


def test_timescale_backend_uses_a_compressed_hypertable(database_url: str) -> None:
    if not _has_timescale(database_url):
        pytest.skip("the TimescaleDB extension is not installed on this PostgreSQL server")
    backend, _ = migrate(database_url)
    assert backend == "timescale"
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT hypertable_name FROM timescaledb_information.hypertables"
            " WHERE hypertable_name = 'readings'"
        ).fetchone()
        assert row == ("readings",)
        jobs = conn.execute(
            "SELECT proc_name FROM timescaledb_information.jobs WHERE hypertable_name = 'readings'"
        ).fetchall()
        assert {"policy_compression", "policy_retention"} <= {str(j[0]) for j in jobs}
        caggs = conn.execute(
            "SELECT view_name FROM timescaledb_information.continuous_aggregates ORDER BY view_name"
        ).fetchall()
        assert caggs == [("readings_1h",), ("readings_1m",)]
        refresh = conn.execute(
            "SELECT count(*) FROM timescaledb_information.jobs"
            " WHERE proc_name = 'policy_refresh_continuous_aggregate'"
        ).fetchone()
        assert refresh == (2,)
        done = maintain(conn, Retention(raw_days=45, minute_days=400, hour_days=3650))
        assert "retention policy on readings: 45 days" in done
        retention = conn.execute(
            "SELECT config->>'drop_after' FROM timescaledb_information.jobs"
            " WHERE proc_name = 'policy_retention' AND hypertable_name = 'readings'"
        ).fetchone()
        assert retention == ("45 days",)


Row = tuple[datetime, int, float | None, int]


def _write(conn: psycopg.Connection[tuple[object, ...]], rows: Sequence[Row]) -> int:
    ts = np.array([int(t.timestamp() * 1000) for t, _, _, _ in rows], dtype=np.int64)
    tag_ids = np.array([tag for _, tag, _, _ in rows], dtype=np.int32)
    values = np.array([np.nan if v is None else v for _, _, v, _ in rows], dtype=np.float64)
    quality = np.array([q for _, _, _, q in rows], dtype=np.int16)
    with conn.transaction():
        conn.execute("SELECT hw_ensure_partitions(%s, %s)", (rows[0][0].date(), rows[-1][0].date()))
        return write_readings(conn, "plain", ts, tag_ids, values, quality)


@pytest.fixture
def plain(database_url: str, sample_plant: Plant) -> str:
    if _has_timescale(database_url):
        pytest.skip("TimescaleDB is installed here: the plain path is chosen only without it")
    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        sync_ledger(conn, sample_plant)
    return database_url


def _tag(url: str, code: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT id FROM tags WHERE code = %s", (code,)).fetchone()
    assert row is not None
    return int(str(row[0]))


def test_plain_rollups_count_each_reading_once_whatever_the_order(plain: str) -> None:
    t0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    tag = _tag(plain, "LT101")
    first: list[Row] = [(t0 + timedelta(seconds=s), tag, float(s), 0) for s in (0, 10, 20)]
    late: list[Row] = [(t0 + timedelta(seconds=5), tag, 100.0, 0), (t0 + timedelta(seconds=30), tag, None, 3)]
    with psycopg.connect(plain) as conn:
        assert _write(conn, first) == 3
        assert _write(conn, first) == 0  # redelivered: the rollups must not count it again
        assert _write(conn, late + first) == 2  # late and out of order, mixed with duplicates
        minute = conn.execute(
            "SELECT min, max, avg, last, count FROM readings_1m WHERE tag_id = %s", (tag,)
        ).fetchall()
        hour = conn.execute(
            "SELECT min, max, avg, last, count FROM readings_1h WHERE tag_id = %s", (tag,)
        ).fetchall()
    # values 0, 5→100, 10, 20 and one reading without a value (comm failure at :30)
    assert minute == [(0.0, 100.0, pytest.approx(32.5), 20.0, 5)]
    assert hour == minute


def test_trends_pick_raw_or_rollups_by_span(plain: str) -> None:
    assert [resolution_for(timedelta(hours=h)) for h in (1, 6, 7, 24 * 7, 24 * 8)] == [
        "raw",
        "raw",
        "1m",
        "1m",
        "1h",
    ]
    t0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    tag = _tag(plain, "LT101")
    with psycopg.connect(plain) as conn:
        _write(conn, [(t0 + timedelta(seconds=30 * i), tag, float(i), 0) for i in range(240)])  # two hours
        end = t0 + timedelta(hours=2)
        raw = conn.execute(trend_query("raw").encode(), (tag, t0, end, 10_000)).fetchall()
        minutes = conn.execute(trend_query("1m").encode(), (tag, t0, end, 10_000)).fetchall()
        hours = conn.execute(trend_query("1h").encode(), (tag, t0, end, 10_000)).fetchall()
    assert (len(raw), len(minutes), len(hours)) == (240, 120, 2)
    assert minutes[0][1:] == (0.5, 0.0, 1.0, 0)  # avg, min, max, quality of the first minute
    assert hours[1][1:4] == (179.5, 120.0, 239.0)


def test_retention_drops_old_partitions_and_keeps_the_rest(plain: str) -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    old, recent = now - timedelta(days=100), now - timedelta(days=10)
    tag = _tag(plain, "LT101")
    with psycopg.connect(plain) as conn:
        _write(conn, [(old, tag, 1.0, 0)])
        _write(conn, [(recent, tag, 2.0, 0)])
        conn.commit()
        done = maintain(conn, Retention(raw_days=30, minute_days=60, hour_days=3650), now)
        raw = conn.execute("SELECT value FROM readings").fetchall()
        minutes = conn.execute("SELECT avg FROM readings_1m ORDER BY bucket").fetchall()
        hours = conn.execute("SELECT avg FROM readings_1h ORDER BY bucket").fetchall()
    assert raw == [(2.0,)]
    assert minutes == [(2.0,)]
    assert hours == [(1.0,), (2.0,)]  # hour rollups are kept for years
    assert any("readings_p" in line for line in done)
    assert any("rollup_1m_p" in line for line in done)


def test_retention_settings_are_checked() -> None:
    assert Retention.from_env({}) == Retention(90, 400, 3650)
    assert Retention.from_env({"HW_RETAIN_RAW_DAYS": "45"}).raw_days == 45
    with pytest.raises(ConfigError, match="at least 30"):
        Retention.from_env({"HW_RETAIN_RAW_DAYS": "7"})
    with pytest.raises(ConfigError, match="must not shrink"):
        Retention.from_env({"HW_RETAIN_1M_DAYS": "50"})
    with pytest.raises(ConfigError, match="whole numbers"):
        Retention.from_env({"HW_RETAIN_1H_DAYS": "ten years"})


def _installed(conn: psycopg.Connection[tuple[object, ...]], at: datetime) -> None:
    """The ledger's tags registered a day before ``at``, every gateway first heard at ``at``."""
    conn.execute("UPDATE tags SET created_at = %s", (at - timedelta(days=1),))
    conn.execute("UPDATE gateways SET first_seen_at = %s", (at,))


def test_online_rate_compares_received_with_expected_readings(plain: str) -> None:
    t0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    with psycopg.connect(plain) as conn:
        _installed(conn, t0)
        lt101 = conn.execute("SELECT id, poll_interval_s FROM tags WHERE code = 'LT101'").fetchone()
        assert lt101 is not None
        tag_id, poll = lt101
        assert poll == 1.0
        # LT101 reports every second for 10 minutes except for 2 minutes of silence
        rows: list[Row] = [
            (t0 + timedelta(seconds=s), int(tag_id), 50.0, 0) for s in range(600) if not 120 <= s < 240
        ]
        _write(conn, rows)
        tags = {r.key: r for r in online_rates(conn, t0, t0 + timedelta(minutes=10), "tag")}
        gateways = {r.key: r for r in online_rates(conn, t0, t0 + timedelta(minutes=10), "gateway")}
    assert (tags["E330110001/LT101"].expected, tags["E330110001/LT101"].received) == (600, 480)
    assert tags["E330110001/LT101"].rate == pytest.approx(0.8)
    assert tags["E330110001/PT101"].rate == 0.0
    assert 0 < gateways["E330110001/gw01"].rate < 0.1
    assert gateways["E330281002/gw01"].rate == 0.0


def test_a_tag_reporting_faster_than_its_poll_period_cannot_make_up_for_its_silence(plain: str) -> None:
    """An OPC-UA subscription may send ten values a second: 3 minutes of them are 3 of 10 minutes."""
    t0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    with psycopg.connect(plain) as conn:
        _installed(conn, t0)
        lt101 = conn.execute("SELECT id FROM tags WHERE code = 'LT101'").fetchone()  # polled every 1 s
        assert lt101 is not None
        rows: list[Row] = [
            (t0 + timedelta(milliseconds=100 * i), int(str(lt101[0])), 50.0 + i % 3, 0) for i in range(1800)
        ]
        _write(conn, rows)
        tags = {r.key: r for r in online_rates(conn, t0, t0 + timedelta(minutes=10), "tag")}
    assert (tags["E330110001/LT101"].expected, tags["E330110001/LT101"].received) == (600, 180)


def test_online_rate_counts_a_tag_from_when_it_could_be_read(plain: str) -> None:
    """Over an hour: LT101 entered the ledger 5 minutes before its end and has read every second
    since (100 %, not 8 %); PT101 entered with it, on the same gateway, and never answered (0 %);
    the other enterprise's gateway was never heard from, so nothing of it is expected yet."""
    t0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    added = t0 + timedelta(minutes=55)
    with psycopg.connect(plain) as conn:
        conn.execute("UPDATE tags SET created_at = %s", (added,))
        conn.execute("UPDATE gateways g SET first_seen_at = %s FROM enterprises e"
                     " WHERE e.id = g.enterprise_id AND e.code = 'E330110001'", (added,))  # fmt: skip
        lt101 = conn.execute("SELECT id FROM tags WHERE code = 'LT101'").fetchone()
        assert lt101 is not None
        _write(conn, [(added + timedelta(seconds=s), int(str(lt101[0])), 50.0, 0) for s in range(300)])
        tags = {r.key: r for r in online_rates(conn, t0, t0 + timedelta(hours=1), "tag")}
        enterprises = {r.key for r in online_rates(conn, t0, t0 + timedelta(hours=1), "enterprise")}
    assert (tags["E330110001/LT101"].expected, tags["E330110001/LT101"].received) == (300, 300)
    assert (tags["E330110001/PT101"].expected, tags["E330110001/PT101"].received) == (300, 0)
    assert enterprises == {"E330110001"}
