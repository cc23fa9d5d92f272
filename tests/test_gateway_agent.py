"""The gateway agent against real peers: the pymodbus and asyncua simulators and Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway_agent.agent import run_agent
from gateway_agent.sources.blocks import plan_blocks
from hazardwatch import wire
from hazardwatch.ledger import Plant
from hazardwatch.quality import Quality
from hazardwatch.settings import MqttAddress
from simulators import run as run_simulators
from tests.support import free_port, plant_on_ports


@dataclass
class Listener:
    """A paho subscriber that keeps every readings batch and status message it sees."""

    port: int
    batches: list[wire.ReadingBatch] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)  # each batch's topic
    status: dict[str, str] = field(default_factory=dict)
    ready: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"listener-{time.monotonic_ns()}")
        self.client.on_connect = lambda c, *_: c.subscribe(
            [("hw/v1/+/+/readings", 1), ("hw/v1/+/+/status", 1)]
        )
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._on_message

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.endswith("/status"):
            self.status[msg.topic] = json.loads(msg.payload)["status"]
        else:
            self.batches.append(wire.decode(bytes(msg.payload)))
            self.topics.append(msg.topic)

    def latest(self) -> dict[str, tuple[float | None, int]]:
        seen: dict[str, tuple[float | None, int]] = {}
        for batch in list(self.batches):
            for tag, value, quality in zip(batch.tags, batch.values, batch.quality, strict=True):
                seen[tag] = (value, quality)
        return seen


@pytest.fixture
def listener(mqtt_port: int) -> Iterator[Listener]:
    lst = Listener(mqtt_port)
    lst.client.connect("127.0.0.1", mqtt_port)
    lst.client.loop_start()
    assert lst.ready.wait(10)
    yield lst
    lst.client.disconnect()
    lst.client.loop_stop()


@contextlib.asynccontextmanager
async def simulators(plant: Plant) -> AsyncIterator[None]:
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_simulators(plant, ("127.0.0.1", free_port()), stop=stop, ready=ready))
    await asyncio.wait_for(ready.wait(), 30)
    try:
        yield
    finally:
        stop.set()
        await task


async def until(probe: object, timeout: float, what: str) -> None:
    assert callable(probe)
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_agent_publishes_every_tag_of_both_protocols(listener: Listener, mqtt_port: int,
                                                           tmp_path: Path) -> None:  # fmt: skip
    plant = plant_on_ports(free_port(), free_port())
    async with simulators(plant):
        stop = asyncio.Event()
        agent = asyncio.create_task(
            run_agent(plant, MqttAddress("127.0.0.1", mqtt_port), state_dir=tmp_path, stop=stop)
        )
        await until(lambda: len(listener.latest()) == 49, 30, "all 49 tags")
        stop.set()
        await agent
    latest = listener.latest()
    assert all(quality == Quality.GOOD for _, quality in latest.values())
    value, _ = latest["LT101"]
    assert value is not None
    assert 15 < value < 85  # between L and H in normal operation
    per_gateway: dict[str, list[int]] = {}  # by topic: both enterprises' gateways are called gw01
    for topic, batch in zip(listener.topics, listener.batches, strict=True):
        per_gateway.setdefault(topic, []).append(batch.seq)
    assert len(per_gateway) == 2
    for seqs in per_gateway.values():
        assert seqs == sorted(seqs)
    await until(lambda: set(listener.status.values()) == {"offline"}, 10, "offline status after stop")
    assert len(listener.status) == 2


def test_blocks_follow_the_register_map(sample_plant: Plant) -> None:
    enterprise = sample_plant.enterprise("E330110001")
    blocks = plan_blocks(enterprise.tags_of_device("plc-lpg"))
    assert [(b.table.value, b.start, b.count, len(b.tags)) for b in blocks] == [
        ("holding", 0, 22, 11),  # 9 float32 + 3 int16 … packed into registers 0–21
        ("input", 0, 7, 7),
    ]
