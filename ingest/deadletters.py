"""The dead-letter store: everything ingest could not accept, with the reason.

Bounded whatever arrives: a letter keeps at most ``MAX_PREFIX_BYTES`` of its payload (a whole
reading batch of a few thousand readings fits), with the whole payload's size and SHA-256, so
that a 20 MB payload costs 64 KiB; the table keeps ``days`` of letters within ``max_bytes`` of
payload, the oldest going first (``prune``, run with the hourly storage maintenance).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

logger = logging.getLogger(__name__)
Conn = psycopg.Connection[tuple[object, ...]]
MAX_PREFIX_BYTES = 64 * 1024
# a row's own cost beyond its text and bytes: tuple header, id, times, size, hash, kind, index entry
ROW_OVERHEAD_BYTES = 128


# The kind of a reason, by what its first words say (first match wins); "invalid" otherwise.
REASON_KINDS = (
    ("bytes exceeds", "too_large"),
    ("malformed", "malformed"),
    ("empty payload", "malformed"),
    ("unknown wire version", "version"),
    ("unknown tag", "unknown_tag"),
    ("unknown gateway", "unknown_gateway"),
    ("unknown camera", "unknown_camera"),
    ("ahead of the platform clock", "clock_ahead"),
    ("older than raw retention", "too_old"),
    ("not a finite number", "not_finite"),
    ("refused by the database", "database"),
    ("internal error", "internal"),
)


def kind_of(reason: str) -> str:
    head = reason[:64]
    return next((kind for words, kind in REASON_KINDS if words in head), "invalid")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    payload: bytes
    reason: str


def readings_payload(tags: list[str], ts: list[int], values: list[float | None], quality: list[int]) -> bytes:
    """A JSON payload holding just the rejected readings of a batch."""
    body: dict[str, Any] = {
        "tags": tags,
        "ts": ts,
        "val": [v if v is None or math.isfinite(v) else str(v) for v in values],
        "q": quality,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def store(conn: Conn, letters: list[DeadLetter]) -> None:
    """Insert the letters: topic and reason cut to size, the payload to its prefix."""
    if not letters:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO dead_letters (topic, payload, reason, payload_size, payload_sha256, kind)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (
                    _printable(d.topic, 512),
                    d.payload[:MAX_PREFIX_BYTES],
                    _printable(d.reason, 2000),
                    len(d.payload),
                    hashlib.sha256(d.payload).digest(),
                    kind_of(d.reason),
                )
                for d in letters
            ],
        )


def _printable(text: str, limit: int) -> str:
    """Text PostgreSQL can hold (no NUL, no lone surrogates), cut to ``limit`` characters."""
    cut = text[:limit].replace("\x00", "\\0")
    return cut.encode("utf-8", "backslashreplace").decode("utf-8")


def prune(conn: Conn, days: int, max_bytes: int) -> list[str]:
    """Retention: letters older than ``days``, then the oldest beyond ``max_bytes``. A letter counts
    its whole row (payload prefix, reason, topic and ``ROW_OVERHEAD_BYTES``), not its payload alone:
    a flood of empty payloads with long reasons would otherwise never reach the cap."""
    done = []
    old = conn.execute(
        "DELETE FROM dead_letters WHERE received_at < now() - make_interval(days => %s)", (days,)
    ).rowcount
    if old:
        done.append(f"dropped {old} dead letters older than {days} days")
    over = conn.execute(
        "DELETE FROM dead_letters WHERE id <= (SELECT id FROM (SELECT id, sum(octet_length(payload)"
        " + octet_length(reason) + octet_length(topic) + %s) OVER (ORDER BY id DESC) AS kept"
        " FROM dead_letters) k WHERE kept > %s ORDER BY id DESC LIMIT 1)",
        (ROW_OVERHEAD_BYTES, max_bytes),
    ).rowcount
    if over:
        done.append(f"dropped the {over} oldest dead letters beyond {max_bytes // 2**20} MiB of payload")
    return done


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    id: int
    received_at: datetime
    topic: str
    reason: str
    payload: bytes  # the prefix kept
    size: int = 0  # of the whole payload
    sha256: bytes = b""  # of the whole payload

    @property
    def truncated(self) -> bool:
        return self.size > len(self.payload)


def recent(conn: Conn, limit: int = 50, since_id: int = 0) -> list[StoredDeadLetter]:
    rows = conn.execute(
        "SELECT id, received_at, topic, reason, payload, payload_size, payload_sha256 FROM dead_letters"
        " WHERE id > %s ORDER BY id DESC LIMIT %s",
        (since_id, limit),
    ).fetchall()
    letters = []
    for r in rows:
        received, payload, digest = r[1], r[4], r[6]
        assert isinstance(received, datetime)  # noqa: S101 - timestamptz column
        assert isinstance(payload, bytes)  # noqa: S101 - bytea column
        digest = digest if isinstance(digest, bytes) else b""
        letters.append(
            StoredDeadLetter(int(str(r[0])), received, str(r[2]), str(r[3]), payload, int(str(r[5])), digest)
        )
    return letters


def last_hour_by_kind(conn: Conn) -> list[tuple[str, int]]:
    """Dead letters of the last hour per kind, the most frequent first."""
    rows = conn.execute(
        "SELECT kind, count(*) FROM dead_letters WHERE received_at > now() - interval '1 hour'"
        " GROUP BY 1 ORDER BY 2 DESC, 1"
    ).fetchall()
    return [(str(k), int(str(n))) for k, n in rows]
