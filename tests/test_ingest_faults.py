"""Ingest under faults, against a real Mosquitto and a real PostgreSQL.

- a PostgreSQL restart in the middle of a stream loses nothing and stores nothing twice;
- a message delivered twice (and once more flagged replay) yields one row per reading;
- 1,000 fuzzed payloads all land in ``dead_letters`` with a reason and the consumer goes on;
- two ``hazardwatch ingest`` processes split the enterprises between them without overlap.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgpack
import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hazardwatch import wire
from hazardwatch.ledger import Plant
from hazardwatch.quality import Quality
from hazardwatch.services import PrivateMosquitto, PrivatePostgres
from hazardwatch.settings import MqttAddress
from ingest.consumer import Consumer, subscriptions
from ingest.db import ensure_database
from ingest.ledger_sync import sync_ledger
from ingest.migrate import migrate
from ingest.pipeline import Pipeline
from tests.support import free_port, private_mosquitto
from tests.test_e2e import Stack

HANGZHOU, NINGBO = "E330110001", "E330281002"
# Ten tags of each sample enterprise, each at a value inside its limits.
NORMAL = {
    HANGZHOU: {"LT101": 50.0, "PT101": 1.0, "TT101": 20.0, "LT102": 50.0, "PT102": 1.0,
               "TT102": 20.0, "LT103": 50.0, "PT103": 1.0, "TT103": 20.0, "FT101": 50.0},
    NINGBO: {"LT301": 50.0, "PT301": 0.5, "TT301": 20.0, "LT302": 50.0, "PT302": 0.5,
             "TT302": 20.0, "AT301": 0.2, "AT302": 0.2, "AT303": 0.2, "MT301": 50.0},
}  # fmt: skip
PER_BATCH = 10


def until(probe: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def batch(enterprise: str, seq: int, t0_ms: int, failed: str = "") -> bytes:
    """Batch ``seq`` of the enterprise's gateway gw01: its ten tags at a time of its own; the
    ``failed`` tag's transmitter reports BAD quality."""
    b = wire.ReadingBatch(gateway="gw01", seq=seq, sent_ms=int(time.time() * 1000))
    for tag, value in NORMAL[enterprise].items():
        b.append(tag, t0_ms + seq * 10, value, Quality.BAD if tag == failed else Quality.GOOD)
    return wire.encode(b)


def scalar(url: str, query: str, *params: object) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(query.encode(), params).fetchone()
    assert row is not None
    return row[0]


def readings_of(url: str, enterprise: str) -> int:
    return int(
        scalar(url, "SELECT count(*) FROM readings r JOIN tags t ON t.id = r.tag_id"
               " JOIN enterprises e ON e.id = t.enterprise_id WHERE e.code = %s", enterprise)
    )  # fmt: skip


def prepare_database(url: str, plant: Plant) -> None:
    migrate(url)
    with psycopg.connect(url) as conn:
        sync_ledger(conn, plant)


class Publisher:
    """A QoS 1 publisher; ``send`` returns once the broker has acknowledged every message."""

    def __init__(self, port: int) -> None:
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-pub-{uuid.uuid4().hex}")
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()

    def send(self, messages: list[tuple[str, bytes]]) -> None:
        infos = [self._client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(30)
            assert info.is_published()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@contextmanager
def publisher(port: int) -> Iterator[Publisher]:
    p = Publisher(port)
    try:
        yield p
    finally:
        p.close()


@contextmanager
def running(consumer: Consumer) -> Iterator[threading.Thread]:
    """The consumer on a thread of its own, subscribed when this yields."""
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), name="ingest-worker")
    thread.start()
    try:
        until(consumer.subscribed.is_set, "the consumer's subscriptions", timeout=20)
        yield thread
    finally:
        stop.set()
        thread.join(30)


def consumer_for(url: str, port: int, *enterprises: str) -> Consumer:
    return Consumer(
        Pipeline(url),
        MqttAddress("127.0.0.1", port),
        client_id=f"test-ingest-{uuid.uuid4().hex[:8]}",
        topics=subscriptions(enterprises),
    )


