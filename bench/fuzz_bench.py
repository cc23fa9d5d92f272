"""One bad message never costs a good one: a running ingest under N hostile payloads (issue 21).

``hazardwatch ingest`` runs as a real process on a fresh database (the sample plant) and a private
Mosquitto. A steady valid feed — batches of ten Hangzhou tags (E330110001/gw01), each batch at a
source time of its own a few seconds in the past, paced at ``--feed-rate`` batches per second — is
measured alone (phase 1), then next to a flood of ``--count`` hostile payloads published at
``--flood-rate`` messages per second (phase 2), the feed running as long as the flood is published.
The hostile payloads (seeded) are the readings corpus of ``tests.test_ingest_faults`` plus health,
status, event and camera-status payloads (NaN, NUL, lone surrogates, nesting 3,000 deep, huge,
non-objects, times beyond the year 9999 or an hour ahead, unknown cameras, non-JPEG snapshots) and
semantic nonsense (unknown tags and gateways, times in 1970 or ahead, ``seq`` = 2**32, ±1e308 on
tags with a range, one reading twice), over every subscribed topic of both sample gateways.

- **ingest crashes** — the process died during the run, or did not stop cleanly on SIGTERM (goal 0);
- **tracebacks logged** — "Traceback" in the process's log: one means a bug, not bad input (goal 0);
- **valid readings lost** — feed readings published (each acknowledged by the broker) and not stored
  (goal 0);
- **valid throughput under fuzz / alone** — feed readings committed per second from the phase's
  first publish to its last commit. The feed is paced at a plant's rate, so alone this is that
  rate; under the flood it stays there only if ingest keeps up with the feed and the flood
  together: a backlog behind hostile messages moves the last commit later and the figure down
  (goal >= 0.8). Commits are seen by polling the newest stored source time of a feed tag every
  10 ms, which also gives each batch's publish → commit latency;
- **dead-letter bytes per hostile message** — payload bytes the dead letters keep over N, and the
  largest one: bounded whatever arrives;
- **dead letters by kind**, and whether every refused message got exactly one (an acknowledgement
  without a dead letter loses the evidence): matched by the SHA-256 of the whole payload, except
  readings refused one by one (unknown tag, time, not finite), whose letter holds the refused
  readings; those are matched by count. Semantic nonsense ingest stores (``seq`` jumps, ±1e308 as
  INSTRUMENT_FAULT without a value, a reading twice) is counted apart.

    .venv/bin/python -m bench.fuzz_bench [--count 100000] [--seed 21] [--flood-rate 400]
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from hazardwatch import wire
from hazardwatch.ledger import load_plant
from hazardwatch.quality import Quality
from hazardwatch.services import PrivateMosquitto
from ingest.ledger_sync import sync_ledger
from ingest.migrate import migrate
from tests.support import SAMPLE_DEVICES, free_port, private_database
from tests.test_ingest_faults import HANGZHOU, NINGBO, NORMAL, fuzz_corpus

GATEWAY = "gw01"
FEED = NORMAL[HANGZHOU]  # the feed's ten tags; nothing else writes them
# tags of the semantic nonsense, none of them the feed's, at a value inside their limits
SEMANTIC = {
    HANGZHOU: {"FT102": 50.0, "GT104": 0.0, "GT105": 0.0, "GT106": 0.0, "WS101": 2.0},
    NINGBO: {"LT301": 50.0, "PT301": 0.5, "TT301": 20.0, "AT301": 0.2, "TT401": 300.0},
}
CAMERA = {HANGZHOU: "CAM101", NINGBO: "CAM301"}
WINDOW = 200  # QoS 1 messages a publisher has in flight at most
Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Hostile:
    family: str
    topic: str
    payload: bytes
    stored: int = 0  # readings ingest is to store (semantic nonsense); 0: exactly one dead letter
    faults: int = 0  # of those, stored as INSTRUMENT_FAULT
    rewritten: bool = False  # its letter holds the refused readings, not the payload


# -- hostile payloads beyond the readings corpus ---------------------------------------------------


def _hostile_json(rng: random.Random) -> bytes:
    """A JSON document no heartbeat, status or camera status may be."""
    body = rng.choice([
        b'{"v": 1, "at": NaN}', b'{"v": 1, "at": Infinity}', b'{"v": 1, "at": -1e400}',
        b'{"v": 1, "status": "online", "note": "a\\u0000b"}', b'{"v": 1, "note": "\\ud800"}',
        b"[" * 3000 + b"]" * 3000, b'{"a":' * 40 + b"1" + b"}" * 40, b'{"v": 1, "n": ' + b"9" * 5000 + b"}",
        b"[1, 2, 3]", b"42", b'"online"', b"null", b"true", b"", b'{"v": 1', b'{"v": 1}}',
        b'{"v": 1, "a": [' + b"0," * 20_001 + b"0]}", b"\xff\xfe{}",
    ])  # fmt: skip
    return (
        body if rng.random() > 0.005 else b'{"v": 1, "pad": "' + b"x" * 300_000 + b'"}'
    )  # huge, now and then


def health(rng: random.Random) -> bytes:
    if rng.random() < 0.1:  # not JSON
        packed: bytes = msgpack.packb({"v": 1, "at": float("nan")})
        return packed if rng.random() < 0.5 else rng.randbytes(40)
    return _hostile_json(rng)


def status(rng: random.Random) -> bytes:
    if rng.random() < 0.3:
        return rng.choice([b'{"status": "maybe"}', b'{"status": "online\\u0000"}', b'{"status": ["online"]}',
                           b"{}", b'{"status": null}', b'{"status": "ONLINE"}'])  # fmt: skip
    return _hostile_json(rng)


def cameras(rng: random.Random) -> bytes:
    docs: list[Any] = [
        {"v": 1, "cameras": {"CAM101": {"status": "online", "x": "NaN"}}},
        {"v": 1, "cameras": {"CAM101": {"status": "exploded"}}},
        {"v": 1, "cameras": ["CAM101"]},
        {"v": 1, "cameras": {"CAM\u0000101": {"status": "online"}}},
        {"v": 2, "cameras": {"CAM101": {"status": "online"}}},
        {"v": 1, "cameras": {"CAM101": {"status": "online", "x": [0] * 20_001}}},  # > 20,000 values
        {"v": 1},
    ]
    if rng.random() < 0.4:
        return _hostile_json(rng)
    text = json.dumps(rng.choice(docs)).replace('"NaN"', "NaN")
    return text.encode()


def event(rng: random.Random, enterprise: str, now_ms: int) -> bytes:
    """A valid EdgeEvent of the gateway's camera with one thing wrong."""
    ts = now_ms - rng.randint(1_000, 60_000)
    cam = CAMERA[enterprise]
    doc = wire.EdgeEvent(GATEWAY, rng.randint(1, 1000), ts, f"{cam}.INTRUSION.dike.{ts}", cam, "INTRUSION",
                         "new", ts, ts, "dike", 0.4, False, [0.1, 0.1, 0.2, 0.2], {"objects": 1},
                         b"\xff\xd8\xff\xe0JFIF", None).to_dict()  # fmt: skip
    mutations: list[Callable[[], None]] = [
        lambda: doc.update(score=float("nan")),
        lambda: doc.update(score=float("inf")),
        lambda: doc.update(detail={"note": "a\x00b"}),
        lambda: doc.update(detail={"d": json.loads('{"a":' * 40 + "1" + "}" * 40)}),
        lambda: doc.update(detail={"text": "x" * 20_000}),
        lambda: doc.update(ts=wire.MAX_TIME_MS + 1),
        lambda: doc.update(start=2**62),
        lambda: doc.update(ts=now_ms + 3_600_000),  # an hour ahead
        lambda: doc.update(start=now_ms + 3_600_000, ts=now_ms + 3_600_000),
        lambda: doc.update(cam="CAM999"),  # unknown camera
        lambda: doc.update(cam=CAMERA[NINGBO if enterprise == HANGZHOU else HANGZHOU]),  # another's
        lambda: doc.update(snap=b"\x89PNG\r\n\x1a\n" + rng.randbytes(64)),
        lambda: doc.update(snap="not base64!"),
        lambda: doc.update(kind="FAULT"),  # a condition the platform raises itself
        lambda: doc.update(kind="intrusion"),
        lambda: doc.update(phase="begin"),
        lambda: doc.update(box=[0, 0, 2, 2]),
        lambda: doc.update(gw="gw02"),
        lambda: doc.update(seq=-1),
        lambda: doc.update(id="has spaces"),
        lambda: doc.update(v=2),
        lambda: doc.update(suspected="yes"),
    ]
    rng.choice(mutations)()
    packed: bytes = msgpack.packb(doc, use_bin_type=True)
    return packed[: rng.randint(1, len(packed) - 1)] if rng.random() < 0.05 else packed


