"""The publisher: sequence numbers across restarts, a bounded backlog, nothing lost over a broker restart."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway_agent.publisher import Publisher
from gateway_agent.sequence import SequenceFile
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


def test_sequence_file_survives_restarts_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "state" / "E1-gw1.seq"
    first = SequenceFile(path)
    assert [first.take(), first.take(), first.take()] == [1, 2, 3]
    assert SequenceFile(path).take() == 4
    assert not list(path.parent.glob("*.tmp"))  # replaced atomically, nothing left behind
    path.write_text("garbage", encoding="ascii")
    assert SequenceFile(path).next == 1


def test_backlog_is_bounded_dropping_the_oldest(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gateway_agent")
    nobody = MqttAddress("127.0.0.1", free_port())  # no broker: everything waits in the backlog
    publisher = Publisher("E1", "gw1", nobody, tmp_path, max_backlog=3)
    publisher.start()
    try:
        seqs = [publisher.submit(batch()) for _ in range(6)]
        assert seqs == [1, 2, 3, 4, 5, 6]
        assert (publisher.dropped, publisher.pending) == (3, 3)
    finally:
        publisher.stop(timeout_s=0.5)
    dropped = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 1  # one warning per overflow, the counter has the rest
    assert Publisher("E1", "gw1", nobody, tmp_path).next_seq == 7


class Subscriber:
    """A QoS 1 subscriber with a persistent session: the broker keeps its messages while it is away."""

    def __init__(self, port: int, topic: str) -> None:
        self.seqs: list[int] = []
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex}",
                                   clean_session=False)  # fmt: skip
        self.sessions_present: list[bool] = []

        def on_connect(client: mqtt.Client, _u: object, flags: mqtt.ConnectFlags, *_: object) -> None:
            self.sessions_present.append(flags.session_present)
            client.subscribe(topic, qos=1)

        self._client.on_connect = on_connect
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = lambda _c, _u, msg: self.seqs.append(wire.decode(bytes(msg.payload)).seq)
        self._client.reconnect_delay_set(1, 2)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        assert self._subscribed.wait(10)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def test_nothing_is_lost_over_a_broker_restart(tmp_path: Path) -> None:
    port = free_port()
    address = MqttAddress("127.0.0.1", port)
    enterprise = f"T{uuid.uuid4().hex[:10]}"
    publisher = Publisher(enterprise, "gw1", address, tmp_path / "agent")
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
            publisher.submit(batch())  # held in memory while the broker is away
        assert publisher.pending == 5
        with private_mosquitto(store, port):
            until(lambda: publisher.pending == 0, "the backlog acknowledged after the restart", timeout=40)
            until(lambda: sorted(set(subscriber.seqs)) == list(range(1, 11)), "all ten batches", timeout=40)
        assert subscriber.sessions_present[-1], "the restarted broker forgot the subscriber's session"
    finally:
        publisher.stop(timeout_s=0.5)
        subscriber.close()