@pytest.fixture
def broker_port() -> Iterator[int]:
    """A broker of the test's own, so that no session outlives the test on a shared one."""
    with private_mosquitto() as port:
        yield port


# -- a database restart in the middle of a stream -----------------------------------------------


@pytest.fixture
def restartable_database(sample_plant: Plant) -> Iterator[tuple[PrivatePostgres, str]]:
    """A PostgreSQL cluster of the test's own (the shared one is never restarted), schema and ledger."""
    with tempfile.TemporaryDirectory(prefix="hw-test-pg-") as name:
        # the cluster runs as the postgres user, which must reach its directory: pytest's tmp_path
        # lies under a directory only its owner may enter
        Path(name).chmod(0o711)
        pg = PrivatePostgres(Path(name), free_port())
        pg.start()
        try:
            url = f"postgresql://postgres@127.0.0.1:{pg.port}/hazardwatch"
            ensure_database(url)
            prepare_database(url, sample_plant)
            yield pg, url
        finally:
            pg.stop()


class StoreCount:
    """Mosquitto's count of messages it holds ($SYS/broker/store/messages/count, every second)."""

    TOPIC = "$SYS/broker/store/messages/count"

    def __init__(self, port: int) -> None:
        self.value: int | None = None
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-sys-{uuid.uuid4().hex}")
        self._client.on_connect = lambda c, *_: c.subscribe(self.TOPIC)
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.value = int(msg.payload)

    def at_least(self, n: int) -> bool:
        return self.value is not None and self.value >= n

    def below(self, n: int) -> bool:
        return self.value is not None and self.value < n

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def test_database_restart_mid_stream_loses_nothing(
    restartable_database: tuple[PrivatePostgres, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pg, url = restartable_database
    caplog.set_level(logging.INFO, logger="ingest.consumer")
    batches, third = 240, 80
    t0 = int(time.time() * 1000) - 600_000
    topic = wire.readings_topic(HANGZHOU, "gw01")
    port = free_port()
    broker = PrivateMosquitto(tmp_path, port, persistent=False, options=["sys_interval 1"])
    broker.start()
    store = StoreCount(port)
    consumer = consumer_for(url, port, HANGZHOU)
    db_stopped, middle_sent, db_started = threading.Event(), threading.Event(), threading.Event()
    sent: list[int] = []

    def stream() -> None:
        """Batches 1…240, one at a time: the middle third goes out while the database is down."""
        with publisher(port) as pub:
            for seq in range(1, batches + 1):
                if seq == third + 1:
                    db_stopped.wait(60)
                if seq == 2 * third + 1:
                    middle_sent.set()
                    db_started.wait(60)
                pub.send([(topic, batch(HANGZHOU, seq, t0))])
                sent.append(seq)

    try:
        with running(consumer) as worker:
            until(lambda: store.value is not None, "the broker's first $SYS report")
            baseline = store.value  # idle: $SYS's own retained messages, nothing of ours
            assert baseline is not None
            streamer = threading.Thread(target=stream, name="publisher")
            streamer.start()
            until(lambda: len(sent) == third and readings_of(url, HANGZHOU) > 0, "the stream under way")
            pg.stop()  # pg_ctl stop -m fast: open transactions are cut off
            db_stopped.set()
            until(middle_sent.is_set, "the middle third published during the outage")
            until(lambda: any("database unavailable" in r.getMessage() for r in caplog.records),
                  "the worker noticing the outage")  # fmt: skip
            # nothing can be acknowledged while the database is down: the broker holds the batches
            until(lambda: store.at_least(baseline + third), "the broker holding the unacknowledged batches")
            time.sleep(3)  # the outage lasts a few seconds more, the worker backing off
            pg.start()
            db_started.set()
            streamer.join(60)
            assert sent == list(range(1, batches + 1))
            until(lambda: readings_of(url, HANGZHOU) == batches * PER_BATCH, "every reading stored")
            until(lambda: consumer.processed == batches, "every batch acknowledged")
            until(lambda: store.below(baseline + third), "the broker releasing the acknowledged batches")
            assert worker.is_alive()
    finally:
        db_stopped.set()
        db_started.set()  # a failed test does not leave the publisher waiting
        store.close()
        broker.stop()
    assert readings_of(url, HANGZHOU) == batches * PER_BATCH  # once each: (tag, time) is unique
    assert scalar(url, "SELECT count(DISTINCT (tag_id, ts)) FROM readings") == batches * PER_BATCH
    assert consumer.processed == batches  # each batch acknowledged once, none redelivered
    assert scalar(url, "SELECT count(*) FROM dead_letters") == 0
    assert scalar(url, "SELECT last_seq::int FROM gateways WHERE code = 'gw01' AND enterprise_id ="
                  " (SELECT id FROM enterprises WHERE code = %s)", HANGZHOU) == batches  # fmt: skip
    assert scalar(url, "SELECT sum(seq_gaps)::int FROM gateways") == 0
    messages = [r.getMessage() for r in caplog.records if r.name == "ingest.consumer"]
    assert sum(m.startswith("database unavailable") for m in messages) == 1  # down once
    assert sum(m.startswith("database is back") for m in messages) == 1  # recovered once


# -- a message delivered twice ----------------------------------------------------------------


def test_a_message_delivered_twice_yields_one_row(
    database_url: str, sample_plant: Plant, broker_port: int
) -> None:
    prepare_database(database_url, sample_plant)
    t0 = int(time.time() * 1000) - 60_000
    topic = wire.readings_topic(HANGZHOU, "gw01")
    first = batch(HANGZHOU, 1, t0, failed="PT101")  # PT101 fails: its FAULT, once it has held 2 s
    consumer = consumer_for(database_url, broker_port, HANGZHOU)
    with running(consumer), publisher(broker_port) as pub:
        pub.send([(topic, first)])
        until(lambda: readings_of(database_url, HANGZHOU) == PER_BATCH, "the first delivery")
        # again on its own step, again flagged replay, and a next batch, in one step or several
        pub.send(
            [
                (topic, first),
                (topic, wire.mark_replay(first)),
                (topic, batch(HANGZHOU, 2, t0 + 3000, failed="PT101")),  # past FAULT's 2 s on-delay
            ]
        )
        until(lambda: consumer.processed == 4, "all four messages acknowledged")
    assert readings_of(database_url, HANGZHOU) == 2 * PER_BATCH
    journal = scalar(database_url, "SELECT array_agg(action ORDER BY id) FROM alarm_journal")
    assert journal == ["raise"]  # raised once: the repeated readings change nothing
    assert scalar(database_url, "SELECT count(*) FROM dead_letters") == 0
    assert scalar(database_url, "SELECT sum(seq_gaps)::int FROM gateways") == 0


# -- fuzzed payloads ----------------------------------------------------------------------------

FUZZ_SEED = 20261122
FUZZ_COUNT = 1000
FUZZ_TAGS = list(NORMAL[HANGZHOU])


def good_doc(rng: random.Random, n: int | None = None) -> dict[str, Any]:
    n = n or rng.randint(1, 5)
    now = int(time.time() * 1000)
    return {"v": 1, "gw": "gw01", "seq": rng.randint(1, 10_000), "replay": False, "sent": now,
            "tags": [rng.choice(FUZZ_TAGS) for _ in range(n)], "ts": [now - rng.randint(1, 60_000)] * n,
            "val": [50.0] * n, "q": [0] * n}  # fmt: skip


def encode(rng: random.Random, doc: dict[str, Any]) -> bytes:
    """msgpack mostly, JSON (which allows NaN and Infinity) now and then."""
    if rng.random() < 0.3:
        return json.dumps(doc).encode()
    packed: bytes = msgpack.packb(doc, use_bin_type=True)
    return packed


def random_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.randint(1, 256))


def truncated_msgpack(rng: random.Random) -> bytes:
    packed: bytes = msgpack.packb(good_doc(rng), use_bin_type=True)
    return packed[: rng.randint(1, len(packed) - 1)]


WRONG: dict[str, list[Any]] = {
    "v": ["1", None, [1], {"v": 1}],
    "gw": [7, None, "", ["gw01"], {"id": "gw01"}],
    "seq": [-1, "7", 7.5, None, True, [7]],
    "sent": [-1, "now", 1.5, None, False],
    "replay": ["yes", 1, None, [True]],
    "tags": ["LT101", [7], [""], None, [None], {"0": "LT101"}],
    "ts": [[-1], ["1732262399500"], [1.5], "123", None, [True]],
    "val": [["50"], [True], "1.0", [[50.0]], None, {"x": 1}],
    "q": [[99], ["0"], [1.5], [None], [-1], 0],
}


def wrong_type(rng: random.Random) -> bytes:
    """One field of a good batch holds a value of the wrong type, or is missing."""
    doc = good_doc(rng)
    field = rng.choice(sorted(WRONG))
    if field != "replay" and rng.random() < 0.15:
        del doc[field]
        return encode(rng, doc)
    wrong = rng.choice(WRONG[field])
    if field in ("tags", "ts", "val", "q") and isinstance(wrong, list):
        wrong = wrong * len(doc["tags"])  # as long as the other columns: the items are what is wrong
    doc[field] = wrong
    return encode(rng, doc)


def not_finite(rng: random.Random) -> bytes:
    """Well-formed, but every value is NaN or ±inf with a quality that says it has a value."""
    doc = good_doc(rng)
    n = len(doc["tags"])
    doc["val"] = [rng.choice([float("nan"), float("inf"), float("-inf")]) for _ in range(n)]
    doc["q"] = [rng.choice([int(Quality.GOOD), int(Quality.UNCERTAIN)]) for _ in range(n)]
    return encode(rng, doc)


def unknown_version(rng: random.Random) -> bytes:
    doc = good_doc(rng)
    doc["v"] = rng.choice([0, 2, 3, 99, -1, 1.5, "v1", 2**40])
    return encode(rng, doc)


def json_variant(rng: random.Random) -> bytes:
    text = json.dumps(good_doc(rng))
    variants = [
        "[" + text + "]",  # an array holding the batch
        text[: rng.randint(1, len(text) - 1)],  # cut short
        text.replace('"', "'"),  # single quotes
        text + "}}",  # trailing garbage
        " 42",  # a number
        ' "a string"',
        " null",
        "\ufeff" + text,  # a byte order mark
        text.replace('"v"', '"V"'),  # keys are case-sensitive
        text.replace('"ts": [', '"ts": ["'),  # a broken string
    ]
    choice = rng.choice(variants)
    if rng.random() < 0.1:
        return choice.encode()[:-1] + b"\xff\xfe"  # invalid UTF-8
    return choice.encode()


def empty(_rng: random.Random) -> bytes:
    return b""


def huge_arrays() -> list[bytes]:
    """Columns longer than wire.MAX_BATCH_READINGS, in both encodings."""
    n = wire.MAX_BATCH_READINGS + 1
    doc = {"v": 1, "gw": "gw01", "seq": 1, "sent": 0, "tags": ["LT101"] * n, "ts": list(range(n)),
           "val": [1.0] * n, "q": [0] * n}  # fmt: skip
    only_val = {**doc, "tags": ["LT101"], "ts": [0], "q": [0]}
    return [msgpack.packb(doc), json.dumps(doc).encode(), msgpack.packb(only_val)]


def beyond_the_decoder() -> list[bytes]:
    """Inputs that once escaped wire.decode (an exception, or a value the database refuses): deep
    nesting, huge integers, a sequence number beyond bigint, a NUL inside a tag code."""
    doc: dict[str, Any] = {"v": 1, "gw": "gw01", "seq": 1, "sent": 0, "tags": ["LT101"], "ts": [0],
                           "val": [1.0], "q": [0]}  # fmt: skip
    return [
        b'{"v": 1, "gw": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # nesting beyond recursion
        json.dumps({**doc, "val": [10**400]}).encode(),  # an integer no float can hold
        json.dumps(doc).replace('"seq": 1', '"seq": ' + "9" * 5000).encode(),  # > 4,300 digits
        msgpack.packb({**doc, "seq": 2**63, "ts": [int(time.time() * 1000)]}),  # beyond bigint
        msgpack.packb({**doc, "tags": ["LT\x00101"], "ts": [int(time.time() * 1000)]}),  # NUL in text
    ]


def fuzz_corpus(count: int, seed: int) -> list[tuple[str, bytes]]:
    """(kind, payload) pairs, the same on every run; every one of them is to be dead-lettered."""
    rng = random.Random(seed)
    corpus = [("huge", p) for p in huge_arrays()] + [("beyond", p) for p in beyond_the_decoder()]
    makers = [random_bytes, truncated_msgpack, wrong_type, not_finite, unknown_version, json_variant, empty]
    while len(corpus) < count:
        maker = makers[len(corpus) % len(makers)]
        corpus.append((maker.__name__, maker(rng)))
    rng.shuffle(corpus)
    return corpus


def test_fuzzed_payloads_are_dead_lettered_and_ingest_goes_on(
    database_url: str, sample_plant: Plant, broker_port: int
) -> None:
    prepare_database(database_url, sample_plant)
    corpus = fuzz_corpus(FUZZ_COUNT, FUZZ_SEED)
    topic = wire.readings_topic(HANGZHOU, "gw01")
    consumer = consumer_for(database_url, broker_port, HANGZHOU)
    with running(consumer) as worker, publisher(broker_port) as pub:
        pub.send([(topic, payload) for _, payload in corpus])
        # batch 20,000 is stamped t0 + 200 s: a second ago
        pub.send([(topic, batch(HANGZHOU, 20_000, int(time.time() * 1000) - 201_000))])
        until(lambda: consumer.processed == FUZZ_COUNT + 1, "every message acknowledged", timeout=90)
        assert worker.is_alive()
    assert readings_of(database_url, HANGZHOU) == PER_BATCH  # the good batch after them all
    with psycopg.connect(database_url) as conn:
        letters = conn.execute("SELECT topic, reason, payload FROM dead_letters").fetchall()
    assert len(letters) == FUZZ_COUNT  # one each
    assert all(t == topic and str(reason).strip() for t, reason, _ in letters)
    kinds = [kind for kind, _ in corpus]
    finite = [str(r) for _, r, _ in letters if "value is not a finite number" in str(r)]
    assert len(finite) == kinds.count("not_finite")
    internal = [bytes(p)[:60] for _, r, p in letters if str(r).startswith("internal error")]
    assert internal == []  # every kind is refused by the decoder with a reason of its own


# -- two workers, disjoint enterprises ------------------------------------------------------------


@pytest.fixture
def workers(tmp_path: Path, database_url: str, broker_port: int) -> Iterator[Stack]:
    env = dict(os.environ)
    env.update(
        HW_DATABASE_URL=database_url,
        HW_MQTT_URL=f"mqtt://127.0.0.1:{broker_port}",
        HW_VAR_DIR=str(tmp_path / "var"),
        HW_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    stack = Stack(env, tmp_path)
    try:
        yield stack
    finally:
        codes = stack.stop()
        for name in stack.procs:
            print(f"----- {name} (exit {codes[name]}) -----\n{stack.log(name)[-3000:]}")


def start_worker(stack: Stack, name: str, enterprise: str, worker_id: str) -> None:
    stack.start(name, "ingest", "--no-sync", "--enterprises", enterprise, "--worker-id", worker_id)
    until(lambda: "subscribed to" in stack.log(name), f"{name} to subscribe")


def stop_worker(stack: Stack, name: str) -> int:
    """SIGTERM; the number of messages the worker says it processed."""
    proc = stack.procs[name]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    line = [ln for ln in stack.log(name).splitlines() if "ingest stopped after" in ln][-1]
    return int(line.split("ingest stopped after ")[1].split()[0])


def test_two_workers_split_the_enterprises_without_overlap(
    workers: Stack, database_url: str, sample_plant: Plant, broker_port: int
) -> None:
    prepare_database(database_url, sample_plant)
    t0 = int(time.time() * 1000) - 600_000
    topics = {e: wire.readings_topic(e, "gw01") for e in (HANGZHOU, NINGBO)}
    start_worker(workers, "worker-1", HANGZHOU, "1")
    start_worker(workers, "worker-2", NINGBO, "2")
    rounds = 20
    with publisher(broker_port) as pub:
        pub.send([(topics[e], batch(e, 1, t0)) for e in (HANGZHOU, NINGBO)])
        until(lambda: readings_of(database_url, NINGBO) == PER_BATCH, "worker 2's first batch")
        assert stop_worker(workers, "worker-2") == 1  # its session stays on the broker
        pub.send([(topics[e], batch(e, seq, t0)) for seq in range(2, rounds + 2) for e in (HANGZHOU, NINGBO)])
        until(lambda: readings_of(database_url, HANGZHOU) == (rounds + 1) * PER_BATCH, "Hangzhou's batches")
        # worker 1 took every Hangzhou batch, interleaved with Ningbo's, and none of Ningbo's
        assert readings_of(database_url, NINGBO) == PER_BATCH
        start_worker(workers, "worker-2-again", NINGBO, "2")  # same id and list: the same session
        until(lambda: readings_of(database_url, NINGBO) == (rounds + 1) * PER_BATCH,
              "Ningbo's batches, held by the broker meanwhile")  # fmt: skip
    assert stop_worker(workers, "worker-1") == rounds + 1  # all of Hangzhou's, nothing else
    assert stop_worker(workers, "worker-2-again") == rounds
    assert scalar(database_url, "SELECT count(*) FROM readings") == 2 * (rounds + 1) * PER_BATCH
    assert scalar(database_url, "SELECT sum(seq_gaps)::int FROM gateways") == 0
    assert scalar(database_url, "SELECT count(*) FROM dead_letters") == 0


def test_a_worker_restarted_without_an_enterprise_stops_taking_it(
    workers: Stack, database_url: str, sample_plant: Plant, broker_port: int
) -> None:
    """One session per worker id: the enterprises it gave up are unsubscribed, not left collecting."""
    prepare_database(database_url, sample_plant)
    t0 = int(time.time() * 1000) - 600_000
    topics = {e: wire.readings_topic(e, "gw01") for e in (HANGZHOU, NINGBO)}
    start_worker(workers, "both", f"{HANGZHOU},{NINGBO}", "1")
    assert stop_worker(workers, "both") == 0
    start_worker(workers, "hangzhou-only", HANGZHOU, "1")  # the same worker, one enterprise fewer
    assert "no longer this worker's" in workers.log("hangzhou-only")
    with publisher(broker_port) as pub:
        pub.send([(topics[e], batch(e, 1, t0)) for e in (NINGBO, HANGZHOU)])
        until(lambda: readings_of(database_url, HANGZHOU) == PER_BATCH, "Hangzhou's batch")
        time.sleep(1)  # anything of Ningbo's would have arrived by now
    assert stop_worker(workers, "hangzhou-only") == 1
    assert readings_of(database_url, NINGBO) == 0
    recorded = scalar(
        database_url, "SELECT array_length(topics, 1) FROM ingest_workers WHERE worker_id = '1'"
    )
    assert recorded == 5  # readings, status, health, events and cameras of Hangzhou only


def test_a_retained_batch_is_refused_not_stored_again_for_every_new_subscription(
    database_url: str, sample_plant: Plant, broker_port: int
) -> None:
    """A retained readings batch would come back to every new ingest subscription, even after the
    identity that left it was revoked: it is a dead letter, never a reading."""
    prepare_database(database_url, sample_plant)
    topic = wire.readings_topic(HANGZHOU, "gw01")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-retain-{uuid.uuid4().hex}")
    client.connect("127.0.0.1", broker_port)
    client.loop_start()
    client.publish(
        topic, batch(HANGZHOU, 1, int(time.time() * 1000) - 5000), qos=1, retain=True
    ).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()
    consumer = consumer_for(database_url, broker_port, HANGZHOU)
    with running(consumer):
        until(lambda: consumer.processed == 1, "the retained batch handled")
    assert readings_of(database_url, HANGZHOU) == 0
    reason = scalar(database_url, "SELECT reason FROM dead_letters")
    assert reason == "retained readings are not taken (publish them without retain)"
