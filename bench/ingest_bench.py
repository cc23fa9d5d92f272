"""Ingest end to end, publish → committed, against a bare binary COPY of the same rows.

All figures come from one run on this machine, with a private Mosquitto and a fresh database
on the local PostgreSQL:

- **sustained rate** — readings per second from the first publish to the last commit while one
  ingest worker (the real Consumer and Pipeline: decoding, validation, dead letters, staging COPY,
  idempotent insert with rollups, latest values, rules, alarms) takes a flood of messages;
- **latency** — from each batch's ``sent`` stamp to the commit of its transaction, with messages
  paced at half the sustained rate (and under the flood, where it is mostly queueing);
- **write path** — the same rows in the same transactions through ``ingest.storage.write_readings``
  alone: no MQTT, no decoding, no rules;
- **bare COPY** — the same rows in the same transactions, binary COPY into a table shaped like
  ``readings`` (columns, primary key, daily partitions): the baseline.

    .venv/bin/python -m bench.ingest_bench [--batch 1000] [--messages 1000] [--tags 2000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from psycopg import sql

from hazardwatch import wire
from hazardwatch.ledger import Plant, load_plant
from hazardwatch.services import PrivateMosquitto
from hazardwatch.settings import MqttAddress
from ingest.consumer import Consumer, subscriptions
from ingest.copybuf import readings_copy_buffer
from ingest.ledger_sync import sync_ledger
from ingest.migrate import migrate
from ingest.pipeline import Message, Pipeline, StepResult
from ingest.storage import Backend, backend_of, write_readings
from tests.support import free_port, private_database, sample_plant_doc, write_plant

ENTERPRISE, GATEWAY = "E330281002", "gw01"
WARMUP_MESSAGES = 5
Conn = psycopg.Connection[tuple[Any, ...]]
Loader = Callable[
    [Conn, np.ndarray, np.ndarray, np.ndarray, np.ndarray], None
]  # ts, tag ids, values, quality


def bench_plant(tags: int, directory: Path) -> Plant:
    """The sample plant with ``tags`` more temperature tags on the Ningbo gateway."""
    doc = sample_plant_doc()
    enterprise = next(e for e in doc["enterprises"] if e["code"] == ENTERPRISE)
    device = enterprise["gateways"][0]["devices"][0]["id"]
    enterprise["hazard_sources"][0]["equipment"].append({
        "code": "BENCH", "name": "bench tags", "kind": "tank",
        "tags": [{"code": f"BT{i:06d}", "name": f"bench {i}", "kind": "temperature", "unit": "℃",
                  "range": [0, 100], "limits": {"h": 85, "hh": 90},
                  "opcua": {"device": device, "node": f"ns=2;s=BENCH.{i}"}} for i in range(tags)],
    })  # fmt: skip
    return load_plant(write_plant(doc, directory))


@dataclass(frozen=True, slots=True)
class Workload:
    """Message ``i`` carries readings ``i*batch … (i+1)*batch - 1``: reading r is tag ``r % tags``
    at ``t0 + (r // tags)`` seconds, so every (tag, time) occurs once."""

    tag_codes: list[str]
    tag_ids: np.ndarray
    batch: int
    t0_ms: int

    def rows(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = np.arange(i * self.batch, (i + 1) * self.batch, dtype=np.int64)
        tag = r % len(self.tag_codes)
        ts = self.t0_ms + (r // len(self.tag_codes)) * 1000
        values = np.round(np.random.default_rng(i).normal(50.0, 5.0, r.size), 3)
        return tag, ts, values

    def payload(self, i: int) -> bytes:
        tag, ts, values = self.rows(i)
        doc = {"v": wire.VERSION, "gw": GATEWAY, "seq": i + 1, "replay": False,
               "sent": time.time_ns() // 1_000_000, "tags": [self.tag_codes[t] for t in tag.tolist()],
               "ts": ts.tolist(), "val": values.tolist(), "q": [0] * self.batch}  # fmt: skip
        packed: bytes = msgpack.packb(doc, use_bin_type=True)
        return packed

    def columns(self, first: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """ts, tag ids, values and quality of messages ``first … first+count-1``, as ingest stores them."""
        parts = [self.rows(i) for i in range(first, first + count)]
        tag = np.concatenate([p[0] for p in parts])
        ts = np.concatenate([p[1] for p in parts])
        values = np.concatenate([p[2] for p in parts])
        return ts, self.tag_ids[tag], values, np.zeros(ts.size, dtype=np.int16)


class TimedPipeline(Pipeline):
    """The real pipeline, noting when each step started and committed, and its messages."""

    def __init__(self, database_url: str) -> None:
        super().__init__(database_url)
        self.commits: list[tuple[float, float, list[Message]]] = []
        self.messages = 0

    def process(self, messages: list[Message]) -> StepResult:
        started = time.time()
        result = super().process(messages)
        self.commits.append((started, time.time(), messages))
        self.messages += len(messages)
        return result


class Publisher:
    def __init__(self, port: int, workload: Workload) -> None:
        self._workload = workload
        self._topic = wire.readings_topic(ENTERPRISE, GATEWAY)
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex}")
        self._client.max_inflight_messages_set(100)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()

    def send(self, first: int, count: int, per_s: float | None = None) -> float:
        """Publish messages ``first …``, paced if asked; the time of the first publish."""
        start = time.time()
        infos = []
        for k in range(count):
            if per_s is not None:
                time.sleep(max(start + k / per_s - time.time(), 0))
            infos.append(self._client.publish(self._topic, self._workload.payload(first + k), qos=1))
        for info in infos:
            info.wait_for_publish(120)
        return start

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def wait_for(pipeline: TimedPipeline, messages: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while pipeline.messages < messages:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{pipeline.messages} of {messages} messages committed after {timeout} s")
        time.sleep(0.01)


def latencies_ms(commits: list[tuple[float, float, list[Message]]]) -> np.ndarray:
    out = [
        done * 1000 - msgpack.unpackb(m.payload)["sent"]
        for _started, done, messages in commits
        for m in messages
    ]
    return np.array(out, dtype=np.float64)


def bare_table(conn: Conn, first_ms: int, last_ms: int) -> None:
    """``readings_bare``: the columns, key and daily partitions of ``readings``."""
    conn.execute("CREATE TABLE readings_bare (LIKE readings INCLUDING ALL) PARTITION BY RANGE (ts)")
    day = datetime.fromtimestamp(first_ms / 1000, UTC).date()
    while day <= datetime.fromtimestamp(last_ms / 1000, UTC).date():
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        conn.execute(
            sql.SQL("CREATE TABLE {} PARTITION OF readings_bare FOR VALUES FROM ({}) TO ({})").format(
                sql.Identifier(f"readings_bare_p{day:%Y%m%d}"),
                sql.Literal(start),
                sql.Literal(start + timedelta(days=1)),
            )
        )
        day += timedelta(days=1)
    conn.commit()


def replay_groups(url: str, workload: Workload, first: int, groups: list[int], load: Loader) -> float:
    """Readings per second loading the messages in the same transactions as ingest committed them."""
    with psycopg.connect(url) as conn:
        chunks = []
        i = first
        for n in groups:
            chunks.append(workload.columns(i, n))
            i += n
        start = time.perf_counter()
        for ts, tag_ids, values, quality in chunks:
            with conn.transaction():
                load(conn, ts, tag_ids, values, quality)
        elapsed = time.perf_counter() - start
    return sum(c[0].size for c in chunks) / elapsed


def bare_copy(
    conn: Conn, ts: np.ndarray, tag_ids: np.ndarray, values: np.ndarray, quality: np.ndarray
) -> None:
    with (
        conn.cursor() as cur,
        cur.copy("COPY readings_bare (ts, tag_id, value, quality) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.write(readings_copy_buffer(ts, tag_ids, values, quality))


def write_path(backend: Backend, shift_ms: int) -> Loader:
    """``write_readings`` on the real tables, the rows moved by ``shift_ms`` so that they are new."""

    def load(
        conn: Conn, ts: np.ndarray, tag_ids: np.ndarray, values: np.ndarray, quality: np.ndarray
    ) -> None:
        write_readings(conn, backend, ts + shift_ms, tag_ids, values, quality)

    return load


@dataclass(frozen=True, slots=True)
class Figures:
    sustained: float
    busy: float
    flood_latency: np.ndarray
    paced_latency: np.ndarray
    paced_rate: float
    flood_group: float  # messages per transaction
    paced_group: float
    write_path: float
    bare: float
    backend: str
    dead_letters: int


def run(args: argparse.Namespace, tmp: Path, port: int, url: str) -> Figures:
    plant = bench_plant(args.tags, tmp)
    migrate(url)
    with psycopg.connect(url) as conn:
        sync_ledger(conn, plant)
        codes = [f"BT{i:06d}" for i in range(args.tags)]
        rows = conn.execute(
            "SELECT t.code, t.id FROM tags t JOIN enterprises e ON e.id = t.enterprise_id WHERE e.code = %s",
            (ENTERPRISE,),
        ).fetchall()
        ids = {str(code): int(tag_id) for code, tag_id in rows}
        backend = backend_of(conn)
    paced_max = args.messages  # the paced phase never sends more than the flood
    total = WARMUP_MESSAGES + args.messages + paced_max
    span_ms = (total * args.batch // args.tags + 1) * 1000
    now = int(time.time() * 1000)
    workload = Workload(
        codes, np.array([ids[c] for c in codes], dtype=np.int64), args.batch, now - span_ms - 60_000
    )

    pipeline = TimedPipeline(url)
    address = MqttAddress("127.0.0.1", port)
    consumer = Consumer(
        pipeline, address, client_id=f"bench-{uuid.uuid4().hex}", topics=subscriptions([ENTERPRISE])
    )
    stop = threading.Event()
    worker = threading.Thread(target=consumer.run, args=(stop,), name="ingest-worker")
    worker.start()
    publisher = Publisher(port, workload)
    try:
        if not consumer.subscribed.wait(30):
            raise TimeoutError("the ingest worker did not subscribe")
        publisher.send(0, WARMUP_MESSAGES)  # tag index, partitions, connections
        wait_for(pipeline, WARMUP_MESSAGES)
        flood_from = len(pipeline.commits)
        first_publish = publisher.send(WARMUP_MESSAGES, args.messages)
        wait_for(pipeline, WARMUP_MESSAGES + args.messages)
        flood = pipeline.commits[flood_from:]
        wall = flood[-1][1] - first_publish
        sustained = args.messages * args.batch / wall
        busy = sum(done - started for started, done, _ in flood) / wall

        paced_rate = sustained / args.batch / 2  # messages per second
        paced = min(max(int(paced_rate * args.latency_s), 1), paced_max)
        paced_from = len(pipeline.commits)
        publisher.send(WARMUP_MESSAGES + args.messages, paced, per_s=paced_rate)
        wait_for(pipeline, WARMUP_MESSAGES + args.messages + paced)
        paced_commits = pipeline.commits[paced_from:]
    finally:
        publisher.close()
        stop.set()
        worker.join(30)

    groups = [len(messages) for _, _, messages in flood]
    with psycopg.connect(url) as conn:
        dead = int(str(conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]))  # type: ignore[index]
        shift = 2 * span_ms + 120_000  # after everything ingested, still within the partitions made ahead
        last = workload.t0_ms + span_ms + shift
        conn.execute(
            "SELECT hw_ensure_partitions(%s, %s)",
            (datetime.now(UTC).date(), datetime.fromtimestamp(last / 1000, UTC).date()),
        )
        conn.commit()
        bare_table(conn, workload.t0_ms, workload.t0_ms + span_ms)
    write_rate = replay_groups(url, workload, WARMUP_MESSAGES, groups, write_path(backend, shift))
    bare_rate = replay_groups(url, workload, WARMUP_MESSAGES, groups, bare_copy)
    return Figures(sustained, busy, latencies_ms(flood), latencies_ms(paced_commits), paced_rate * args.batch,
                   float(np.mean(groups)), float(np.mean([len(m) for _, _, m in paced_commits])),
                   write_rate, bare_rate, backend, dead)  # fmt: skip


def limit_line(f: Figures) -> str:
    """What bounds the end-to-end rate, from the per-reading cost of each layer measured above."""
    if f.busy < 0.8:
        return (f"the worker waited for messages {100 - f.busy * 100:.0f} % of the time: the publisher "
                "and the broker, not the database")  # fmt: skip
    bare_us, write_us, e2e_us = 1e6 / f.bare, 1e6 / f.write_path, 1e6 / f.sustained
    layers = {
        "the bare COPY": bare_us,
        "the idempotent write beyond it (INSERT … ON CONFLICT from staging, rollups, latest values)":
            write_us - bare_us,
        "MQTT, decoding, validation, rules and alarms": e2e_us - write_us,
    }  # fmt: skip
    worst = max(layers, key=lambda k: layers[k])
    return (f"one worker, {f.busy * 100:.0f} % of the time in its transactions; per reading "
            f"{e2e_us:.1f} µs = {bare_us:.1f} bare COPY + {write_us - bare_us:.1f} idempotent write"
            f" + {e2e_us - write_us:.1f} MQTT, decoding, rules; the largest share is {worst}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=1000, help="readings per message")
    parser.add_argument("--messages", type=int, default=1000, help="messages in the flood")
    parser.add_argument("--tags", type=int, default=2000, help="tags the readings spread over")
    parser.add_argument("--latency-s", type=float, default=5.0, help="length of the paced phase")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as name, private_database() as url:
        tmp = Path(name)
        port = free_port()
        broker = PrivateMosquitto(tmp, port, persistent=False)
        broker.start()
        try:
            f = run(args, tmp, port, url)
        finally:
            broker.stop()
    report(args, f)


def report(args: argparse.Namespace, f: Figures) -> None:
    paced = np.percentile(f.paced_latency, [50, 99])
    flood = np.percentile(f.flood_latency, [50, 99])
    print(f"ingest end to end: {args.messages} messages × {args.batch} readings over {args.tags} tags, "
          f"one worker, {f.backend} PostgreSQL, {os.cpu_count()} CPUs shared by every part")  # fmt: skip
    print(f"  sustained, publish → commit  {f.sustained:>11,.0f} readings/s")
    print(f"  latency at half that rate    p50 {paced[0]:7.1f} ms   p99 {paced[1]:7.1f} ms"
          f"   ({f.paced_group:.1f} messages per transaction)")  # fmt: skip
    print(f"  latency under the flood      p50 {flood[0]:7.1f} ms   p99 {flood[1]:7.1f} ms"
          f"   ({f.flood_group:.1f} messages per transaction; queueing)")  # fmt: skip
    print(f"  write path alone             {f.write_path:>11,.0f} readings/s   (write_readings)")
    print(f"  bare binary COPY             {f.bare:>11,.0f} readings/s   (same rows, same transactions)")
    print(f"  end to end / bare COPY       {f.sustained / f.bare:>11.2f}              (target >= 0.5)")
    print(f"  limited by: {limit_line(f)}")
    if f.dead_letters:
        print(f"  WARNING: {f.dead_letters} dead letters: the workload is not what ingest accepts")


if __name__ == "__main__":
    main()
