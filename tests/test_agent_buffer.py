"""The store-and-forward buffer: numbering, bounds with counted drops, and durability across kill -9."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway_agent.agent import Unsaved
from gateway_agent.buffer import Buffer, Durability, read_stats
from gateway_agent.publisher import Publisher
from hazardwatch import wire
from hazardwatch.quality import Quality
from hazardwatch.settings import MqttAddress
from tests.support import free_port


def batch(readings: int = 1, tag: str = "LT1") -> wire.ReadingBatch:
    b = wire.ReadingBatch(gateway="gw1", seq=0, sent_ms=0)
    for i in range(readings):
        b.append(tag, 1_000 + i, float(i), Quality.GOOD)
    return b


def test_numbers_continue_across_reopening_and_acks_delete(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite3"
    first = Buffer(path)
    assert [first.put(batch(3), 0).seq for _ in range(3)] == [1, 2, 3]
    assert first.ack([1, 3, 99]) == 2  # 99 was never held: nothing to delete
    first.close()
    second = Buffer(path)
    assert [s.seq for s in second.next_after(0, limit=10)] == [2]
    assert second.put(batch(), 0).seq == 4
    stats = second.stats()
    assert (stats.depth, stats.readings, stats.put_batches, stats.put_readings) == (2, 4, 4, 10)
    assert (stats.acked_batches, stats.acked_readings) == (2, 6)
    second.close()
    assert read_stats(path) == stats  # what `hazardwatch agent status` reads, without taking it over


def test_stored_payload_is_the_numbered_batch_and_replay_marking_keeps_it(tmp_path: Path) -> None:
    buffer = Buffer(tmp_path / "b.sqlite3")
    stored = buffer.put(batch(2), 5)
    live = wire.decode(stored.payload)
    replayed = wire.decode(wire.mark_replay(stored.payload))
    assert (live.seq, live.replay, replayed.seq, replayed.replay) == (1, False, 1, True)
    assert (replayed.tags, replayed.ts_ms, replayed.values) == (live.tags, live.ts_ms, live.values)


def test_size_bound_drops_the_oldest_counted_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway_agent")
    one = len(wire.encode(batch(10)))
    buffer = Buffer(tmp_path / "b.sqlite3", max_bytes=one * 3)
    for _ in range(8):
        buffer.put(batch(10), 0)
    stats = buffer.stats()
    assert [s.seq for s in buffer.next_after(0, limit=10)] == [6, 7, 8]  # the newest kept
    assert (stats.depth, stats.dropped_batches, stats.dropped_readings) == (3, 5, 50)
    assert stats.bytes <= one * 3
    warnings = [r for r in caplog.records if "dropped the oldest" in r.getMessage()]
    assert len(warnings) == 1  # once per overflow; the counters have the rest
    buffer.close()
    assert Buffer(tmp_path / "b.sqlite3").stats().dropped_batches == 5  # counted across restarts


def test_age_bound_drops_batches_older_than_allowed(tmp_path: Path) -> None:
    buffer = Buffer(tmp_path / "b.sqlite3", max_age_s=60)
    buffer.put(batch(), 0)
    buffer.put(batch(), 30_000)
    buffer.put(batch(), 70_000)  # the first is now 70 s old
    assert [s.seq for s in buffer.next_after(0, limit=10)] == [2, 3]
    assert buffer.stats().dropped_batches == 1
    assert buffer.stats().oldest_ms == 30_000


def test_live_and_backlog_reads_respect_bounds(tmp_path: Path) -> None:
    buffer = Buffer(tmp_path / "b.sqlite3")
    for _ in range(6):
        buffer.put(batch(), 0)
    assert [s.seq for s in buffer.next_after(2, below=5, limit=10)] == [3, 4]
    assert [s.seq for s in buffer.next_after(4, limit=1)] == [5]


@pytest.mark.parametrize("durability", list(Durability))
def test_every_put_that_returned_survives_kill_9(tmp_path: Path, durability: Durability) -> None:
    path = tmp_path / "b.sqlite3"
    writer = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from gateway_agent.buffer import Buffer, Durability
        from hazardwatch import wire
        from hazardwatch.quality import Quality
        buffer = Buffer(Path({str(path)!r}), durability=Durability({durability.value!r}))
        while True:
            b = wire.ReadingBatch(gateway="gw1", seq=0, sent_ms=0)
            b.append("LT1", 1, 1.0, Quality.GOOD)
            print(buffer.put(b, 0).seq, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parent.parent)  # fmt: skip
    assert proc.stdout is not None
    returned = [int(proc.stdout.readline()) for _ in range(200)]
    os.kill(proc.pid, signal.SIGKILL)  # mid-write: the writer never stops putting
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    reopened = Buffer(path)
    held = {s.seq for s in reopened.next_after(0, limit=1_000_000)}
    assert set(returned) <= held  # every batch whose put returned is there
    assert held == set(range(1, max(held) + 1))  # and nothing in between is missing
    assert reopened.put(batch(), 0).seq == max(held) + 1  # numbering never repeats


def test_a_buffer_that_cannot_commit_holds_the_batches_in_memory_in_order(tmp_path: Path) -> None:
    """A full disk (SQLite's SQLITE_FULL, for real) does not stop the gateway: its batches wait in
    memory, bounded, and go into the buffer in order once it can take them."""
    buffer = Buffer(tmp_path / "full.sqlite3")
    publisher = Publisher("E1", "gw1", MqttAddress("127.0.0.1", free_port()), buffer)  # never started
    unsaved = Unsaved(limit=3)

    def batch(n: int) -> wire.ReadingBatch:
        b = wire.ReadingBatch(gateway="gw1", seq=0, sent_ms=n)
        for i in range(500):  # a batch larger than a page: a full database cannot take it
            b.append(f"LT{i}", 1_796_061_600_000 + n, float(n), Quality.GOOD)
        return b

    unsaved.commit(publisher, batch(0))
    pages = int(buffer._db.execute("PRAGMA page_count").fetchone()[0])
    buffer._db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full from here on
    for n in range(1, 6):
        unsaved.commit(publisher, batch(n))
    assert unsaved.error is not None
    assert "full" in unsaved.error
    assert [b.sent_ms for b in unsaved.batches] == [3, 4, 5]  # the newest, bounded
    assert (unsaved.dropped_batches, unsaved.dropped_readings) == (2, 1000)
    assert buffer.stats().depth == 1
    buffer._db.execute(f"PRAGMA max_page_count = {pages * 1000}")  # space again
    unsaved.commit(publisher, batch(6))
    assert unsaved.error is None
    assert not unsaved.batches
    held = buffer.next_after(0, limit=10)
    assert [s.seq for s in held] == [1, 2, 3, 4, 5]
    assert [wire.decode(s.payload).sent_ms for s in held] == [0, 3, 4, 5, 6]
    buffer.close()
