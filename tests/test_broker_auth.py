"""Broker identities enforced by a real Mosquitto run on what `hazardwatch broker config` wrote."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.reasoncodes import ReasonCode

from gateway_agent.buffer import Buffer
from gateway_agent.publisher import Publisher
from hazardwatch import wire
from hazardwatch.mqttconn import make_client
from hazardwatch.quality import Quality
from hazardwatch.settings import MqttAddress
from tests.support import AuthBroker, authenticated_mosquitto

AGENT_1 = "hw-agent-E330110001-gw01"
AGENT_2 = "hw-agent-E330281002-gw01"


def until(probe: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[AuthBroker]:
    with authenticated_mosquitto(tmp_path / "broker") as running:
        yield running


def connack(address: MqttAddress, client_id: str = "") -> ReasonCode:
    """Connect, return the broker's answer, disconnect."""
    client = make_client(address, client_id or f"probe-{uuid.uuid4().hex}")
    answered = threading.Event()
    reasons: list[ReasonCode] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: ReasonCode, _p: object) -> None:
        reasons.append(reason)
        answered.set()

    client.on_connect = on_connect
    client.connect(address.host, address.port, keepalive=10)
    client.loop_start()
    try:
        assert answered.wait(10), "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return reasons[0]


class Listener:
    """A platform subscriber (the second ingest worker's identity) recording every message."""

    def __init__(self, address: MqttAddress, topics: list[str]) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.subscribed = threading.Event()
        self.client = make_client(address, "hw-ingest-2")
        self.client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, bytes(m.payload)))
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def topics(self) -> list[str]:
        return [topic for topic, _ in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish_all(address: MqttAddress, messages: list[tuple[str, bytes]]) -> None:
    client = make_client(address, address.username or "")
    client.connect(address.host, address.port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_anonymous_and_wrong_secrets_are_refused(broker: AuthBroker) -> None:
    anonymous = MqttAddress("127.0.0.1", broker.port)
    assert connack(anonymous).is_failure
    wrong = MqttAddress("127.0.0.1", broker.port, username=AGENT_1, password="not-its-secret")
    assert connack(wrong).is_failure
    assert not connack(broker.address(AGENT_1)).is_failure


def test_a_gateway_publishes_only_under_its_own_topics(broker: AuthBroker) -> None:
    listener = Listener(broker.address("hw-ingest-2"), ["hw/v1/#"])
    try:
        own = wire.readings_topic("E330110001", "gw01")
        publish_all(broker.address(AGENT_1), [
            (wire.readings_topic("E330281002", "gw01"), b"forged: another enterprise"),
            (wire.readings_topic("E330110001", "gw02"), b"forged: another gateway"),
            (wire.config_topic("E330110001", "gw01"), b"forged: its own downlink"),
            (wire.CLOCK_TOPIC, b"forged: the platform clock"),
            (wire.events_topic("E330110001", "gw01"), b"forged: the video process's events"),
            (own, b"marker"),
        ])  # fmt: skip
        until(lambda: own in listener.topics(), "the gateway's own batch")
        assert listener.messages == [(own, b"marker")]  # in order from one client: nothing forged came first
    finally:
        listener.close()


def test_another_identity_cannot_take_over_the_agents_session(broker: AuthBroker, tmp_path: Path) -> None:
    listener = Listener(broker.address("hw-ingest-2"), [wire.readings_topic("E330110001", "gw01")])
    buffer = Buffer(tmp_path / "agent.buffer.sqlite3")
    publisher = Publisher("E330110001", "gw01", broker.address(AGENT_1), buffer)
    publisher.start()
    try:
        assert publisher.connected.wait(10)
        # the other enterprise's gateway connects with this agent's client id
        assert not connack(broker.address(AGENT_2), client_id=AGENT_1).is_failure
        # and so does a client without credentials
        assert connack(MqttAddress("127.0.0.1", broker.port), client_id=AGENT_1).is_failure
        reading = wire.ReadingBatch(gateway="gw01", seq=0, sent_ms=int(time.time() * 1000))
        reading.append("GT101", int(time.time() * 1000), 5.0, Quality.GOOD)
        publisher.submit(reading)
        until(lambda: len(listener.messages) == 1, "the agent's batch")
        assert publisher.connects == 1  # never thrown off
        assert publisher.connected.is_set()
    finally:
        publisher.stop()
        buffer.close()
        listener.close()


def test_a_revoked_secret_is_refused_after_the_reload(broker: AuthBroker, tmp_path: Path) -> None:
    from hazardwatch.cli import main

    before = broker.address(AGENT_2)
    assert not connack(before).is_failure
    assert main(["credentials", "revoke", "--enterprise", "E330281002", "--gateway", "gw01",
                 "--broker-dir", str(broker.directory)]) == 0  # fmt: skip
    assert not broker.env_file(AGENT_2).exists()
    # the broker reloads on SIGHUP; a connection made before it may still pass
    until(lambda: connack(before).is_failure, "the broker to refuse the revoked secret")
    assert not connack(broker.address(AGENT_1)).is_failure  # the others are untouched
    # issued again: a new secret, and the broker takes it
    out = tmp_path / "gw01.env"
    assert main(["credentials", "issue", "--enterprise", "E330281002", "--gateway", "gw01",
                 "--broker-dir", str(broker.directory), "--out", str(out)]) == 0  # fmt: skip
    assert out.stat().st_mode & 0o777 == 0o600
    from hazardwatch import envfile
    from hazardwatch.settings import parse_mqtt_url

    values = envfile.read(out)
    renewed = parse_mqtt_url(values["HW_MQTT_URL"], values)
    assert renewed.password != before.password
    until(lambda: not connack(renewed).is_failure, "the broker to take the new secret")


def test_a_packet_over_the_size_limit_is_refused(broker: AuthBroker) -> None:
    listener = Listener(broker.address("hw-ingest-2"), ["hw/v1/#"])
    try:
        own = wire.events_topic("E330110001", "gw01")
        big = b"x" * (wire.MAX_EVENT_BYTES + 128 * 1024)
        address = broker.address("hw-video-E330110001-gw01")
        client = make_client(address, "hw-video-E330110001-gw01")
        dropped = threading.Event()
        client.on_disconnect = lambda *_: dropped.set()
        client.connect(address.host, address.port)
        client.loop_start()
        try:
            client.publish(own, big, qos=1)
            assert dropped.wait(10), "the broker kept a client that sent a packet over its limit"
        finally:
            client.disconnect()
            client.loop_stop()
        publish_all(address, [(own, b"x" * wire.MAX_EVENT_BYTES)])  # the largest legitimate event passes
        until(lambda: len(listener.messages) == 1, "the largest event")
        assert len(listener.messages[0][1]) == wire.MAX_EVENT_BYTES
    finally:
        listener.close()
