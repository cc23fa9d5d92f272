"""Versioned schema migrations, with the storage backend chosen by probing TimescaleDB.

Migrations are SQL files ``NNNN_name.sql`` applied in order, once each. A migration that
differs by backend comes as ``NNNN_name.timescale.sql`` and ``NNNN_name.plain.sql``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import psycopg

from ingest.errors import MigrationError

logger = logging.getLogger(__name__)

Backend = Literal["timescale", "plain"]
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(timescale|plain))?\.sql$")
_LOCK_KEY = 0x48570001  # advisory lock: one migrator at a time


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def available(backend: Backend) -> list[Migration]:
    """The migrations for a backend, in order."""
    found: dict[int, Migration] = {}
    for entry in resources.files("ingest.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match is None:
            continue
        version, name, variant = int(match[1]), match[2], match[3]
        if variant is not None and variant != backend:
            continue
        if version in found:
            raise MigrationError(f"two migrations with version {version:04d}")
        found[version] = Migration(version, name, entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def probe_timescale(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    """Whether the TimescaleDB extension is (or can be) installed in this database."""
    row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    if row is None:
        return False
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error as err:
        logger.warning("TimescaleDB is available but cannot be created (%s); using plain PostgreSQL", err)
        return False
    return True


def current_backend(conn: psycopg.Connection[tuple[object, ...]]) -> Backend | None:
    if conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,):
        return None
    row = conn.execute("SELECT backend FROM schema_migrations ORDER BY version LIMIT 1").fetchone()
    return None if row is None else ("timescale" if row[0] == "timescale" else "plain")


def migrate(url: str) -> tuple[Backend, list[str]]:
    """Bring the schema up to date; returns the backend and the migrations applied now."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            return _migrate_locked(conn)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def _migrate_locked(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[Backend, list[str]]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL, backend text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    backend = current_backend(conn)
    if backend is None:
        backend = "timescale" if probe_timescale(conn) else "plain"
        logger.info("storage backend: %s", backend)
    done = {int(str(r[0])) for r in conn.execute("SELECT version FROM schema_migrations").fetchall()}
    applied: list[str] = []
    for migration in available(backend):
        if migration.version in done:
            continue
        label = f"{migration.version:04d}_{migration.name}"
        try:
            with conn.transaction():
                conn.execute(migration.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, backend) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, backend),
                )
        except psycopg.Error as err:
            raise MigrationError(f"migration {label} failed: {err}") from err
        logger.info("applied migration %s", label)
        applied.append(label)
    return backend, applied