OTHERS: dict[str, Callable[[random.Random], bytes]] = {"health": health, "status": status, "cameras": cameras}


def _batch(seq: int, rows: list[tuple[str, int, float]], gateway: str = GATEWAY) -> bytes:
    b = wire.ReadingBatch(gateway=gateway, seq=seq, sent_ms=int(time.time() * 1000))
    for tag, ts, value in rows:
        b.append(tag, ts, value, Quality.GOOD)
    return wire.encode(b)


def semantic(rng: random.Random, enterprise: str, ts: int, now_ms: int) -> Hostile:
    """Well-formed readings that make no sense; ``ts`` is this message's own source time."""
    topic = wire.readings_topic(enterprise, GATEWAY)
    tags = SEMANTIC[enterprise]
    some = rng.sample(sorted(tags), rng.randint(1, 3))
    rows = [(t, ts, tags[t]) for t in some]
    choice = rng.randrange(9)
    if choice == 0:  # a sequence number far ahead
        return Hostile("seq_jump", topic, _batch(rng.choice([2**32, 2**40, 2**63 - 1]), rows), len(rows))
    if choice == 1:  # beyond the measuring range: an instrument fault, stored without a value
        rows = [(t, ts, rng.choice([1e308, -1e308, 1e300])) for t in some]
        return Hostile("beyond_range", topic, _batch(rng.randint(1, 1000), rows), len(rows), len(rows))
    if choice == 2:  # one reading twice in a batch
        return Hostile("twice", topic, _batch(rng.randint(1, 1000), rows + rows[:1]), len(rows))
    if choice == 3:
        return Hostile("unknown_tag", topic, _batch(1, [("NOPE1", ts, 1.0)]), rewritten=True)
    if choice == 4:
        return Hostile(
            "in_1970", topic, _batch(1, [(t, 1000 + ts % 1000, v) for t, _, v in rows]), rewritten=True
        )
    if choice == 5:
        ahead = rng.choice([now_ms + 3_600_000, wire.MAX_TIME_MS])
        return Hostile("ahead", topic, _batch(1, [(t, ahead, v) for t, _, v in rows]), rewritten=True)
    if choice == 6:
        return Hostile("other_gateway", topic, _batch(1, rows, gateway="gw02"))
    unknown = (
        f"{wire.TOPIC_ROOT}/{enterprise}/gw99/readings"
        if choice == 7
        else f"{wire.TOPIC_ROOT}/E999/gw01/readings"
    )
    return Hostile("unknown_gateway", unknown, _batch(1, rows))


