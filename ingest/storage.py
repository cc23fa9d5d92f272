"""The storage interface: raw readings and their rollups, on TimescaleDB or plain PostgreSQL.

The backend is chosen once, when the schema is created (``ingest.migrate`` probes for the
extension), and read back from ``schema_migrations``. Everything that differs lives here:

- **writes** — a binary COPY into a staging table, then an idempotent insert; on plain
  PostgreSQL the same statement folds the rows it actually inserted into the 1-minute and
  1-hour rollups, so a redelivered batch changes nothing. TimescaleDB's continuous aggregates
  do that on their own.
- **retention** — raw data, minute rollups and hour rollups each kept for their own number of
  days (``Retention``): dropped partitions on plain PostgreSQL, retention policies on
  TimescaleDB, applied by ``maintain`` (ingest runs it at start and every hour).
- **reads** — ``trend_query`` picks raw data, minute or hour rollups by the span asked; both
  backends expose the rollups as ``readings_1m`` / ``readings_1h`` with the same columns.
- **online rate** — expected readings (from each tag's poll period) against received ones.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import numpy as np
import psycopg

from hazardwatch.clock import utc_from_ms
from hazardwatch.errors import ConfigError
from ingest import deadletters
from ingest.copybuf import readings_copy_buffer
from ingest.migrate import current_backend

logger = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[Any, ...]]
Backend = Literal["timescale", "plain"]
Resolution = Literal["raw", "1m", "1h"]

RAW_SPAN = timedelta(hours=6)  # up to this span a trend shows raw readings…
MINUTE_SPAN = timedelta(days=7)  # …then minute rollups up to this one, hour rollups beyond
MAINTENANCE_LOCK = 0x4857_0002  # one worker maintains at a time


@dataclass(frozen=True, slots=True)
class Retention:
    raw_days: int = 90
    minute_days: int = 400
    hour_days: int = 3650
    dead_letter_days: int = 30
    dead_letter_mb: int = 256  # payload bytes the dead letters keep at most, the oldest dropped first

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Retention:
        env = os.environ if environ is None else environ
        base = cls()
        try:
            retention = cls(
                int(env.get("HW_RETAIN_RAW_DAYS", base.raw_days)),
                int(env.get("HW_RETAIN_1M_DAYS", base.minute_days)),
                int(env.get("HW_RETAIN_1H_DAYS", base.hour_days)),
                int(env.get("HW_RETAIN_DEAD_LETTER_DAYS", base.dead_letter_days)),
                int(env.get("HW_DEAD_LETTER_MAX_MB", base.dead_letter_mb)),
            )
        except ValueError as err:
            raise ConfigError(
                f"HW_RETAIN_*_DAYS and HW_DEAD_LETTER_MAX_MB must be whole numbers: {err}"
            ) from err
        if retention.dead_letter_days < 1 or retention.dead_letter_mb < 1:
            raise ConfigError("HW_RETAIN_DEAD_LETTER_DAYS and HW_DEAD_LETTER_MAX_MB must be at least 1")
        if retention.raw_days < 30:
            raise ConfigError("HW_RETAIN_RAW_DAYS must be at least 30 (regulatory minimum for raw data)")
        if not retention.raw_days <= retention.minute_days <= retention.hour_days:
            raise ConfigError("retention must not shrink with resolution: raw ≤ 1-minute ≤ 1-hour days")
        return retention


def backend_of(conn: Conn) -> Backend:
    backend = current_backend(conn)
    if backend is None:
        raise ConfigError("the database has no schema yet: run `hazardwatch migrate`")
    return backend


# -- writes ------------------------------------------------------------------------------------
#
# The fast path COPYs the batch straight into ``readings`` inside a savepoint, and folds the
# batch into the rollups and latest values from aggregates computed in numpy (a row per tag and
# bucket, not per reading). A batch holding a reading that is already stored (a redelivery, a
# replay) violates the primary key; the savepoint is rolled back and the slow path takes over:
# COPY into a staging table, insert what is new, and fold only the rows actually inserted.

_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS readings_in (ts timestamptz, tag_id integer,"
    " value double precision, quality smallint) ON COMMIT DELETE ROWS"
)
_AGGREGATES = (
    "CREATE TEMP TABLE IF NOT EXISTS rollup_in (tag_id integer, bucket timestamptz, min double precision,"
    " max double precision, sum double precision, n integer, samples integer, last double precision,"
    " last_ts timestamptz) ON COMMIT DELETE ROWS"
)
_INSERT = (
    "INSERT INTO readings (ts, tag_id, value, quality) SELECT ts, tag_id, value, quality"
    " FROM readings_in ON CONFLICT DO NOTHING"
)
_FOLD = (
    " ON CONFLICT (tag_id, bucket) DO UPDATE SET min = least(r.min, EXCLUDED.min),"
    " max = greatest(r.max, EXCLUDED.max), sum = r.sum + EXCLUDED.sum, n = r.n + EXCLUDED.n,"
    " samples = r.samples + EXCLUDED.samples,"
    " last = CASE WHEN EXCLUDED.last_ts IS NOT NULL"
    " AND (r.last_ts IS NULL OR EXCLUDED.last_ts > r.last_ts) THEN EXCLUDED.last ELSE r.last END,"
    " last_ts = greatest(r.last_ts, EXCLUDED.last_ts)"
)
_COLUMNS = "tag_id, bucket, min, max, sum, n, samples, last, last_ts"


def _rollup_from_inserted(table: str, unit: str) -> str:
    return (
        f"{table} AS r ({_COLUMNS})"
        f" SELECT tag_id, date_trunc('{unit}', ts), min(value), max(value), coalesce(sum(value), 0),"
        " count(value), count(*), (array_agg(value ORDER BY ts DESC) FILTER (WHERE value IS NOT NULL))[1],"
        f" max(ts) FILTER (WHERE value IS NOT NULL) FROM ins GROUP BY 1, 2{_FOLD}"
    )


_INSERT_WITH_ROLLUPS = (
    f"WITH ins AS ({_INSERT} RETURNING ts, tag_id, value),"
    f" m AS (INSERT INTO {_rollup_from_inserted('rollup_1m', 'minute')} RETURNING 1),"
    f" h AS (INSERT INTO {_rollup_from_inserted('rollup_1h', 'hour')} RETURNING 1)"
    " SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM m), (SELECT count(*) FROM h)"
)
_LATEST_FROM_STAGING = (
    "INSERT INTO readings_latest (tag_id, ts, value, quality)"
    " SELECT DISTINCT ON (tag_id) tag_id, ts, value, quality FROM readings_in ORDER BY tag_id, ts DESC"
)
_LATEST_UPSERT = (
    " ON CONFLICT (tag_id) DO UPDATE SET ts = EXCLUDED.ts, value = EXCLUDED.value,"
    " quality = EXCLUDED.quality, received_at = now() WHERE readings_latest.ts < EXCLUDED.ts"
)


def write_readings(conn: Conn, backend: Backend, ts: np.ndarray, tag_ids: np.ndarray, values: np.ndarray,
                   quality: np.ndarray) -> int:  # fmt: skip
    """Store readings once each (by tag and source time), keep rollups and latest values; rows added."""
    buffer = readings_copy_buffer(ts, tag_ids, values, quality)
    try:
        with (
            conn.transaction(),  # a savepoint inside the caller's transaction
            conn.cursor() as cur,
            cur.copy("COPY readings (ts, tag_id, value, quality) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.write(buffer)
    except psycopg.errors.UniqueViolation:
        return _write_idempotent(conn, backend, buffer)
    if backend == "plain":
        _fold_aggregates(conn, ts, tag_ids, values)
    _latest_from_arrays(conn, ts, tag_ids, values, quality)
    return int(ts.size)


def _write_idempotent(conn: Conn, backend: Backend, buffer: bytes) -> int:
    conn.execute(_STAGING)
    with conn.cursor() as cur:
        with cur.copy("COPY readings_in (ts, tag_id, value, quality) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(buffer)
        if backend == "plain":
            row = cur.execute(_INSERT_WITH_ROLLUPS).fetchone()
            written = int(row[0]) if row is not None else 0
        else:
            written = cur.execute(_INSERT).rowcount
        cur.execute(_LATEST_FROM_STAGING + _LATEST_UPSERT)
    return written


def _fold_aggregates(conn: Conn, ts: np.ndarray, tag_ids: np.ndarray, values: np.ndarray) -> None:
    """Fold a batch that was inserted whole into the minute and hour rollups."""
    conn.execute(_AGGREGATES)
    for table, bucket_ms in (("rollup_1m", 60_000), ("rollup_1h", 3_600_000)):
        rows = aggregate(ts, tag_ids, values, bucket_ms)
        with conn.cursor() as cur:
            with cur.copy(f"COPY rollup_in ({_COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(
                f"INSERT INTO {table} AS r ({_COLUMNS}) SELECT {_COLUMNS} FROM rollup_in{_FOLD}".encode()
            )
            cur.execute("DELETE FROM rollup_in")


def aggregate(ts: np.ndarray, tag_ids: np.ndarray, values: np.ndarray,
              bucket_ms: int) -> list[tuple[Any, ...]]:  # fmt: skip
    """Per (tag, bucket): min, max, sum, n (valued), samples, last value and its time (rows for COPY)."""
    bucket = ts - ts % bucket_ms
    order = np.lexsort((ts, bucket, tag_ids))
    tag_s, bucket_s, ts_s, val_s = tag_ids[order], bucket[order], ts[order], values[order]
    boundary = np.ones(order.size, bool)
    boundary[1:] = (tag_s[1:] != tag_s[:-1]) | (bucket_s[1:] != bucket_s[:-1])
    starts = np.flatnonzero(boundary)
    valued = np.isfinite(val_s)
    with np.errstate(invalid="ignore"):
        low = np.fmin.reduceat(np.where(valued, val_s, np.nan), starts)
        high = np.fmax.reduceat(np.where(valued, val_s, np.nan), starts)
    total = np.add.reduceat(np.where(valued, val_s, 0.0), starts)
    n = np.add.reduceat(valued.astype(np.int64), starts)
    samples = np.diff(np.append(starts, order.size))
    # the last valued reading of each group: the greatest position with a value inside the group
    last_pos = np.maximum.accumulate(np.where(valued, np.arange(order.size), -1))
    ends = np.append(starts[1:], order.size) - 1
    last = last_pos[ends]
    has_last = last >= starts
    rows = []
    for k in range(starts.size):
        at = int(last[k]) if has_last[k] else -1
        rows.append((
            int(tag_s[starts[k]]), utc_from_ms(int(bucket_s[starts[k]])),
            None if np.isnan(low[k]) else float(low[k]), None if np.isnan(high[k]) else float(high[k]),
            float(total[k]), int(n[k]), int(samples[k]),
            float(val_s[at]) if at >= 0 else None, utc_from_ms(int(ts_s[at])) if at >= 0 else None,
        ))  # fmt: skip
    return rows


def _latest_from_arrays(conn: Conn, ts: np.ndarray, tag_ids: np.ndarray, values: np.ndarray,
                        quality: np.ndarray) -> None:  # fmt: skip
    """Each tag's newest reading of the batch becomes its latest value, unless a newer one is stored."""
    order = np.lexsort((ts, tag_ids))
    last = np.append(tag_ids[order][1:] != tag_ids[order][:-1], True)
    pick = order[last]
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS latest_in (tag_id integer, ts timestamptz, value double precision,"
        " quality smallint) ON COMMIT DELETE ROWS"
    )
    with conn.cursor() as cur:
        with cur.copy("COPY latest_in (ts, tag_id, value, quality) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(readings_copy_buffer(ts[pick], tag_ids[pick], values[pick], quality[pick]))
        cur.execute(
            "INSERT INTO readings_latest (tag_id, ts, value, quality) SELECT tag_id, ts, value, quality"
            " FROM latest_in" + _LATEST_UPSERT
        )
        cur.execute("DELETE FROM latest_in")


# -- reads of raw history -----------------------------------------------------------------------

# One row of COPY (SELECT ts, tag_id, coalesce(value, 'NaN'), quality) … (FORMAT BINARY)
_ROW = np.dtype([
    ("nfields", ">i2"), ("ts_len", ">i4"), ("ts", ">i8"), ("tag_len", ">i4"), ("tag", ">i4"),
    ("val_len", ">i4"), ("val", ">f8"), ("q_len", ">i4"), ("q", ">i2"),
])  # fmt: skip
_COPY_HEADER = 19  # signature, flags and an empty header extension
PG_EPOCH_US = 946_684_800_000_000


def read_readings(conn: Conn, start: datetime, end: datetime) -> tuple[np.ndarray, ...]:
    """Readings with start ≤ ts < end as arrays (ts ms, tag id, value with NaN, quality), by binary COPY."""
    buffer = bytearray()
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY (SELECT ts, tag_id, coalesce(value, 'NaN'::float8), quality FROM readings"
            " WHERE ts >= %s AND ts < %s) TO STDOUT (FORMAT BINARY)",
            (start, end),
        ) as copy,
    ):
        for data in copy:
            buffer += data
    rows = np.frombuffer(memoryview(buffer)[_COPY_HEADER : len(buffer) - 2], dtype=_ROW)
    ts = (rows["ts"].astype(np.int64) + PG_EPOCH_US) // 1000
    return ts, rows["tag"].astype(np.int64), rows["val"].astype(np.float64), rows["q"].astype(np.int16)


