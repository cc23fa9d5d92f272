"""The publisher: live first, the backlog replayed in order, nothing lost over broker or agent restarts."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway_agent.buffer import Buffer
from gateway_agent.publisher import Publisher
from hazardwatch import wire
from hazardwatch.quality import Quality
from hazardwatch.settings import MqttAddress
from tests.support import free_port, private_mosquitto


def batch(tag: str = "LT1") -> wire.ReadingBatch:
    b = wire.ReadingBatch(gateway="gw1", seq=0, sent_ms=int(time.time() * 1000))
    b.append(tag, int(time.time() * 1000), 1.0, Quality.GOOD)
    return b


def until(probe: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Subscriber:
    """A QoS 1 subscriber with a persistent session: the broker keeps its messages while it is away."""

    def __init__(self, port: int, topic: str) -> None:
        self.received: list[tuple[int, bool]] = []  # (seq, replay) in arrival order
        self.sessions_present: list[bool] = []
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex}",
                                   clean_session=False)  # fmt: skip

        def on_connect(client: mqtt.Client, _u: object, flags: mqtt.ConnectFlags, *_: object) -> None:
            self.sessions_present.append(flags.session_present)
            client.subscribe(topic, qos=1)

        def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            decoded = wire.decode(bytes(msg.payload))
            self.received.append((decoded.seq, decoded.replay))

        self._client.on_connect = on_connect
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = on_message
        self._client.reconnect_delay_set(1, 2)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        assert self._subscribed.wait(10)

    @property
    def seqs(self) -> list[int]:
        return [seq for seq, _ in self.received]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def make_publisher(tmp_path: Path, enterprise: str, port: int) -> Publisher:
    buffer = Buffer(tmp_path / "agent" / f"{enterprise}-gw1.buffer.sqlite3")
    return Publisher(enterprise, "gw1", MqttAddress("127.0.0.1", port), buffer)


def test_nothing_is_lost_over_a_broker_restart(tmp_path: Path) -> None:
    port = free_port()
    enterprise = f"T{uuid.uuid4().hex[:10]}"
    publisher = make_publisher(tmp_path, enterprise, port)
    store = tmp_path / "broker"
    with private_mosquitto(store, port):
        subscriber = Subscriber(port, wire.readings_topic(enterprise, "gw1"))
        publisher.start()
        try:
            until(publisher.connected.is_set, "the publisher's connection")
            for _ in range(5):
                publisher.submit(batch())
            until(lambda: len(subscriber.seqs) == 5, "five batches")
        except BaseException:
            publisher.stop(timeout_s=0.5)
            subscriber.close()
            raise
    try:
        until(lambda: not publisher.connected.is_set(), "the publisher noticing the broker is gone")
        for _ in range(5):
            publisher.submit(batch())  # committed to the buffer while the broker is away
        assert publisher.pending == 5
        with private_mosquitto(store, port):
            until(lambda: publisher.pending == 0, "the backlog acknowledged after the restart", timeout=40)
            until(lambda: sorted(set(subscriber.seqs)) == list(range(1, 11)), "all ten batches", timeout=40)
            publisher.submit(batch())
            until(lambda: 11 in subscriber.seqs, "a live batch after the restart")
        assert subscriber.sessions_present[-1], "the restarted broker forgot the subscriber's session"
        replayed = {seq for seq, replay in subscriber.received if replay}
        assert replayed == {6, 7, 8, 9, 10}  # sent from the backlog, flagged; live ones are not
        assert publisher.buffer.stats().depth == 0
    finally:
        publisher.stop(timeout_s=0.5)
        subscriber.close()


@pytest.fixture
def mqtt_port() -> Iterator[int]:
    """A broker of this test's own: retained status messages must not reach other tests' ingest."""
    with private_mosquitto() as port:
        yield port


def test_a_restarted_agent_sends_what_the_broker_never_acknowledged(tmp_path: Path, mqtt_port: int) -> None:
    enterprise = f"T{uuid.uuid4().hex[:10]}"
    nobody = free_port()  # first run: no broker reachable, everything stays in the buffer
    first = make_publisher(tmp_path, enterprise, nobody)
    first.start()
    assert [first.submit(batch()) for _ in range(4)] == [1, 2, 3, 4]
    first.stop(timeout_s=0.2)
    first.buffer.close()

    subscriber = Subscriber(mqtt_port, wire.readings_topic(enterprise, "gw1"))
    second = make_publisher(tmp_path, enterprise, mqtt_port)
    second.start()
    try:
        until(lambda: len(set(subscriber.seqs)) == 4, "the four batches of the first run")
        assert second.submit(batch()) == 5  # numbering continues where the first run stopped
        until(lambda: 5 in subscriber.seqs, "the second run's own batch")
        assert all(replay for seq, replay in subscriber.received if seq <= 4)
        assert not any(replay for seq, replay in subscriber.received if seq == 5)
        until(lambda: second.pending == 0, "every batch acknowledged")
    finally:
        second.stop(timeout_s=0.5)
        subscriber.close()


def test_live_data_goes_first_while_the_backlog_replays_in_order(tmp_path: Path, mqtt_port: int) -> None:
    enterprise = f"T{uuid.uuid4().hex[:10]}"
    buffer = Buffer(tmp_path / "agent" / f"{enterprise}-gw1.buffer.sqlite3")
    for _ in range(300):  # an outage's worth of batches, left by an earlier run
        buffer.put(batch(), int(time.time() * 1000))
    subscriber = Subscriber(mqtt_port, wire.readings_topic(enterprise, "gw1"))
    publisher = Publisher(enterprise, "gw1", MqttAddress("127.0.0.1", mqtt_port), buffer, window=4)
    publisher.start()
    try:
        until(lambda: len(subscriber.seqs) >= 10, "the replay under way")
        live = publisher.submit(batch())
        until(lambda: len(set(subscriber.seqs)) == 301, "the backlog and the live batch", timeout=60)
    finally:
        publisher.stop(timeout_s=0.5)
        subscriber.close()
    arrival = subscriber.seqs
    backlog_order = [seq for seq, replay in subscriber.received if replay]
    assert backlog_order == sorted(backlog_order)  # replayed in order
    assert set(backlog_order) == set(range(1, 301))
    assert arrival.index(live) < arrival.index(300)  # the live batch did not wait for the backlog
    assert not dict(subscriber.received)[live]  # and it is not flagged as a replay


def test_an_unreachable_broker_holds_everything(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway_agent")
    publisher = make_publisher(tmp_path, "E1", free_port())
    publisher.start()
    try:
        assert [publisher.submit(batch()) for _ in range(6)] == [1, 2, 3, 4, 5, 6]
        assert publisher.pending == 6
        assert publisher.published == 0  # nothing handed to a client that is not connected
    finally:
        publisher.stop(timeout_s=0.2)
    assert any("6 batches stay buffered" in r.getMessage() for r in caplog.records)


def test_a_hostile_clock_tick_stops_nothing(tmp_path: Path, mqtt_port: int) -> None:
    """Anyone on the broker can publish the clock: no payload may stop the gateway publishing."""
    enterprise = f"T{uuid.uuid4().hex[:10]}"
    subscriber = Subscriber(mqtt_port, wire.readings_topic(enterprise, "gw1"))
    publisher = make_publisher(tmp_path, enterprise, mqtt_port)
    publisher.start()
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"clock-{uuid.uuid4().hex}")
    sender.connect("127.0.0.1", mqtt_port)
    sender.loop_start()
    try:
        until(publisher.connected.is_set, "the publisher's connection")
        hostile = [b'{"t": 1e999}', b'{"t": NaN}', b'{"t": "soon"}', b'{"t": true}', b"[" * 100_000,
                   b"\xff\xfe", b'{"u": 1}', b"[1, 2]"]  # fmt: skip
        for payload in hostile:
            sender.publish(wire.CLOCK_TOPIC, payload, qos=1).wait_for_publish(5)
        publisher.submit(batch())
        until(lambda: subscriber.seqs == [1], "a batch published after the hostile ticks")
        assert publisher.clock_offset_ms is None  # none of them was taken for a time
        ahead_ms = 3_600_000
        sender.publish(wire.CLOCK_TOPIC, f'{{"t": {time.time_ns() // 1_000_000 + ahead_ms}}}', qos=1)
        until(lambda: publisher.clock_offset_ms is not None, "a good tick read after the hostile ones")
        assert abs((publisher.clock_offset_ms or 0) - ahead_ms) < 60_000
        publisher.submit(batch())
        until(lambda: subscriber.seqs == [1, 2], "publishing goes on")
    finally:
        sender.disconnect()
        sender.loop_stop()
        publisher.stop(timeout_s=0.5)
        subscriber.close()