FAMILIES = ["health", "status", "events", "cameras", "semantic", "camera_unknown"]


def hostile_payloads(count: int, seed: int) -> list[Hostile]:
    """``count`` hostile messages, the same on every run with the same seed, shuffled."""
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    enterprises = (HANGZHOU, NINGBO)
    corpus = fuzz_corpus(count * 2 // 5, seed)  # readings: 40 %
    out = [Hostile(kind, wire.readings_topic(HANGZHOU if kind == "not_finite" else rng.choice(enterprises),
                                             GATEWAY), payload, rewritten=kind == "not_finite")
           for kind, payload in corpus]  # fmt: skip
    ts = now_ms - 10_000  # semantic messages' source times, one each, never the feed's tags
    while len(out) < count:
        e = rng.choice(enterprises)
        family = rng.choices(FAMILIES, [15, 12, 15, 8, 10, 1])[0]
        if family == "semantic":
            out.append(semantic(rng, e, ts, now_ms))
            ts -= 1
            continue
        if family == "camera_unknown":  # well-formed, of a camera no ledger knows
            cams = {"CAM999": {"status": rng.choice(wire.CAMERA_STATES)}}
            out.append(
                Hostile(family, wire.cameras_topic(e, GATEWAY), wire.cameras_payload(GATEWAY, cams, now_ms))
            )
            continue
        payload = event(rng, e, now_ms) if family == "events" else OTHERS[family](rng)
        out.append(Hostile(family, f"{wire.TOPIC_ROOT}/{e}/{GATEWAY}/{family}", payload))
    rng.shuffle(out)
    return out


# -- publishers -----------------------------------------------------------------------------------


class Publisher:
    """QoS 1 with at most ``WINDOW`` messages unacknowledged by the broker."""

    def __init__(self, port: int, name: str) -> None:
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"bench-{name}-{uuid.uuid4().hex[:8]}"
        )
        self._client.max_inflight_messages_set(WINDOW)
        self._client.max_queued_messages_set(0)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        self._pending: deque[mqtt.MQTTMessageInfo] = deque()

    def publish(self, topic: str, payload: bytes) -> None:
        while len(self._pending) >= WINDOW:
            self._pending.popleft().wait_for_publish(120)
        self._pending.append(self._client.publish(topic, payload, qos=1))

    def flush(self) -> None:
        while self._pending:
            info = self._pending.popleft()
            info.wait_for_publish(300)
            if not info.is_published():
                raise TimeoutError("the broker did not acknowledge a message in 300 s")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def paced(rate: float, stop: threading.Event) -> Iterator[int]:
    """0, 1, 2, … at ``rate`` per second until ``stop`` is set."""
    start, k = time.monotonic(), 0
    while not stop.is_set():
        time.sleep(max(start + k / rate - time.monotonic(), 0))
        yield k
        k += 1


