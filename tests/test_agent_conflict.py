"""Two agents running as one gateway: the younger stands down, saying who the other is.

With client ids bound to the gateway's identity, each connection takes the broker session from
the other, and both would reconnect for ever. Real publishers on a real Mosquitto.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway_agent.buffer import Buffer
from gateway_agent.publisher import Publisher
from gateway_agent.status import GatewayStatus, _problems
from hazardwatch import wire
from hazardwatch.settings import MqttAddress
from tests.support import private_mosquitto


def until(probe: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def agent(tmp_path: Path, name: str, enterprise: str, port: int) -> Publisher:
    buffer = Buffer(tmp_path / name / f"{enterprise}-gw1.buffer.sqlite3")
    return Publisher(enterprise, "gw1", MqttAddress("127.0.0.1", port), buffer)


@pytest.fixture
def mqtt_port() -> Iterator[int]:
    """A broker of the test's own: the retained statuses these tests leave stay with it."""
    with private_mosquitto() as port:
        yield port


def test_a_second_agent_for_a_gateway_stands_down_and_the_first_stays(
    tmp_path: Path, mqtt_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    enterprise = f"T{uuid.uuid4().hex[:10]}"
    first = agent(tmp_path, "first", enterprise, mqtt_port)
    first.start()
    second = None
    try:
        until(first.connected.is_set, "the first agent connected")
        time.sleep(0.2)  # its online status is out
        second = agent(tmp_path, "second", enterprise, mqtt_port)
        with caplog.at_level(logging.WARNING, logger="gateway_agent.publisher"):
            second.start()
            until(
                lambda: second is not None and second.conflict is not None, "the second agent to stand down"
            )
            until(first.connected.is_set, "the first agent back on the broker")
            time.sleep(3)  # nobody takes the session any more
        assert first.connected.is_set()
        assert first.conflict is None
        assert not second.connected.is_set()
        assert second.conflict is not None
        assert second.conflict["id"] == first.instance["id"]
        assert second.conflict["addr"] == "127.0.0.1"
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1
        assert "another agent runs as this gateway (host" in errors[0]
        assert "address 127.0.0.1" in errors[0]
        health = {"heartbeat_s": 10, "mqtt": {"connected": False}, "devices": [],
                  "buffer": {"dropped_batches": 0}, "conflict": second.conflict}  # fmt: skip
        problems = _problems(GatewayStatus(enterprise, "gw1", health, 0.0))
        assert any(p.startswith("stood down: another agent runs as this gateway") for p in problems)
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_an_agent_restarted_after_a_crash_runs_on(tmp_path: Path, mqtt_port: int) -> None:
    """A crashed agent's online status stays until the broker's keep-alive gives up on it: the
    agent started again meanwhile finds it, and is not fooled into standing down."""
    enterprise = f"T{uuid.uuid4().hex[:10]}"
    ghost = {"id": "deadbeef0000", "host": "edge-pc", "pid": 4242, "since": 1_000, "addr": "10.0.0.9"}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ghost-{uuid.uuid4().hex}")
    client.connect("127.0.0.1", mqtt_port)
    client.loop_start()
    info = client.publish(wire.status_topic(enterprise, "gw1"),
                          wire.status_payload(True, {"agent": ghost}), qos=1, retain=True)  # fmt: skip
    info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()
    restarted = agent(tmp_path, "restarted", enterprise, mqtt_port)
    restarted.start()
    try:
        until(restarted.connected.is_set, "the restarted agent connected")
        time.sleep(2)
        assert restarted.connected.is_set()
        assert restarted.conflict is None
    finally:
        restarted.stop()
