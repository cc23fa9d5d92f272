"""The video process's outbox: encoded edge events on disk until the broker has acknowledged them.

An event is written here (SQLite, WAL, fsynced) before it is handed to the MQTT client and
deleted when its PUBACK arrives, so an event survives a restart of the video process or a power
cut at the gateway while the broker is away; what is left is published again, oldest first, by
the next process. The ingest side stores an event change idempotently (by camera and event id),
so an event published twice is harmless.

The spool is bounded (``max_bytes``, snapshots make events large): past it the oldest events are
dropped, counted and logged, never silently.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 64 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq     INTEGER PRIMARY KEY,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


class EventSpool:
    """Encoded events by sequence number; safe to use from the MQTT client's thread and others."""

    def __init__(self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._bytes = int(
            self._db.execute("SELECT coalesce(sum(length(payload)), 0) FROM events").fetchone()[0]
        )

    def put(self, seq: int, payload: bytes) -> None:
        """Keep an event until ``ack``; the oldest go if the spool would grow past its bound."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT OR REPLACE INTO events (seq, payload) VALUES (?, ?)", (seq, payload))
                self._bytes += len(payload)
                dropped = self._shed(seq)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite may have rolled back itself (a full disk)
                    self._db.execute("ROLLBACK")
                self._bytes = int(
                    self._db.execute("SELECT coalesce(sum(length(payload)), 0) FROM events").fetchone()[0]
                )
                raise
        if dropped:
            logger.error("video spool %s full (%d bytes): dropped the %d oldest events", self.path,
                         self._max_bytes, dropped)  # fmt: skip

    def _shed(self, keep: int) -> int:
        dropped = 0
        while self._bytes > self._max_bytes:
            row = self._db.execute(
                "SELECT seq, length(payload) FROM events WHERE seq <> ? ORDER BY seq LIMIT 1", (keep,)
            ).fetchone()
            if row is None:
                break
            self._db.execute("DELETE FROM events WHERE seq = ?", (row[0],))
            self._bytes -= int(row[1])
            dropped += 1
        if dropped:
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES ('dropped', ?)"
                " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                (dropped,),
            )
        return dropped

    def ack(self, seq: int) -> None:
        """The broker has the event: forget it."""
        with self._lock:
            row = self._db.execute(
                "DELETE FROM events WHERE seq = ? RETURNING length(payload)", (seq,)
            ).fetchone()
            if row is not None:
                self._bytes -= int(row[0])

    def pending(self, *, after: int | None = None, limit: int = 500) -> list[tuple[int, bytes]]:
        """Events not yet acknowledged, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                (-1 if after is None else after, limit),
            ).fetchall()
        return [(int(seq), bytes(payload)) for seq, payload in rows]

    def newest(self) -> int:
        """The highest sequence number waiting, or -1."""
        with self._lock:
            return int(self._db.execute("SELECT coalesce(max(seq), -1) FROM events").fetchone()[0])

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM events").fetchone()[0])

    def dropped(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        return 0 if row is None else int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