@dataclass(slots=True)
class Feed:
    """The steady valid feed: ten tags a batch, each batch at a source time of its own, at or
    before now (ingest dead-letters readings stamped more than 5 s ahead of its clock)."""

    port: int
    sent: list[tuple[int, float]] = field(default_factory=list)  # (source time, wall time published)
    _seq: int = 0
    _last_ts: int = 0

    def run(self, rate: float, stop: threading.Event) -> None:
        pub = Publisher(self.port, "feed")
        topic = wire.readings_topic(HANGZHOU, GATEWAY)
        try:
            for _ in paced(rate, stop):
                self._seq += 1
                self._last_ts = max(int(time.time() * 1000) - 2000, self._last_ts + 1)
                at = time.time()
                pub.publish(topic, _batch(self._seq, [(t, self._last_ts, v) for t, v in FEED.items()]))
                self.sent.append((self._last_ts, at))
            pub.flush()
        finally:
            pub.close()


class CommitWatch:
    """The newest stored source time of one feed tag, every 10 ms: a feed batch's readings commit
    together, and in the order published (one publisher, one worker)."""

    def __init__(self, url: str, tag_id: int, proc: subprocess.Popen[bytes]) -> None:
        self.points: list[tuple[int, float]] = [(0, 0.0)]  # (newest source time, wall time seen)
        self.died_at: float | None = None
        self._url, self._tag_id, self._proc = url, tag_id, proc
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commit-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with psycopg.connect(self._url, autocommit=True) as conn:
            while not self._stop.wait(0.01):
                row = conn.execute("SELECT (extract(epoch FROM max(ts)) * 1000)::bigint FROM readings"
                                   " WHERE tag_id = %s", (self._tag_id,)).fetchone()  # fmt: skip
                newest = int(row[0]) if row is not None and row[0] is not None else 0
                if newest > self.points[-1][0]:
                    self.points.append((newest, time.time()))
                if self.died_at is None and self._proc.poll() is not None:
                    self.died_at = time.time()

    def committed_at(self, ts_ms: int) -> float | None:
        i = bisect.bisect_left(self.points, (ts_ms, 0.0))
        return self.points[i][1] if i < len(self.points) else None

    def wait_for(self, ts_ms: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.committed_at(ts_ms) is None and time.monotonic() < deadline and self.died_at is None:
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


@dataclass(frozen=True, slots=True)
class Phase:
    readings: int  # published
    throughput: float  # committed per second, first publish → last commit
    latency_ms: np.ndarray  # of each committed batch
    span_s: float  # first publish → last commit


def phase_of(sent: list[tuple[int, float]], watch: CommitWatch) -> Phase:
    done = [(at, watch.committed_at(ts)) for ts, at in sent]
    committed = [(at, c) for at, c in done if c is not None]
    span = max(c for _, c in committed) - sent[0][1] if committed else float("inf")
    latency = np.array([(c - at) * 1000 for at, c in committed], dtype=np.float64)
    return Phase(len(sent) * len(FEED), len(committed) * len(FEED) / span, latency, span)


# -- the run --------------------------------------------------------------------------------------


@contextmanager
def ingest_process(url: str, port: int, tmp: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    env = dict(os.environ, HW_DATABASE_URL=url, HW_MQTT_URL=f"mqtt://127.0.0.1:{port}",
               HW_DEVICES=str(SAMPLE_DEVICES), HW_VAR_DIR=str(tmp / "var"), HW_LOG_LEVEL="INFO",
               PYTHONUNBUFFERED="1")  # fmt: skip
    log = tmp / "ingest.log"
    with log.open("wb") as out:
        command = [sys.executable, "-m", "hazardwatch", "ingest", "--no-sync", "--worker-id", "fuzz"]
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while "subscribed to" not in log.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"ingest did not subscribe:\n{log.read_text(errors='replace')[-3000:]}"
                    )
                time.sleep(0.1)
            yield proc, log
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def scalar(conn: Conn, query: str, *params: object) -> Any:
    row = conn.execute(query.encode(), params).fetchone()
    return None if row is None else row[0]


def wait_settled(url: str, expected_letters: int, expected_readings: int, timeout: float = 900) -> None:
    """Until ingest has stored what the flood is to leave, or made no progress for 30 s."""
    last, still = (-1, -1), time.monotonic()
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline and time.monotonic() - still < 30:
            now = (int(scalar(conn, "SELECT count(*) FROM dead_letters")),
                   int(scalar(conn, "SELECT count(*) FROM readings")))  # fmt: skip
            if now[0] >= expected_letters and now[1] >= expected_readings:
                return
            if now != last:
                last, still = now, time.monotonic()
            time.sleep(0.5)


@dataclass(slots=True)
class Figures:
    alone: Phase
    fuzz: Phase
    flood_s: float = 0.0  # the flood's first publish → last publish
    digested_s: float = 0.0  # the flood's first publish → its last dead letter
    alive: bool = True
    exit_code: int | None = None
    acknowledged: int = 0  # messages ingest says it processed
    published: int = 0
    tracebacks: int = 0
    log_lines: Counter[str] = field(default_factory=Counter)  # warnings and errors, by their first words
    db: dict[str, Any] = field(default_factory=dict)


def run(args: argparse.Namespace, hostile: list[Hostile], tmp: Path, port: int, url: str) -> Figures:
    migrate(url)
    with psycopg.connect(url) as conn:
        sync_ledger(conn, load_plant(SAMPLE_DEVICES))
        rows = conn.execute("SELECT t.code, t.id FROM tags t JOIN enterprises e ON e.id = t.enterprise_id"
                            " WHERE e.code = %s", (HANGZHOU,)).fetchall()  # fmt: skip
        ids = {str(code): int(tag_id) for code, tag_id in rows}
    with ingest_process(url, port, tmp) as (proc, log):
        watch = CommitWatch(url, int(ids["LT101"]), proc)
        feed = Feed(port)
        try:
            stop = threading.Event()
            threading.Timer(args.alone_s, stop.set).start()
            feed.run(args.feed_rate, stop)
            watch.wait_for(feed.sent[-1][0], 120)
            alone = phase_of(feed.sent, watch)
            first = len(feed.sent)
            stop = threading.Event()
            feeder = threading.Thread(target=feed.run, args=(args.feed_rate, stop), name="feed")
            feeder.start()
            flood = Publisher(port, "flood")
            started = time.time()
            try:
                for k in paced(args.flood_rate, threading.Event()):
                    if k == len(hostile):
                        break
                    flood.publish(hostile[k].topic, hostile[k].payload)
                flood_s = time.time() - started
                stop.set()
                flood.flush()
            finally:
                stop.set()
                feeder.join()
                flood.close()
            watch.wait_for(feed.sent[-1][0], 900)
            expected_readings = len(feed.sent) * len(FEED) + sum(h.stored for h in hostile)
            wait_settled(url, sum(h.stored == 0 for h in hostile), expected_readings)
            f = Figures(alone, phase_of(feed.sent[first:], watch), flood_s)
            f.alive = proc.poll() is None and watch.died_at is None
        finally:
            watch.close()
        proc.send_signal(signal.SIGTERM)
        try:
            f.exit_code = proc.wait(60)
        except subprocess.TimeoutExpired:
            f.exit_code = None
        text = log.read_text(errors="replace")
    f.published = len(feed.sent) + len(hostile)
    stopped = [ln for ln in text.splitlines() if "ingest stopped after " in ln]
    f.acknowledged = int(stopped[-1].split("ingest stopped after ")[1].split()[0]) if stopped else 0
    f.tracebacks = text.count("Traceback")
    for line in text.splitlines():
        for level in (" WARNING ", " ERROR ", " CRITICAL "):
            if level in line:
                f.log_lines[level.strip() + " " + " ".join(line.split(level, 1)[1].split()[:7])] += 1
    f.db = database_figures(url, hostile, ids, started)
    return f


LETTERS = "SELECT {} FROM dead_letters"
BY_KIND = " GROUP BY 1 ORDER BY 2 DESC"


def database_figures(
    url: str, hostile: list[Hostile], ids: dict[str, int], flood_start: float
) -> dict[str, Any]:
    feed_ids = [ids[t] for t in FEED]
    with psycopg.connect(url) as conn:
        db: dict[str, Any] = {
            "feed_stored": scalar(conn, "SELECT count(*) FROM readings WHERE tag_id = ANY(%s)"
                                  " AND quality = 0", feed_ids),
            "readings": scalar(conn, "SELECT count(*) FROM readings"),
            "faults": scalar(conn, "SELECT count(*) FROM readings WHERE quality = %s AND value IS NULL",
                             int(Quality.INSTRUMENT_FAULT)),
            "letters": scalar(conn, LETTERS.format("count(*)")),
            "kept": scalar(conn, LETTERS.format("coalesce(sum(octet_length(payload)), 0)")),
            "received": scalar(conn, LETTERS.format("coalesce(sum(payload_size), 0)")),
            "largest": scalar(conn, LETTERS.format("coalesce(max(octet_length(payload)), 0)")),
            "last_letter": scalar(conn, LETTERS.format("extract(epoch FROM max(received_at))")),
            "kinds": conn.execute(LETTERS.format("kind, count(*)") + BY_KIND).fetchall(),
            "gateways": conn.execute(
                "SELECT e.code || '/' || g.code, g.last_seq, g.seq_gaps, g.seq_epochs, g.seq_lost"
                " FROM gateways g JOIN enterprises e ON e.id = g.enterprise_id ORDER BY 1").fetchall(),
            "alarms": scalar(conn, "SELECT count(*) FROM alarms"),
        }  # fmt: skip
        shas = Counter(bytes(r[0]) for r in conn.execute(LETTERS.format("payload_sha256")))
    db["digested_s"] = float(db["last_letter"] or flood_start) - flood_start
    missing: Counter[str] = Counter()
    for h in hostile:
        if h.stored:
            continue
        digest = hashlib.sha256(h.payload).digest()
        if shas[digest] > 0:
            shas[digest] -= 1
        elif not h.rewritten:
            missing[h.family] += 1
    db["missing"] = missing  # refused messages whose whole payload has no letter
    db["rewritten_letters"] = sum(shas.values())  # letters holding refused readings, not a payload
    db["rewritten_messages"] = sum(h.rewritten for h in hostile)
    return db


# -- output ---------------------------------------------------------------------------------------


def line(name: str, value: str, note: str) -> None:
    print(f"  {name:<29}{value:>12}   {note}")


def report(args: argparse.Namespace, f: Figures, hostile: list[Hostile]) -> None:
    db, n = f.db, len(hostile)
    refused = sum(h.stored == 0 for h in hostile)
    stored, faults = sum(h.stored for h in hostile), sum(h.faults for h in hostile)
    published = f.alone.readings + f.fuzz.readings
    crashes = int(not f.alive) + int(f.exit_code != 0)
    one_each = not db["missing"] and db["letters"] == refused
    one_each &= db["rewritten_letters"] == db["rewritten_messages"]
    print(f"ingest under {n:,} hostile payloads (seed {args.seed}, {args.flood_rate:g}/s for "
          f"{f.flood_s:.0f} s) next to a valid feed of {len(FEED)} readings × {args.feed_rate:g} "
          f"batches/s; one `hazardwatch ingest` process, {os.cpu_count()} CPUs for every part")  # fmt: skip
    alive = "yes" if f.alive else "NO"
    line(
        "ingest crashes", f"{crashes}", f"(goal 0; alive throughout: {alive}; exit {f.exit_code} on SIGTERM)"
    )
    line("tracebacks logged", f"{f.tracebacks}", "(goal 0)")
    line("valid readings lost", f"{published - int(db['feed_stored']):,}",
         f"(goal 0; {published:,} published, {int(db['feed_stored']):,} stored)")  # fmt: skip
    for name, p in (("alone", f.alone), ("under fuzz", f.fuzz)):
        q = np.percentile(p.latency_ms, [50, 99, 100]) if p.latency_ms.size else [float("nan")] * 3
        line(f"valid feed {name}", f"{p.throughput:,.0f} rd/s",
             f"(first publish → last commit {p.span_s:.1f} s; publish → commit p50 {q[0]:.0f} ms, "
             f"p99 {q[1]:.0f} ms, max {q[2]:.0f} ms)")  # fmt: skip
    line("under fuzz / alone", f"{f.fuzz.throughput / f.alone.throughput:.2f}",
         "(goal >= 0.8; readings committed per second, first publish → last commit, of a paced feed: "
         "below 1 when ingest falls behind the feed and the flood together)")  # fmt: skip
    line("flood digested in", f"{db['digested_s']:.1f} s",
         f"(first hostile publish → last dead letter; published over {f.flood_s:.1f} s)")  # fmt: skip
    line("dead-letter bytes / hostile", f"{db['kept'] / n:,.0f} B",
         f"(bounded; {db['kept'] / 2**20:.1f} MiB kept of {db['received'] / 2**20:.1f} MiB received; "
         f"largest {db['largest']:,} B)")  # fmt: skip
    line("dead letters", f"{db['letters']:,}", "(" + ", ".join(f"{k} {c:,}" for k, c in db["kinds"]) + ")")
    gaps = "".join(f"; {c:,} {fam} with no letter" for fam, c in db["missing"].most_common())
    line("one per refused message", "yes" if one_each else "NO",
         f"({refused:,} refused; {db['rewritten_letters']:,} letters of refused readings for "
         f"{db['rewritten_messages']:,} such batches{gaps})")  # fmt: skip
    unexpected = int(db["readings"]) - int(db["feed_stored"]) - stored
    line("semantic nonsense stored", f"{stored:,}",
         f"(readings of seq jumps, ±1e308 and doubled readings; {int(db['faults']):,} INSTRUMENT_FAULT of "
         f"{faults:,} beyond range; {unexpected:+,} unexpected readings)")  # fmt: skip
    line("messages acknowledged", f"{f.acknowledged:,}", f"({f.published:,} published)")
    print("  gateways (last seq, gaps, epochs, lost): "
          + "; ".join(f"{gw} {s}, {g}, {e}, {lo}" for gw, s, g, e, lo in db["gateways"]))  # fmt: skip
    print(f"  alarms raised meanwhile: {db['alarms']}")
    for text, count in f.log_lines.most_common(6):
        print(f"  log: {count:>6} × {text}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=100_000, help="hostile payloads")
    parser.add_argument("--seed", type=int, default=21, help="seed of the hostile payloads")
    parser.add_argument("--flood-rate", type=float, default=400.0, help="hostile messages per second")
    parser.add_argument("--feed-rate", type=float, default=50.0, help="valid batches per second")
    parser.add_argument("--alone-s", type=float, default=20.0, help="length of the feed-alone phase")
    args = parser.parse_args(argv)
    hostile = hostile_payloads(args.count, args.seed)
    with tempfile.TemporaryDirectory() as name, private_database() as url:
        tmp = Path(name)
        port = free_port()
        broker = PrivateMosquitto(tmp, port, persistent=False)
        broker.start()
        try:
            f = run(args, hostile, tmp, port, url)
        finally:
            broker.stop()
    report(args, f, hostile)


if __name__ == "__main__":
    main()
