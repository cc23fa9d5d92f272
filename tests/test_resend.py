"""Batches the broker acknowledged and then dropped are asked for again and stored.

A PUBACK is the broker's word, not ingest's: Mosquitto queues at most ``max_queued_messages`` for
a client that is away and drops the rest, acknowledged. The agent keeps what it sent; ingest,
seeing a hole in a gateway's sequence numbers that does not close, asks for it on the gateway's
resend topic.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from gateway_agent.buffer import Buffer
from gateway_agent.publisher import Publisher
from hazardwatch import wire
from hazardwatch.errors import WireError
from hazardwatch.ledger import Plant
from hazardwatch.quality import Quality
from hazardwatch.settings import MqttAddress
from ingest.consumer import Consumer, subscriptions
from ingest.ledger_sync import sync_ledger
from ingest.migrate import migrate
from ingest.pipeline import Limits, Pipeline
from tests.support import private_mosquitto

ENTERPRISE, GATEWAY, TAG = "E330110001", "gw01", "LT101"
QUEUED = 5  # the broker's queue for a client that is away


def until(probe: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def batch(i: int, t0_ms: int) -> wire.ReadingBatch:
    b = wire.ReadingBatch(gateway=GATEWAY, seq=0, sent_ms=t0_ms + i * 1000)
    b.append(TAG, t0_ms + i * 1000, 50.0 + (i % 7), Quality.GOOD)
    return b


def stored(url: str) -> tuple[int, int]:
    """(readings of the tag, open sequence gaps of its gateway)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM readings r JOIN tags t ON t.id = r.tag_id WHERE t.code = %s),"
            " (SELECT seq_gaps FROM gateways g JOIN enterprises e ON e.id = g.enterprise_id"
            "  WHERE e.code = %s AND g.code = %s)",
            (TAG, ENTERPRISE, GATEWAY),
        ).fetchone()
    assert row is not None
    return int(str(row[0])), int(str(row[1]))


class Ingest:
    """The ingest worker (its persistent session on the broker outlives a stop)."""

    def __init__(self, url: str, port: int, client_id: str) -> None:
        limits = Limits(resend_after_s=1.0, resend_every_s=3.0)
        self.consumer = Consumer(Pipeline(url, limits=limits), MqttAddress("127.0.0.1", port),
                                 client_id=client_id, topics=subscriptions([ENTERPRISE]))  # fmt: skip
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.consumer.run, args=(self._stop,), daemon=True)
        self._thread.start()
        until(self.consumer.subscribed.is_set, "ingest's subscriptions")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def test_batches_the_broker_dropped_after_its_puback_are_asked_for_and_stored(
    tmp_path: Path, database_url: str, sample_plant: Plant
) -> None:
    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        sync_ledger(conn, sample_plant)
    client_id = f"hw-ingest-test-{uuid.uuid4().hex[:8]}"
    t0_ms = time.time_ns() // 1_000_000 - 600_000
    with private_mosquitto(options=[f"max_queued_messages {QUEUED}"]) as port:
        ingest = Ingest(database_url, port, client_id)
        publisher = Publisher(ENTERPRISE, GATEWAY, MqttAddress("127.0.0.1", port),
                              Buffer(tmp_path / "agent.buffer.sqlite3"))  # fmt: skip
        publisher.start()
        try:
            until(publisher.connected.is_set, "the agent's connection")
            publisher.submit(batch(0, t0_ms))
            until(lambda: stored(database_url) == (1, 0), "the first batch stored")
            ingest.stop()  # away: the broker queues at most QUEUED batches for it, and drops the rest
            for i in range(1, 31):
                publisher.submit(batch(i, t0_ms))
            until(lambda: publisher.pending == 0, "every batch acknowledged by the broker")
            assert publisher.buffer.stats().kept_batches == 31

            ingest = Ingest(database_url, port, client_id)
            publisher.submit(batch(31, t0_ms))  # live data shows the hole
            until(lambda: stored(database_url) == (32, 0), "all 32 batches stored and no gap left")
            assert publisher.resent > 0  # the broker really dropped some: they came by request
            assert publisher.buffer.stats().resent_batches == publisher.resent
            with psycopg.connect(database_url) as conn:
                values = [
                    float(str(r[0]))
                    for r in conn.execute(
                        "SELECT r.value FROM readings r JOIN tags t ON t.id = r.tag_id WHERE t.code = %s"
                        " ORDER BY r.ts",
                        (TAG,),
                    ).fetchall()
                ]
            assert values == [50.0 + (i % 7) for i in range(32)]
        finally:
            ingest.stop()
            publisher.stop(timeout_s=0.5)
            publisher.buffer.close()


def test_the_buffer_keeps_sent_batches_within_its_bounds_and_queues_them_again(tmp_path: Path) -> None:
    buffer = Buffer(tmp_path / "b.sqlite3", keep_sent_s=3600, keep_sent_bytes=10_000)
    t0 = 1_796_061_600_000
    seqs = [buffer.put(batch(i, t0), t0 + i).seq for i in range(10)]
    assert buffer.ack(seqs[:6], now_ms=t0 + 100) == 6
    stats = buffer.stats()
    assert (stats.depth, stats.kept_batches) == (4, 6)
    assert buffer.resend(2, 4) == 3  # back in the queue, in order
    assert [s.seq for s in buffer.next_after(0, limit=20)] == [2, 3, 4, 7, 8, 9, 10]
    assert buffer.resend(2, 4) == 0  # already queued: on their way
    assert buffer.resend(9, 10) == 0  # never acknowledged: on their way anyway
    assert buffer.stats().resent_batches == 3
    assert buffer.ack([2, 3, 4], now_ms=t0 + 200) == 3
    assert buffer.stats().kept_batches == 6
    # the age bound: acknowledged more than keep_sent_s ago is forgotten at the next acknowledgement
    assert buffer.ack([7], now_ms=t0 + 200 + 3_600_001) == 1
    assert buffer.stats().kept_batches == 1
    assert buffer.resend(1, 6) == 0
    buffer.close()

    small = Buffer(
        tmp_path / "s.sqlite3", keep_sent_s=3600, keep_sent_bytes=3 * len(wire.encode(batch(0, t0)))
    )
    seqs = [small.put(batch(i, t0), t0).seq for i in range(10)]
    small.ack(seqs, now_ms=t0)
    assert small.stats().kept_batches == 3  # the newest that fit the byte bound
    assert small.resend(1, 10) == 3
    assert [s.seq for s in small.next_after(0, limit=20)] == [8, 9, 10]
    small.close()

    none = Buffer(tmp_path / "n.sqlite3", keep_sent_s=0)
    none.ack([none.put(batch(0, t0), t0).seq])
    assert none.stats().kept_batches == 0
    none.close()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{nope", "malformed"),
        (b"[1, 2]", "JSON object"),
        (b'{"v": 1, "from": 0, "to": 3}', "0 < from <= to"),
        (b'{"v": 1, "from": 5, "to": 3}', "0 < from <= to"),
        (b'{"v": 1, "from": 1.5, "to": 3}', "integer"),
        (b'{"v": 1, "from": 1, "to": 1000000}', "at most 1000"),
    ],
)
def test_a_malformed_resend_request_is_refused(payload: bytes, reason: str) -> None:
    with pytest.raises(WireError, match=reason):
        wire.decode_resend(payload)
    assert wire.decode_resend(wire.resend_payload(3, 9)) == (3, 9)