# -- retention ---------------------------------------------------------------------------------


def maintain(conn: Conn, retention: Retention, now: datetime | None = None) -> list[str]:
    """Partitions ahead, and retention applied; returns what it did. Skips if another worker is at it."""
    now = now or datetime.now(UTC)
    locked = conn.execute("SELECT pg_try_advisory_lock(%s)", (MAINTENANCE_LOCK,)).fetchone()
    if not (locked and locked[0]):
        conn.commit()
        return []
    try:
        backend = backend_of(conn)
        if backend == "timescale":
            done = _retention_policies(conn, retention)
        else:
            done = _drop_expired(conn, retention, now)
        done += deadletters.prune(conn, retention.dead_letter_days, retention.dead_letter_mb * 2**20)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MAINTENANCE_LOCK,))
        conn.commit()
    for line in done:
        logger.info("storage maintenance: %s", line)
    return done


def prune_dead_letters(conn: Conn, retention: Retention) -> list[str]:
    """The dead letters' retention and size cap alone (every minute; ``maintain`` does it hourly)."""
    with conn.transaction():
        done = deadletters.prune(conn, retention.dead_letter_days, retention.dead_letter_mb * 2**20)
    for line in done:
        logger.info("storage maintenance: %s", line)
    return done


def _retention_policies(conn: Conn, retention: Retention) -> list[str]:
    done = []
    for relation, days in (("readings", retention.raw_days), ("readings_1m", retention.minute_days),
                           ("readings_1h", retention.hour_days)):  # fmt: skip
        conn.execute("SELECT remove_retention_policy(%s, if_exists => true)", (relation,))
        conn.execute("SELECT add_retention_policy(%s, drop_after => %s)", (relation, timedelta(days=days)))
        done.append(f"retention policy on {relation}: {days} days")
    return done


