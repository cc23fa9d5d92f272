"""The video publisher against real Mosquitto brokers: events at QoS 1 survive a broker that is not
there yet and a restart of the publisher meanwhile (the spool on disk), camera status is retained,
and the last will says every camera is offline."""

from __future__ import annotations

import queue
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hazardwatch import wire
from hazardwatch.settings import MqttAddress
from tests.support import free_port, private_mosquitto
from tests.test_e2e import eventually
from tests.video_support import clear_retained
from video.publisher import EventPublisher
from video.spool import EventSpool

ENTERPRISE, GATEWAY = "E330110001", "gw01"


def event(start: int) -> wire.EdgeEvent:
    box = [0.1, 0.6, 0.2, 0.3]
    return wire.EdgeEvent(GATEWAY, 0, 0, f"CAM101.INTRUSION.dike.{start}", "CAM101", "INTRUSION", "new",
                          start, start + 1000, "dike", 0.3, False, box, {}, b"\xff\xd8jpeg")  # fmt: skip


def subscriber(port: int, topic: str) -> tuple[mqtt.Client, queue.Queue[mqtt.MQTTMessage]]:
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-sub-{time.monotonic_ns()}")
    client.on_message = lambda _c, _u, message: received.put(message)
    client.connect("127.0.0.1", port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    return client, received


def receive_events(port: int, n: int) -> list[wire.EdgeEvent]:
    """The next ``n`` events a fresh subscriber gets on the gateway's events topic."""
    client, received = subscriber(port, wire.events_topic(ENTERPRISE, GATEWAY))
    try:
        return [wire.decode_event(bytes(received.get(timeout=20).payload)) for _ in range(n)]
    finally:
        client.disconnect()
        client.loop_stop()


def test_events_wait_for_a_broker_that_comes_later_and_keep_their_order(tmp_path: Path) -> None:
    port = free_port()
    publisher = EventPublisher(ENTERPRISE, GATEWAY, MqttAddress("127.0.0.1", port), tmp_path / "spool.sqlite")
    publisher.start()
    try:
        for start in (1000, 2000, 3000):
            publisher.publish_event(event(start))  # no broker yet: queued
        with private_mosquitto(port=port):
            got = receive_events(port, 3)
            assert [e.start_ms for e in got] == [1000, 2000, 3000]
            assert [e.seq for e in got] == sorted({e.seq for e in got})  # increasing, no repeats
            assert got[0].snapshot == b"\xff\xd8jpeg"
            eventually(lambda: publisher.spool.count() == 0, 10, "the acknowledged events to leave the spool")
    finally:
        publisher.stop()


def test_events_spooled_before_a_restart_go_out_first_once_the_broker_is_back(tmp_path: Path) -> None:
    port = free_port()
    address, spool = MqttAddress("127.0.0.1", port), tmp_path / "spool.sqlite"
    first = EventPublisher(ENTERPRISE, GATEWAY, address, spool)
    first.start()
    for start in (1000, 2000):
        first.publish_event(event(start))  # no broker: spooled
    first.stop()  # the video process goes (as in a crash, the client's own queue goes with it)
    left = EventSpool(spool)
    assert left.count() == 2
    left.close()

    second = EventPublisher(ENTERPRISE, GATEWAY, address, spool)
    second.start()
    try:
        second.publish_event(event(3000))
        with private_mosquitto(port=port):
            got = receive_events(port, 3)
            assert [e.start_ms for e in got] == [1000, 2000, 3000]  # the old ones first
            assert got[0].seq < got[1].seq < got[2].seq
            eventually(lambda: second.spool.count() == 0, 10, "the acknowledged events to leave the spool")
    finally:
        second.stop()


def test_a_full_spool_drops_its_oldest_events_and_counts_them(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path / "spool.sqlite", max_bytes=2500)
    for seq in range(1, 6):
        spool.put(seq, bytes(1000))
    assert [seq for seq, _ in spool.pending()] == [4, 5]
    assert spool.dropped() == 3
    spool.ack(4)
    assert [seq for seq, _ in spool.pending()] == [5]
    spool.close()
    again = EventSpool(tmp_path / "spool.sqlite", max_bytes=2500)  # the count survives a restart
    assert (again.count(), again.dropped(), again.newest()) == (1, 3, 5)
    again.close()


def test_camera_status_is_retained_and_the_last_will_takes_the_cameras_offline(
    mqtt_port: int, tmp_path: Path
) -> None:
    address = MqttAddress("127.0.0.1", mqtt_port)
    gateway = f"gw{time.monotonic_ns() % 10_000}"
    publisher = EventPublisher(ENTERPRISE, gateway, address, tmp_path / "spool.sqlite")
    publisher.start()
    try:
        assert publisher.connected.wait(10)
        publisher.set_camera("CAM101", {"status": "tampered", "reasons": ["covered"]})
        time.sleep(0.3)
        client, received = subscriber(mqtt_port, wire.cameras_topic(ENTERPRISE, gateway))  # joins later
        try:
            retained = received.get(timeout=10)
            assert retained.retain
            assert wire.decode_cameras(bytes(retained.payload)) == {"CAM101": "tampered"}
            publisher._client._sock.close()  # type: ignore[union-attr] # the link dies: the broker sends the will
            will = received.get(timeout=30)
            assert wire.decode_cameras(bytes(will.payload)) is None
        finally:
            client.disconnect()
            client.loop_stop()
    finally:
        publisher.stop()
        clear_retained(mqtt_port, wire.cameras_topic(ENTERPRISE, gateway))
