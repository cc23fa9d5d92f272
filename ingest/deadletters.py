"""The dead-letter store: everything ingest could not accept, with the reason."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

Conn = psycopg.Connection[tuple[object, ...]]


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
    if not letters:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO dead_letters (topic, payload, reason) VALUES (%s, %s, %s)",
            [(d.topic, d.payload, d.reason[:2000]) for d in letters],
        )


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    id: int
    received_at: datetime
    topic: str
    reason: str
    payload: bytes


def recent(conn: Conn, limit: int = 50, since_id: int = 0) -> list[StoredDeadLetter]:
    rows = conn.execute(
        "SELECT id, received_at, topic, reason, payload FROM dead_letters WHERE id > %s"
        " ORDER BY id DESC LIMIT %s",
        (since_id, limit),
    ).fetchall()
    letters = []
    for r in rows:
        received, payload = r[1], r[4]
        assert isinstance(received, datetime)  # noqa: S101 - timestamptz column
        assert isinstance(payload, bytes)  # noqa: S101 - bytea column
        letters.append(StoredDeadLetter(int(str(r[0])), received, str(r[2]), str(r[3]), payload))
    return letters