def _drop_expired(conn: Conn, retention: Retention, now: datetime) -> list[str]:
    today = now.astimezone(UTC).date()
    created = conn.execute(
        "SELECT hw_ensure_partitions(%s, %s)", (today, today + timedelta(days=7))
    ).fetchone()
    done = [f"created {created[0]} partitions ahead"] if created and created[0] else []
    raw_cutoff = today - timedelta(days=retention.raw_days)
    minute_cutoff = today - timedelta(days=retention.minute_days)
    for name in _partitions(conn, "readings"):
        day = _yyyymmdd(name.removeprefix("readings_p"))
        if day + timedelta(days=1) <= raw_cutoff:
            conn.execute(f'DROP TABLE "{name}"'.encode())
            done.append(f"dropped {name} (raw data older than {retention.raw_days} days)")
    for name in _partitions(conn, "rollup_1m"):
        month = _yyyymmdd(name.removeprefix("rollup_1m_p") + "01")
        if _next_month(month) <= minute_cutoff:
            conn.execute(f'DROP TABLE "{name}"'.encode())
            done.append(f"dropped {name} (minute rollups older than {retention.minute_days} days)")
    hour_cutoff = datetime.combine(today - timedelta(days=retention.hour_days), datetime.min.time(), UTC)
    deleted = conn.execute("DELETE FROM rollup_1h WHERE bucket < %s", (hour_cutoff,)).rowcount
    if deleted:
        done.append(f"deleted {deleted} hour rollups older than {retention.hour_days} days")
    return done


