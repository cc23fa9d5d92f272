"""A gateway cannot fill the broker's memory through an absent ingest worker's session: the queue
of a session is bounded in bytes, not only in messages (360,000 messages of 4 MiB is 1.4 TB)."""

from __future__ import annotations

import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hazardwatch import broker as broker_module
from tests.support import AuthBroker, authenticated_mosquitto

AGENT = "hw-agent-E330110001-gw01"
INGEST = "hw-ingest-1"
TOPIC = "hw/v1/E330110001/gw01/readings"


def _client(broker: AuthBroker, identity: str, clean: bool) -> mqtt.Client:
    address = broker.address(identity)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=identity, clean_session=clean)
    client.username_pw_set(address.username, address.password)
    return client


def test_an_absent_workers_queue_is_bounded_in_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert broker_module.MAX_QUEUED_BYTES <= 2 * 1024**3  # the configured bound (here made small)
    monkeypatch.setattr(broker_module, "MAX_QUEUED_BYTES", 3 * 1024 * 1024)
    with authenticated_mosquitto(tmp_path / "broker") as broker:
        worker = _client(broker, INGEST, clean=False)  # a persistent session, then away
        worker.connect("127.0.0.1", broker.port)
        worker.loop_start()
        worker.subscribe("hw/v1/+/+/#", qos=1)
        time.sleep(0.5)
        worker.disconnect()
        worker.loop_stop()
        agent = _client(broker, AGENT, clean=True)
        agent.connect("127.0.0.1", broker.port)
        agent.loop_start()
        for _ in range(12):  # 12 MiB for a session allowed 3
            agent.publish(TOPIC, b"x" * 1024 * 1024, qos=1).wait_for_publish(10)
        agent.disconnect()
        agent.loop_stop()
        got: list[int] = []
        back = _client(broker, INGEST, clean=False)
        back.on_message = lambda _c, _u, m: got.append(len(m.payload))
        back.connect("127.0.0.1", broker.port)
        back.loop_start()
        time.sleep(2)
        back.disconnect()
        back.loop_stop()
    assert 0 < len(got) <= 4
