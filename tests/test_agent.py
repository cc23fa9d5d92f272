"""The gateway agent against real peers: a pymodbus server, an asyncua server and Mosquitto.

Each test builds a small plant of its own (a unique enterprise code, so the session's broker
and its retained messages are shared safely) and waits with deadlines, never on timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from asyncua import ua
from asyncua.server.server import Server
from asyncua.ua.status_codes import StatusCodes
from paho.mqtt.enums import CallbackAPIVersion

from gateway_agent.agent import run_agent
from gateway_agent.sources.modbus import ModbusSource, TcpEndpoint
from hazardwatch import wire
from hazardwatch.ledger import Plant, load_plant_text
from hazardwatch.ledger.models import ModbusDevice
from hazardwatch.quality import Quality
from hazardwatch.settings import MqttAddress
from tests.modbus_support import Plc, new_enterprise, plant_text, running, until, words
from tests.support import free_port

# -- a paho subscriber and the agent under test ---------------------------------------------


class Listener:
    """Subscribes to hw/v1/+/+/readings and status; keeps what belongs to one enterprise."""

    def __init__(self, port: int, enterprise: str) -> None:
        self.enterprise = enterprise
        self.batches: list[wire.ReadingBatch] = []
        self.status: dict[str, str] = {}
        self._ready = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"listener-{uuid.uuid4().hex}")
        self._client.on_connect = lambda c, *_: c.subscribe(
            [(wire.READINGS_SUBSCRIPTION, 1), ("hw/v1/+/+/status", 1)]
        )
        self._client.on_subscribe = lambda *_: self._ready.set()
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        assert self._ready.wait(10)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        address = wire.parse_topic(msg.topic)
        if address.enterprise != self.enterprise:
            return
        if address.kind == "status":
            self.status[address.gateway] = json.loads(msg.payload)["status"]
        else:
            self.batches.append(wire.decode(bytes(msg.payload)))

    def latest(self) -> dict[str, tuple[float | None, int, int]]:
        """tag → (value, quality, ts) of the last reading seen."""
        seen: dict[str, tuple[float | None, int, int]] = {}
        for batch in list(self.batches):
            for tag, ts, value, quality in zip(batch.tags, batch.ts_ms, batch.values, batch.quality,
                                               strict=True):  # fmt: skip
                seen[tag] = (value, quality, ts)
        return seen

    def seqs(self) -> list[int]:
        return [b.seq for b in list(self.batches)]


@pytest.fixture
def enterprise(mqtt_port: int) -> Iterator[str]:
    """A fresh enterprise code; its retained status is cleared afterwards (the broker is shared)."""
    code = new_enterprise()
    yield code
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"cleaner-{uuid.uuid4().hex}")
    client.connect("127.0.0.1", mqtt_port)
    client.loop_start()
    try:
        client.publish(wire.status_topic(code, "gw1"), b"", qos=1, retain=True).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def listener(mqtt_port: int, enterprise: str) -> Iterator[Listener]:
    lst = Listener(mqtt_port, enterprise)
    yield lst
    lst.close()


@contextlib.asynccontextmanager
async def agent(plant: Plant, mqtt_port: int, state_dir: Path) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_agent(
            plant, MqttAddress("127.0.0.1", mqtt_port), state_dir=state_dir, publish_interval_s=0.1, stop=stop
        )
    )
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


# -- Modbus -------------------------------------------------------------------------------------

MODBUS_TAGS = [
    "A1 modbus: {device: plc-a, address: 0}",
    "A2 modbus: {device: plc-a, address: 2, word_order: little}",
    "A3 modbus: {device: plc-a, address: 4, datatype: int16, scale: 0.1, offset: -40}",
    "A4 modbus: {device: plc-a, address: 5, datatype: uint32, byte_order: little}",
    "A5 modbus: {device: plc-a, address: 8, datatype: float64, byte_order: little, word_order: little}",
    "A6 modbus: {device: plc-a, address: 12}",
    "A7 modbus: {device: plc-a, table: input, address: 0, datatype: int64}",
    "A8 modbus: {device: plc-a, table: coil, address: 3, datatype: bool}",
    "B1 modbus: {device: plc-b, address: 0, datatype: int16}",
    "X1 modbus: {device: plc-x, address: 0, datatype: uint16}",
]


def modbus_plant(enterprise: str, port: int) -> Plant:
    devices = [
        f"{{protocol: modbus_tcp, id: plc-{name}, host: 127.0.0.1, port: {port}, unit_id: {unit}, "
        "poll_interval_s: 0.1, timeout_s: 1}"
        for name, unit in (("a", 1), ("b", 2), ("x", 9))  # unit 9 is not served
    ]
    return load_plant_text(plant_text(enterprise, devices, MODBUS_TAGS))


def fill(plc: Plc) -> None:
    plc.put(1, "holding", 0, words("f", 42.5))
    plc.put(1, "holding", 2, words("f", -3.25, word_order="little"))
    plc.put(1, "holding", 4, words("h", 655))
    plc.put(1, "holding", 5, words("I", 4_000_000_000, byte_order="little"))
    plc.put(1, "holding", 8, words("d", 1234.5678, "little", "little"))
    plc.put(1, "holding", 12, words("f", math.nan))
    plc.put(1, "input", 0, words("q", -9_000_000_000_000))
    plc.bits[1]["coil"][3] = True
    plc.put(2, "holding", 0, words("h", -7))


EXPECTED = {
    "A1": 42.5, "A2": -3.25, "A3": 25.5, "A4": 4_000_000_000, "A5": 1234.5678,
    "A7": -9_000_000_000_000, "A8": 1.0, "B1": -7,
}  # fmt: skip


async def test_modbus_values_quality_seq_and_status(listener: Listener, mqtt_port: int, enterprise: str,
                                                    tmp_path: Path) -> None:  # fmt: skip
    port = free_port()
    plant = modbus_plant(enterprise, port)
    plc = Plc(port, [1, 2])
    fill(plc)
    async with running(plc):
        async with agent(plant, mqtt_port, tmp_path):
            await until(lambda: len(listener.latest()) == 10 and len(listener.batches) >= 5, "every tag")
            await until(lambda: listener.status.get("gw1") == "online", "retained online status")
        await until(lambda: listener.status.get("gw1") == "offline", "offline status after stop")
        latest = listener.latest()
        for tag, expected in EXPECTED.items():
            value, quality, _ = latest[tag]
            assert quality == Quality.GOOD, tag
            assert value == pytest.approx(expected), tag
        assert latest["A6"][:2] == (None, Quality.BAD)  # NaN in the registers: no value
        assert latest["X1"][:2] == (None, Quality.BAD_COMM)  # exception response: never silent
        assert all(b.gateway == "gw1" and not b.replay for b in listener.batches)
        seqs = listener.seqs()
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # +1 per batch, none lost
        polls: dict[int, list[str]] = {}  # one poll, one timestamp: every tag of plc-a shares it
        for batch in listener.batches:
            for tag, ts in zip(batch.tags, batch.ts_ms, strict=True):
                if tag.startswith("A"):
                    polls.setdefault(ts, []).append(tag)
        assert all(sorted(tags) == [f"A{i}" for i in range(1, 9)] for tags in polls.values())

        before = len(listener.batches)
        async with agent(plant, mqtt_port, tmp_path):  # a restart continues the sequence
            await until(lambda: len(listener.batches) > before, "a batch after the restart")
        assert listener.seqs()[before] > seqs[-1]

    late = Listener(mqtt_port, enterprise)  # the status is retained for whoever comes later
    try:
        await until(lambda: late.status.get("gw1") == "offline", "retained offline status")
    finally:
        late.close()


async def test_each_poll_reads_blocks_not_points() -> None:
    port = free_port()
    plant = modbus_plant(new_enterprise(), port)
    enterprise = plant.enterprises[0]
    device = next(d for d in enterprise.gateway("gw1").devices if d.id == "plc-a")
    assert isinstance(device, ModbusDevice)
    tags = enterprise.tags_of_device("plc-a")
    source = ModbusSource(device, tags, TcpEndpoint(device.host, device.port))
    readings: list[tuple[str, float | None, Quality]] = []
    plc = Plc(port, [1, 2])
    fill(plc)
    async with running(plc):
        await source.poll(lambda tag, _ts, value, quality: readings.append((tag, value, quality)))
        plc.reads.clear()
        readings.clear()
        await source.poll(lambda tag, _ts, value, quality: readings.append((tag, value, quality)))
        source.close()
    # 6 holding points in registers 0–13, 1 input point, 1 coil: three requests, not eight
    registers = [(table, address, count) for _, table, address, count in plc.reads if table != "coil"]
    assert registers == [("holding", 0, 14), ("input", 0, 4)]
    assert [table for _, table, _, _ in plc.reads].count("coil") == 1
    assert len(plc.reads) == len(source.blocks) == 3
    assert sorted(tag for tag, _, _ in readings) == sorted(t.code for t in tags)


async def test_dead_device_is_bad_comm_until_it_answers(
    listener: Listener, mqtt_port: int, enterprise: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway_agent")
    port = free_port()  # nothing listens here yet
    plant = modbus_plant(enterprise, port)
    plc = Plc(port, [1, 2])
    fill(plc)

    def qualities(*tags: str) -> set[int]:
        latest = listener.latest()
        return {latest[t][1] for t in tags if t in latest}

    async with agent(plant, mqtt_port, tmp_path):
        await until(lambda: len(listener.latest()) == 10, "a reading for every tag")
        assert qualities(*EXPECTED, "A6", "X1") == {Quality.BAD_COMM}
        values = {v for b in listener.batches for v in b.values}
        assert values == {None}
        async with running(plc):
            await until(lambda: qualities(*EXPECTED) == {Quality.GOOD}, "recovery", timeout=40)
            # before the PLC goes away again at the end of this block (that would log "down" anew)
            messages = [r.getMessage() for r in caplog.records if "plc-a" in r.getMessage()]
        assert listener.latest()["A1"][0] == pytest.approx(42.5)
    assert len([m for m in messages if " down" in m]) == 1  # logged once, not every poll
    assert len([m for m in messages if "recovered" in m]) == 1


# -- OPC-UA -------------------------------------------------------------------------------------

NS = "urn:hazardwatch:test"
SOURCE_TIME = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)


class UaServer:
    """A real asyncua server with a few variables in namespace 2."""

    def __init__(self, port: int) -> None:
        self.endpoint = f"opc.tcp://127.0.0.1:{port}/test/"
        self.server = Server()

    async def start(self) -> None:
        server = self.server
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        index = await server.register_namespace(NS)
        assert index == 2
        folder = await server.nodes.objects.add_object(index, "T")
        await folder.add_variable("ns=2;s=T.PT", "PT", ua.Variant(1.5, ua.VariantType.Double))
        await folder.add_variable("ns=2;s=T.CNT", "CNT", ua.Variant(7, ua.VariantType.Int32))
        await folder.add_variable("ns=2;s=T.UNC", "UNC", ua.Variant(0.0, ua.VariantType.Double))
        await folder.add_variable("ns=2;s=T.FAIL", "FAIL", ua.Variant(0.0, ua.VariantType.Double))
        await server.start()
        await self.write("ns=2;s=T.PT", 1.5, StatusCodes.Good, SOURCE_TIME)
        await self.write("ns=2;s=T.UNC", 2.0, StatusCodes.UncertainLastUsableValue)
        await self.write("ns=2;s=T.FAIL", 3.0, StatusCodes.BadSensorFailure)

    async def write(self, node: str, value: float, status: int, when: datetime | None = None) -> None:
        stamp = ua.DateTime.fromtimestamp((when or datetime.now(UTC)).timestamp(), UTC)
        data = ua.DataValue(
            ua.Variant(value, ua.VariantType.Double),
            StatusCode=ua.StatusCode(ua.UInt32(status)),
            SourceTimestamp=stamp,
            ServerTimestamp=stamp,
        )
        await self.server.write_attribute_value(ua.NodeId.from_string(node), data)

    async def stop(self) -> None:
        await self.server.stop()


OPCUA_TAGS = [
    "PT opcua: {device: ua, node: 'ns=2;s=T.PT', sampling_interval_ms: 50}",
    "CNT opcua: {device: ua, node: 'ns=2;s=T.CNT', sampling_interval_ms: 50}",
    "UNC opcua: {device: ua, node: 'ns=2;s=T.UNC', sampling_interval_ms: 50}",
    "FAIL opcua: {device: ua, node: 'ns=2;s=T.FAIL', sampling_interval_ms: 50}",
    "MISSING opcua: {device: ua, node: 'ns=2;s=T.NOPE'}",
]


async def test_opcua_subscription_quality_and_reconnect(listener: Listener, mqtt_port: int, enterprise: str,
                                                        tmp_path: Path) -> None:  # fmt: skip
    port = free_port()
    endpoint = f"opc.tcp://127.0.0.1:{port}/test/"
    device = f"{{protocol: opcua, id: ua, endpoint: '{endpoint}', publishing_interval_ms: 50, timeout_s: 2}}"
    plant = load_plant_text(plant_text(enterprise, [device], OPCUA_TAGS))
    server = UaServer(port)
    await server.start()
    try:
        async with agent(plant, mqtt_port, tmp_path):
            await until(lambda: len(listener.latest()) == 5, "a reading for every node")
            latest = listener.latest()
            assert latest["PT"] == (1.5, Quality.GOOD, int(SOURCE_TIME.timestamp() * 1000))  # source time
            assert latest["CNT"][:2] == (7.0, Quality.GOOD)
            assert latest["UNC"][:2] == (2.0, Quality.UNCERTAIN)
            assert latest["FAIL"][:2] == (None, Quality.INSTRUMENT_FAULT)  # BadSensorFailure
            assert latest["MISSING"][:2] == (None, Quality.BAD)  # a bad node stalls no other

            await server.write("ns=2;s=T.PT", 2.25, StatusCodes.Good)
            await until(lambda: listener.latest()["PT"][0] == 2.25, "the data change")

            await server.stop()
            await until(lambda: listener.latest()["PT"][1] == Quality.BAD_COMM, "BAD_COMM on loss")
            assert {q for _, q, _ in listener.latest().values()} == {Quality.BAD_COMM}

            server = UaServer(port)
            await server.start()
            await until(lambda: listener.latest()["PT"][:2] == (1.5, Quality.GOOD), "recovery", timeout=40)
    finally:
        with contextlib.suppress(Exception):
            await server.stop()
