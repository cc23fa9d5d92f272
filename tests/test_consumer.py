"""The ingest consumer over a real Mosquitto and PostgreSQL: acknowledged after commit."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hazardwatch import wire
from hazardwatch.ledger import Plant
from hazardwatch.quality import Quality
from hazardwatch.settings import MqttAddress
from ingest.consumer import Consumer, subscriptions
from ingest.ledger_sync import sync_ledger
from ingest.migrate import migrate
from ingest.pipeline import Pipeline


@pytest.fixture
def consumer(database_url: str, sample_plant: Plant, mqtt_port: int) -> Iterator[Consumer]:
    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        sync_ledger(conn, sample_plant)
    c = Consumer(
        Pipeline(database_url),
        MqttAddress("127.0.0.1", mqtt_port),
        client_id=f"test-ingest-{time.monotonic_ns()}",
        topics=subscriptions(["E330110001"]),
    )
    stop = threading.Event()
    worker = threading.Thread(target=c.run, args=(stop,))
    worker.start()
    assert c.connected.wait(10)
    time.sleep(0.2)  # let the SUBACK arrive before the test publishes
    yield c
    stop.set()
    worker.join(10)


def _publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-pub-{time.monotonic_ns()}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def _count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}".encode()).fetchone()
        return int(str(row[0])) if row else 0


def _wait(probe: object, timeout: float = 20) -> None:
    assert callable(probe)
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_batches_and_garbage_flow_through(consumer: Consumer, database_url: str, mqtt_port: int) -> None:
    now = int(time.time() * 1000)
    topic = wire.readings_topic("E330110001", "gw01")
    messages = []
    for seq in range(1, 6):
        batch = wire.ReadingBatch(gateway="gw01", seq=seq, sent_ms=now)
        batch.append("LT101", now + seq, 40.0 + seq, Quality.GOOD)
        batch.append("PT101", now + seq, 1.0, Quality.GOOD)
        messages.append((topic, wire.encode(batch)))
        messages.append((topic, b"\x00garbage" * seq))
    messages.append((wire.readings_topic("E330281002", "gw01"), b"not mine"))  # another worker's enterprise
    _publish(mqtt_port, messages)
    _wait(lambda: _count(database_url, "readings") == 10 and _count(database_url, "dead_letters") == 5)
    assert consumer.processed >= 10
    time.sleep(0.5)
    assert _count(database_url, "dead_letters") == 5  # the other enterprise's topic is not subscribed
