"""Storage backends: plain PostgreSQL partitions, and TimescaleDB where the extension exists."""

from __future__ import annotations

import psycopg
import pytest

from ingest.migrate import available, migrate


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
        assert created == (2,)
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
