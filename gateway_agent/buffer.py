"""Store-and-forward: the agent's durable queue of reading batches, in SQLite (WAL mode).

A batch is numbered and committed here before anything is published, and deleted only after the
broker's PUBACK for it (``ack``). It therefore outlives a broker outage, a ``kill -9`` of the agent
and, with the default durability, a power cut. The sequence number is taken in the same
transaction as the insert, so numbers never repeat and a crash leaves no hole that is not
explained by a recorded drop.

Durability (``Durability``), the fsync policy:

- ``power-loss`` (SQLite ``synchronous=FULL``): every ``put`` fsyncs the write-ahead log before it
  returns. A power cut loses no batch that ``put`` returned.
- ``process-crash`` (``synchronous=NORMAL``): a ``put`` reaches the operating system but is fsynced
  only at checkpoints. ``kill -9`` of the agent loses nothing; a power cut may lose the batches of
  the last moments. Cheaper on slow flash.

Deletes are never fsynced on their own: a delete lost in a crash only means the batch is sent
again, and ingest stores a reading once however often it arrives.

The queue is bounded by bytes and by age. When a bound is passed the oldest batches are dropped:
counted (``Stats.dropped_batches``/``dropped_readings``, kept across restarts), logged once per
overflow and reported in the heartbeat — never silently.

A PUBACK is the broker's word, not ingest's: a broker whose queue for ingest is full (Mosquitto's
``max_queued_messages``) acknowledges and then drops. So an acknowledged batch moves to the
``sent`` table and is kept there for a while (``keep_sent_s``, within ``keep_sent_bytes``, the
oldest evicted first). When ingest sees a hole in the sequence numbers it asks for those batches
again (``resend``): the ones still kept go back into the queue and are sent again as replays.

One connection, used from several threads under one lock; every method does disk I/O, so call it
off the event loop.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from hazardwatch import wire

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 512 * 1024 * 1024
DEFAULT_MAX_AGE_S = 7 * 24 * 3600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    seq        INTEGER PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    readings   INTEGER NOT NULL,
    payload    BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS sent (
    seq        INTEGER PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    acked_ms   INTEGER NOT NULL,
    readings   INTEGER NOT NULL,
    payload    BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""
_COUNTERS = ("next_seq", "put_batches", "put_readings", "dropped_batches", "dropped_readings",
             "acked_batches", "acked_readings", "resent_batches")  # fmt: skip
DEFAULT_KEEP_SENT_S = 24 * 3600
DEFAULT_KEEP_SENT_BYTES = 128 * 1024 * 1024


class Durability(StrEnum):
    POWER_LOSS = "power-loss"
    PROCESS_CRASH = "process-crash"

    @property
    def synchronous(self) -> str:
        return "FULL" if self is Durability.POWER_LOSS else "NORMAL"


@dataclass(frozen=True, slots=True)
class Stored:
    """A batch as the queue holds it: encoded with its sequence number, flagged live."""

    seq: int
    created_ms: int
    readings: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Stats:
    depth: int  # batches waiting for a PUBACK
    readings: int  # readings in those batches
    bytes: int
    oldest_ms: int | None  # creation time of the oldest waiting batch
    next_seq: int
    put_batches: int  # lifetime counters, kept across restarts
    put_readings: int
    dropped_batches: int
    dropped_readings: int
    acked_batches: int
    acked_readings: int
    resent_batches: int  # acknowledged batches sent again at ingest's request
    kept_batches: int = 0  # acknowledged batches kept for a resend request


class Buffer:
    def __init__(self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_age_s: float = DEFAULT_MAX_AGE_S,
                 durability: Durability = Durability.POWER_LOSS, keep_sent_s: float = DEFAULT_KEEP_SENT_S,
                 keep_sent_bytes: int = DEFAULT_KEEP_SENT_BYTES) -> None:  # fmt: skip
        if max_bytes <= 0 or max_age_s <= 0:
            raise ValueError("buffer bounds must be positive")
        if keep_sent_s < 0 or keep_sent_bytes < 0:
            raise ValueError("the bounds of the sent batches kept must not be negative")
        self._keep_sent_ms = int(keep_sent_s * 1000)
        self._keep_sent_bytes = keep_sent_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._max_bytes = max_bytes
        self._max_age_ms = int(max_age_s * 1000)
        self._durability = durability
        self._lock = threading.Lock()
        self._overflowing = False
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={durability.synchronous}")
        self._db.executescript(_SCHEMA)
        self._db.executemany(
            "INSERT OR IGNORE INTO counters (name, value) VALUES (?, ?)",
            [(name, 1 if name == "next_seq" else 0) for name in _COUNTERS],
        )
        self._counters = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        depth, readings, size, oldest = self._db.execute(
            "SELECT count(*), coalesce(sum(readings), 0), coalesce(sum(length(payload)), 0), min(created_ms)"
            " FROM batches"
        ).fetchone()
        self._depth, self._readings, self._bytes, self._oldest = depth, readings, size, oldest
        self._kept, self._kept_bytes = self._db.execute(
            "SELECT count(*), coalesce(sum(length(payload)), 0) FROM sent"
        ).fetchone()
        if depth:
            logger.info("buffer %s holds %d batches (%d readings) from before the restart", path.name,
                        depth, readings)  # fmt: skip

    # -- writing ---------------------------------------------------------------------------

    def put(self, batch: wire.ReadingBatch, now_ms: int) -> Stored:
        """Number, encode and commit the batch (durably, per the policy); drop the oldest if over."""
        with self._lock:
            batch.seq = self._counters["next_seq"]
            batch.replay = False
            payload = wire.encode(batch)
            stored = Stored(batch.seq, now_ms, len(batch), payload)
            with self._transaction():
                self._db.execute(
                    "INSERT INTO batches (seq, created_ms, readings, payload) VALUES (?, ?, ?, ?)",
                    (stored.seq, now_ms, stored.readings, payload),
                )
                self._bump({"next_seq": 1, "put_batches": 1, "put_readings": stored.readings})
                self._depth += 1
                self._readings += stored.readings
                self._bytes += len(payload)
                self._oldest = now_ms if self._oldest is None else self._oldest
                dropped = self._enforce_bounds(now_ms)
        if dropped:
            self._report_drop(*dropped)
        return stored

    def _enforce_bounds(self, now_ms: int) -> tuple[int, int, str] | None:
        """Delete the oldest batches beyond the bounds (inside put's transaction); what was dropped."""
        batches = readings = 0
        why = ""
        while self._depth > 1 and (self._bytes > self._max_bytes or self._oldest_expired(now_ms)):
            why = "size" if self._bytes > self._max_bytes else "age"
            seq, n, size = self._db.execute(
                "SELECT seq, readings, length(payload) FROM batches ORDER BY seq LIMIT 1"
            ).fetchone()
            self._db.execute("DELETE FROM batches WHERE seq = ?", (seq,))
            self._depth -= 1
            self._readings -= n
            self._bytes -= size
            batches += 1
            readings += n
            self._oldest = self._oldest_created()
        if not batches:
            if self._bytes < self._max_bytes // 2:
                self._overflowing = False  # warn again on the next overflow, not on every drop
            return None
        self._bump({"dropped_batches": batches, "dropped_readings": readings})
        return batches, readings, why

    def _oldest_expired(self, now_ms: int) -> bool:
        return self._oldest is not None and now_ms - self._oldest > self._max_age_ms

    def _report_drop(self, batches: int, readings: int, why: str) -> None:
        if not self._overflowing:
            self._overflowing = True
            logger.warning(
                "buffer %s full (%s bound): dropped the oldest %d batches, %d readings "
                "(%d batches dropped in all; counted in the heartbeat)",
                self.path.name, why, batches, readings, self._counters["dropped_batches"],
            )  # fmt: skip

    def ack(self, seqs: Iterable[int], now_ms: int | None = None) -> int:
        """Move batches the broker acknowledged out of the queue (kept for a resend request while
        the bounds allow); returns how many were still held."""
        keys = [(seq,) for seq in seqs]
        if not keys:
            return 0
        now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        keeping = bool(self._keep_sent_ms and self._keep_sent_bytes)
        with self._lock:
            self._db.execute("PRAGMA synchronous=NORMAL")  # a lost delete only means a resend
            try:
                with self._transaction():
                    found = self._db.execute(
                        f"SELECT count(*), coalesce(sum(readings), 0), coalesce(sum(length(payload)), 0) "
                        f"FROM batches WHERE seq IN ({','.join('?' * len(keys))})",
                        [k[0] for k in keys],
                    ).fetchone()
                    if keeping:
                        self._db.executemany(
                            "INSERT OR REPLACE INTO sent (seq, created_ms, acked_ms, readings, payload)"
                            " SELECT seq, created_ms, ?, readings, payload FROM batches WHERE seq = ?",
                            [(now_ms, k[0]) for k in keys],
                        )
                    self._db.executemany("DELETE FROM batches WHERE seq = ?", keys)
                    self._bump({"acked_batches": found[0], "acked_readings": found[1]})
                    if keeping:  # (a resent batch left the sent table when it was queued again)
                        self._kept += found[0]
                        self._kept_bytes += found[2]
                        self._evict_sent(now_ms)
            finally:
                self._db.execute(f"PRAGMA synchronous={self._durability.synchronous}")
            self._depth -= found[0]
            self._readings -= found[1]
            self._bytes -= found[2]
            self._oldest = self._oldest_created()
            return int(found[0])

    def _evict_sent(self, now_ms: int) -> None:
        """Forget the oldest kept batches beyond the keep bounds (inside the caller's transaction).

        Kept batches leave in sequence order, close to the order they were acknowledged in, a few
        at a time: each acknowledgement evicts about as much as it added.
        """
        while self._kept:
            rows = self._db.execute(
                "SELECT seq, acked_ms, length(payload) FROM sent ORDER BY seq LIMIT 64"
            ).fetchall()
            cut, freed, count = None, 0, 0
            for seq, acked_ms, size in rows:
                if (
                    self._kept_bytes - freed <= self._keep_sent_bytes
                    and now_ms - acked_ms <= self._keep_sent_ms
                ):
                    break
                cut, freed, count = seq, freed + size, count + 1
            if cut is None:
                return
            self._db.execute("DELETE FROM sent WHERE seq <= ?", (cut,))
            self._kept -= count
            self._kept_bytes -= freed
            if count < len(rows):
                return

    def resend(self, first_seq: int, last_seq: int) -> int:
        """Put the kept batches numbered first..last back into the queue (ingest never got them);
        how many. Batches still queued are on their way anyway; forgotten ones are gone."""
        with self._lock:
            with self._transaction():
                moved = self._db.execute(
                    "INSERT OR IGNORE INTO batches (seq, created_ms, readings, payload)"
                    " SELECT seq, created_ms, readings, payload FROM sent WHERE seq BETWEEN ? AND ?",
                    (first_seq, last_seq),
                ).rowcount
                self._db.execute("DELETE FROM sent WHERE seq BETWEEN ? AND ?", (first_seq, last_seq))
                self._bump({"resent_batches": moved})
            self._reload()  # the queue's totals with the batches back in it
            return int(moved)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction (under the caller's lock); on failure the totals come from disk again."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # SQLite may have rolled back itself (a full disk)
                self._db.execute("ROLLBACK")
            self._reload()
            raise

    def _oldest_created(self) -> int | None:
        """Creation time of the first batch in line (the lowest sequence number)."""
        row = self._db.execute("SELECT created_ms FROM batches ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else int(row[0])

    def _bump(self, deltas: dict[str, int]) -> None:
        self._db.executemany(
            "UPDATE counters SET value = value + ? WHERE name = ?", [(d, n) for n, d in deltas.items() if d]
        )
        for name, delta in deltas.items():
            self._counters[name] += delta

    def _reload(self) -> None:
        """After a failed transaction: take the counters and totals from disk again."""
        self._counters = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        self._depth, self._readings, self._bytes, self._oldest = self._db.execute(
            "SELECT count(*), coalesce(sum(readings), 0), coalesce(sum(length(payload)), 0), min(created_ms)"
            " FROM batches"
        ).fetchone()
        self._kept, self._kept_bytes = self._db.execute(
            "SELECT count(*), coalesce(sum(length(payload)), 0) FROM sent"
        ).fetchone()

    # -- reading ---------------------------------------------------------------------------

    def next_after(self, seq: int, *, below: int | None = None, limit: int = 1) -> list[Stored]:
        """Held batches with a sequence number above ``seq`` (and below ``below``), in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, created_ms, readings, payload FROM batches WHERE seq > ? AND seq < ?"
                " ORDER BY seq LIMIT ?",
                (seq, below if below is not None else 2**62, limit),
            ).fetchall()
        return [Stored(*row) for row in rows]

    def stats(self) -> Stats:
        with self._lock:
            return _stats(self._counters, self._depth, self._readings, self._bytes, self._oldest, self._kept)

    @property
    def next_seq(self) -> int:
        with self._lock:
            return int(self._counters["next_seq"])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def read_stats(path: Path) -> Stats:
    """The stats of a buffer file without taking it over (for ``hazardwatch agent status``)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
        depth, readings, size, oldest = db.execute(
            "SELECT count(*), coalesce(sum(readings), 0), coalesce(sum(length(payload)), 0), min(created_ms)"
            " FROM batches"
        ).fetchone()
        try:
            kept = int(db.execute("SELECT count(*) FROM sent").fetchone()[0])
        except sqlite3.OperationalError:  # a buffer file from before the sent table
            kept = 0
    finally:
        db.close()
    return _stats(counters, depth, readings, size, oldest, kept)


def _stats(
    counters: dict[str, int], depth: int, readings: int, size: int, oldest: int | None, kept: int
) -> Stats:
    c = {name: int(counters.get(name, 0)) for name in _COUNTERS}
    return Stats(depth, readings, size, oldest, c["next_seq"], c["put_batches"], c["put_readings"],
                 c["dropped_batches"], c["dropped_readings"], c["acked_batches"], c["acked_readings"],
                 c["resent_batches"], kept)  # fmt: skip