def _partitions(conn: Conn, parent: str) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s ORDER BY 1",
        (parent,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def _yyyymmdd(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


# -- reads -------------------------------------------------------------------------------------


def resolution_for(span: timedelta) -> Resolution:
    if span <= RAW_SPAN:
        return "raw"
    return "1m" if span <= MINUTE_SPAN else "1h"


def trend_query(resolution: Resolution) -> str:
    """SQL for a tag's trend (parameters: tag_id, start, end, limit): rows (ts_ms, value, min, max, quality).

    Raw rows carry the reading's quality; a rollup row carries 0 when every reading of the bucket
    had a value and 2 (bad) when some had none.
    """
    if resolution == "raw":
        return (
            "SELECT (extract(epoch FROM ts) * 1000)::bigint, value, value, value, quality FROM readings"
            " WHERE tag_id = %s AND ts >= %s AND ts <= %s ORDER BY ts LIMIT %s"
        )
    view = "readings_1m" if resolution == "1m" else "readings_1h"
    return (
        f"SELECT (extract(epoch FROM bucket) * 1000)::bigint, avg, min, max,"
        f" CASE WHEN avg IS NULL THEN 2 ELSE 0 END FROM {view}"
        " WHERE tag_id = %s AND bucket >= %s AND bucket <= %s ORDER BY bucket LIMIT %s"
    )


# -- online rate -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OnlineRate:
    level: str  # "enterprise", "gateway" or "tag"
    key: str
    expected: int
    received: int

    @property
    def rate(self) -> float:
        return min(self.received / self.expected, 1.0) if self.expected else 1.0


def online_rates(conn: Conn, since: datetime, until: datetime,
                 level: Literal["enterprise", "gateway", "tag"] = "gateway") -> list[OnlineRate]:  # fmt: skip
    """Received against expected readings of in-service tags over whole minutes of the span.

    Expected: the tag's part of the span over its poll period. A tag counts from when it entered
    the ledger and from its first reading — or, while it has none, from its gateway's first
    contact (a tag that never answers on a live gateway is offline); a gateway never heard from
    expects nothing yet. Received: readings stored (any quality, since a bad-quality reading still
    proves the link), counted from the minute rollups, at most a minute's worth of polls in each
    minute and the tag's expected count in all. A tag that reports faster than its poll period (an
    OPC-UA subscription) so cannot make up for the minutes it was silent, nor one tag for another.
    """
    key = {
        "enterprise": "e.code",
        "gateway": "e.code || '/' || g.code",
        "tag": "e.code || '/' || t.code",
    }[level]
    rows = conn.execute(
        f"SELECT {key}, sum(x.expected)::bigint,"
        " coalesce(sum(least(coalesce(r.received, 0), x.expected)), 0)::bigint"
        " FROM tags t JOIN gateways g ON g.id = t.gateway_id JOIN enterprises e ON e.id = t.enterprise_id"
        " CROSS JOIN LATERAL (SELECT greatest(%(since)s, t.created_at,"
        "   coalesce(t.first_read_at, g.first_seen_at)) AS start) s"
        " CROSS JOIN LATERAL (SELECT floor(greatest(extract(epoch FROM %(until)s - s.start), 0)"
        "   / t.poll_interval_s) AS expected) x"
        " LEFT JOIN (SELECT m.tag_id, sum(least(m.count, ceil(60.0 / p.poll_interval_s))) AS received"
        "   FROM readings_1m m JOIN tags p ON p.id = m.tag_id"
        "   WHERE m.bucket >= %(since)s AND m.bucket < %(until)s GROUP BY m.tag_id) r ON r.tag_id = t.id"
        " WHERE t.in_service AND coalesce(t.first_read_at, g.first_seen_at) IS NOT NULL"
        f" GROUP BY {key} ORDER BY 1",
        {"since": since, "until": until},
    ).fetchall()
    return [OnlineRate(level, str(k), int(e), min(int(r), int(e))) for k, e, r in rows]
