"""Zero loss under faults, counted: a broker outage of a minute, and kill -9 of the agent mid-replay.

Every part is a real process (simulators, an agent per gateway, ingest) on a private, persistent
Mosquitto configured by `hazardwatch broker config` (authentication and ACL on: each agent and
ingest under its own identity) and a fresh database. Three independent counts must agree afterwards:

- the agent's own: readings committed to its buffer (the buffer's lifetime counters);
- the wire's: a QoS 1 subscriber with a persistent session records every batch (sequence
  number, tags, timestamps), so a batch the agent numbered and never delivered shows as a
  missing sequence number;
- the database's: one row per (tag, source time) that the delivered batches carry.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest

from gateway_agent.agent import buffer_path
from gateway_agent.buffer import read_stats
from hazardwatch import wire
from hazardwatch.credentials import env_path
from hazardwatch.mqttconn import make_client
from hazardwatch.settings import MqttAddress
from tests.support import AuthBroker, authenticated_mosquitto, free_port, plant_doc_on_ports, wait_for_port
from tests.test_e2e import Stack, eventually, make_stack, stop_and_show

pytestmark = pytest.mark.e2e

GATEWAYS = [("E330110001", "gw01"), ("E330281002", "gw01")]
OUTAGE_S = float(os.environ.get("HW_TEST_OUTAGE_S", "60"))


@dataclass
class Recorder:
    """Every readings batch the broker delivers, kept by (enterprise, gateway, seq), under the
    second ingest worker's identity (a platform identity: it may read every gateway)."""

    address: MqttAddress
    batches: dict[tuple[str, str, int], wire.ReadingBatch] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    subscribed: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.client = make_client(self.address, "hw-ingest-2", clean_session=False)
        self.client.on_connect = lambda c, *_: c.subscribe(wire.READINGS_SUBSCRIPTION, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        address = wire.parse_topic(msg.topic)
        batch = wire.decode(bytes(msg.payload))
        with self.lock:
            self.batches[(address.enterprise, address.gateway, batch.seq)] = batch

    def seqs(self, enterprise: str, gateway: str) -> set[int]:
        with self.lock:
            return {seq for (e, g, seq) in self.batches if (e, g) == (enterprise, gateway)}

    def readings(self) -> tuple[int, set[tuple[str, str, int]]]:
        """Readings in the distinct batches, and the distinct (enterprise, tag, time) among them."""
        with self.lock:
            batches = list(self.batches.items())
        total = sum(len(b) for _, b in batches)
        distinct = {(e, tag, ts) for (e, _, _), b in batches for tag, ts in zip(b.tags, b.ts_ms, strict=True)}
        return total, distinct


@pytest.fixture
def broker(tmp_path: Path) -> tuple[int, Path]:
    """Port and directory of a persistent authenticated broker; tests restart it on the same one."""
    return free_port(), tmp_path / "broker"


def running_broker(stack: Stack, broker: tuple[int, Path]) -> contextlib.AbstractContextManager[AuthBroker]:
    """(Re)configure the broker for the stack's devices file, secrets kept, and run it."""
    port, directory = broker
    return authenticated_mosquitto(directory, Path(stack.env["HW_DEVICES"]), port)


def start_agents(stack: Stack, directory: Path) -> None:
    """One agent process per gateway, each with its own identity's environment file."""
    for enterprise, gateway in GATEWAYS:
        env_file = env_path(directory, f"hw-agent-{enterprise}-{gateway}")
        stack.start(f"agent-{enterprise}", "agent", "--enterprise", enterprise, "--gateway", gateway,
                    "--env-file", str(env_file))  # fmt: skip


def start_everything(stack: Stack, directory: Path) -> None:
    stack.start("simulate", "simulate")
    wait_for_port(int(stack.env["HW_SIM_CONTROL"].rsplit(":", 1)[1]), timeout=30)
    stack.start("ingest", "ingest", "--no-sync", "--env-file", str(env_path(directory, "hw-ingest-1")))
    start_agents(stack, directory)


@pytest.fixture
def stack(tmp_path: Path, broker: tuple[int, Path], database_url: str) -> Iterator[Stack]:
    s = make_stack(tmp_path, broker[0], database_url, plant_doc_on_ports(free_port(), free_port()))
    try:
        yield s
    finally:
        stop_and_show(s)


def db_count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql.encode()).fetchone()
    assert row is not None
    return int(row[0])


def produced(state_dir: Path) -> tuple[int, int, int]:
    """Readings the agent committed to its buffers, readings still held, readings dropped."""
    stats = [read_stats(buffer_path(state_dir, e, g)) for e, g in GATEWAYS]
    return (sum(s.put_readings for s in stats), sum(s.readings for s in stats),
            sum(s.dropped_readings for s in stats))  # fmt: skip


def next_seqs(state_dir: Path) -> dict[tuple[str, str], int]:
    return {(e, g): read_stats(buffer_path(state_dir, e, g)).next_seq for e, g in GATEWAYS}


def run_until_flowing(stack: Stack, recorder: Recorder, directory: Path, database_url: str) -> None:
    """Connect the recorder, start every process, wait for every tag in the database."""
    recorder.client.connect(recorder.address.host, recorder.address.port)
    recorder.client.loop_start()
    assert recorder.subscribed.wait(10)
    start_everything(stack, directory)
    eventually(lambda: db_count(database_url, "SELECT count(*) FROM readings_latest") == 49, 60,
               "all 49 tags in the database")  # fmt: skip


def settle_and_count(stack: Stack, recorder: Recorder, database_url: str, state_dir: Path) -> None:
    """Stop the agent cleanly, let everything arrive, then compare the three counts."""
    for enterprise, _ in GATEWAYS:
        agent = stack.procs[f"agent-{enterprise}"]
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=30) == 0
    total, held, dropped = produced(state_dir)
    assert (held, dropped) == (0, 0), "the agent stopped with batches unacknowledged or dropped"
    expected = next_seqs(state_dir)
    for (enterprise, gateway), next_seq in expected.items():
        numbered = set(range(1, next_seq))

        def delivered(e: str = enterprise, g: str = gateway, n: set[int] = numbered) -> bool:
            return recorder.seqs(e, g) >= n

        eventually(delivered, 60, f"every batch of {enterprise}/{gateway} on the wire")
        assert recorder.seqs(enterprise, gateway) == numbered  # nothing missing, nothing extra
    on_wire, distinct = recorder.readings()
    assert on_wire == total  # every reading the agent produced went out
    eventually(lambda: db_count(database_url, "SELECT count(*) FROM readings") == len(distinct), 60,
               "the database to hold every distinct reading")  # fmt: skip
    time.sleep(1)  # anything late would only add rows
    assert db_count(database_url, "SELECT count(*) FROM readings") == len(distinct)  # exactly once
    assert db_count(database_url, "SELECT count(*) FROM dead_letters") == 0
    assert db_count(database_url, "SELECT sum(seq_gaps) FROM gateways") == 0  # every gap closed by replay
    assert stack.alive("ingest")


def test_broker_down_for_a_minute_loses_nothing(stack: Stack, broker: tuple[int, Path], database_url: str,
                                                tmp_path: Path) -> None:  # fmt: skip
    state_dir = tmp_path / "var" / "agent"
    with running_broker(stack, broker) as running:
        recorder = Recorder(running.address("hw-ingest-2"))
        run_until_flowing(stack, recorder, running.directory, database_url)
    # the broker is gone: polling goes on, every batch waits in the agent's buffer
    outage_ends = time.monotonic() + OUTAGE_S
    eventually(lambda: produced(state_dir)[1] > 0, 30, "batches held in the buffer during the outage")
    time.sleep(max(outage_ends - time.monotonic(), 0))
    held_at_restart = produced(state_dir)[1]
    assert held_at_restart > 0
    try:
        with running_broker(stack, broker):
            eventually(lambda: produced(state_dir)[1] < held_at_restart / 2, 60, "the backlog replaying")
            settle_and_count(stack, recorder, database_url, state_dir)
            replayed = [b for b in recorder.batches.values() if b.replay]
            assert replayed, "the backlog went out flagged as replay"
    finally:
        recorder.client.disconnect()
        recorder.client.loop_stop()


def kill_9(stack: Stack) -> None:
    for enterprise, _ in GATEWAYS:
        agent = stack.procs[f"agent-{enterprise}"]
        os.kill(agent.pid, signal.SIGKILL)
        assert agent.wait(timeout=10) == -signal.SIGKILL


def test_kill_9_of_the_agent_loses_nothing(stack: Stack, broker: tuple[int, Path], database_url: str,
                                           tmp_path: Path) -> None:  # fmt: skip
    """Killed while holding a backlog, and killed again as the backlog starts to replay."""
    state_dir = tmp_path / "var" / "agent"
    with running_broker(stack, broker) as running:
        recorder = Recorder(running.address("hw-ingest-2"))
        run_until_flowing(stack, recorder, running.directory, database_url)
    eventually(lambda: produced(state_dir)[1] >= 10 * 49, 60, "a backlog in the buffer")
    kill_9(stack)  # mid-publish, with batches committed and none acknowledged
    start_agents(stack, broker[1])  # the same state directory: they find their buffers
    eventually(lambda: produced(state_dir)[1] >= 20 * 49, 60, "the restarted agent adding to the backlog")
    try:
        with running_broker(stack, broker):
            eventually(lambda: read_stats(buffer_path(state_dir, *GATEWAYS[0])).acked_batches > 0, 30,
                       "the replay under way")  # fmt: skip
            kill_9(stack)  # as the replay starts
            start_agents(stack, broker[1])
            eventually(lambda: produced(state_dir)[1] < 49 * 4, 60, "the restarted agent to drain the buffer")
            settle_and_count(stack, recorder, database_url, state_dir)
            assert any(b.replay for b in recorder.batches.values())
    finally:
        recorder.client.disconnect()
        recorder.client.loop_stop()
