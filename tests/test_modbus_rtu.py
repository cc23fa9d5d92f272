"""Modbus RTU: devices on one serial line against a real pymodbus server speaking RTU frames.

The server listens on TCP with the RTU framer, which is what a serial device server is; the agent
reaches it through pyserial's ``socket://`` URL, so the client, framing, CRC and the shared-line
logic are the ones a real RS-485 port gets. An absent unit stays silent, as on a real line.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from pymodbus import FramerType

from gateway_agent.agent import build_sources
from gateway_agent.sources.modbus import ModbusSource, SerialBus, TcpEndpoint, modbus_links
from hazardwatch.errors import ConfigError
from hazardwatch.ledger import Enterprise, load_plant_text
from hazardwatch.ledger.models import ModbusRtuDevice
from hazardwatch.quality import Quality
from tests.modbus_support import Plc, Readings, new_enterprise, plant_text, poll_once, running, until, words
from tests.support import free_port

GOOD_A = {"A1": (12.5, Quality.GOOD), "A2": (1.0, Quality.GOOD)}
GOOD_B = {"B1": (-3.0, Quality.GOOD), "B2": (70000.0, Quality.GOOD)}


def line_plant(port: int, *extra_devices: str, line: str = "baudrate: 19200, parity: N") -> Enterprise:
    """rtu-a (unit 1) and rtu-b (unit 2) on one line, two blocks each; ``extra_devices`` beside them."""
    url = f"port: 'socket://127.0.0.1:{port}', {line}"
    devices = [
        f"{{protocol: modbus_rtu, id: rtu-a, {url}, unit_id: 1, poll_interval_s: 0.1}}",
        f"{{protocol: modbus_rtu, id: rtu-b, {url}, unit_id: 2, poll_interval_s: 0.1}}",
        *(d.replace("URL", url) for d in extra_devices),
    ]
    tags = [
        "A1 modbus: {device: rtu-a, address: 0, datatype: float32}",
        "A2 modbus: {device: rtu-a, table: coil, address: 3, datatype: bool}",
        "B1 modbus: {device: rtu-b, address: 4, datatype: int16}",
        "B2 modbus: {device: rtu-b, table: input, address: 0, datatype: uint32, word_order: little}",
    ]
    if any("rtu-x" in d for d in extra_devices):
        tags.append("X1 modbus: {device: rtu-x, address: 0, datatype: uint16}")
    return load_plant_text(plant_text(new_enterprise(), devices, tags)).enterprises[0]


def line_plc(port: int) -> Plc:
    """Units 1 and 2 with the images GOOD_A and GOOD_B expect; unit 9 is there but never answers."""
    plc = Plc(port, [1, 2, 9], framer=FramerType.RTU, silent=frozenset({9}))
    plc.put(1, "holding", 0, words("f", 12.5))
    plc.bits[1]["coil"][3] = True
    plc.put(2, "holding", 4, words("h", -3))
    plc.put(2, "input", 0, words("I", 70000, word_order="little"))
    return plc


def modbus_sources(enterprise: Enterprise) -> list[ModbusSource]:
    sources = build_sources(enterprise, enterprise.gateway("gw1"))
    assert all(isinstance(s, ModbusSource) for s in sources)
    return [s for s in sources if isinstance(s, ModbusSource)]


async def test_devices_on_one_line_share_one_client_and_take_turns() -> None:
    port = free_port()
    enterprise = line_plant(port)
    a, b = modbus_sources(enterprise)
    plc = line_plc(port)
    try:
        async with running(plc):
            for _ in range(2):
                assert await poll_once(a, b) == GOOD_A | GOOD_B
                assert plc.connections == 1  # the port is opened once, whatever polls it
    finally:
        a.close()
        b.close()
    # a poll holds the line for all its blocks: never a request of one unit between two of the other
    assert [unit for unit, *_ in plc.reads] == [1, 1, 2, 2, 1, 1, 2, 2]
    assert sorted({(unit, table) for unit, table, *_ in plc.reads}) == [
        (1, "coil"), (1, "holding"), (2, "holding"), (2, "input")
    ]  # fmt: skip


def test_one_link_per_serial_port_and_per_tcp_endpoint() -> None:
    enterprise = line_plant(
        15020,
        "{protocol: modbus_rtu, id: rtu-c, port: /dev/ttyUSB1, unit_id: 1}",
        "{protocol: modbus_tcp, id: plc-1, host: 127.0.0.1, port: 1502, unit_id: 1}",
        "{protocol: modbus_tcp, id: plc-2, host: 127.0.0.1, port: 1502, unit_id: 2}",
    )
    links = modbus_links(d for d in enterprise.gateway("gw1").devices if d.protocol != "opcua")
    assert isinstance(links["rtu-a"], SerialBus)
    assert links["rtu-a"] is links["rtu-b"]
    assert links["rtu-c"] is not links["rtu-a"]
    assert isinstance(links["plc-1"], TcpEndpoint)
    assert links["plc-1"] is links["plc-2"]


@pytest.mark.parametrize(
    ("line", "gap_ms"),
    [
        ("baudrate: 9600, parity: E", 3.5 * 11 / 9.6),  # 1 start + 8 data + parity + 1 stop bit
        ("baudrate: 19200, parity: N", 3.5 * 10 / 19.2),
        ("baudrate: 9600, parity: N, stopbits: 2", 3.5 * 11 / 9.6),
        ("baudrate: 38400, parity: E", 1.75),  # above 19200 baud the gap is fixed at 1.75 ms
        ("baudrate: 115200, parity: N", 1.75),
        ("baudrate: 9600, parity: E, inter_frame_gap_ms: 25", 25.0),
    ],
)
def test_the_default_frame_gap_is_three_and_a_half_characters(line: str, gap_ms: float) -> None:
    device = line_plant(1, line=line).gateway("gw1").devices[0]
    assert isinstance(device, ModbusRtuDevice)
    assert device.frame_gap_s * 1000 == pytest.approx(gap_ms, rel=1e-9)


@pytest.mark.parametrize(
    ("device", "error"),
    [
        ("port: /dev/ttyUSB0", None),
        ("port: COM3, baudrate: 115200, parity: N, stopbits: 2", None),
        ("port: 'rfc2217://10.0.0.5:4001'", None),
        ("port: ttyUSB0", "should match pattern"),  # not a path
        ("port: 'tcp://10.0.0.5:502'", "should match pattern"),  # not a serial URL: use modbus_tcp
        ("port: /dev/ttyUSB0, bytesize: 7", "bytesize"),  # 7 data bits is ASCII mode, not RTU
        ("port: /dev/ttyUSB0, unit_id: 0", "unit_id"),  # 0 is the broadcast address
        ("port: /dev/ttyUSB0, parity: X", "parity"),
        ("port: /dev/ttyUSB0, inter_frame_gap_ms: -1", "inter_frame_gap_ms"),
        ("port: /dev/ttyUSB0, baudrate: 19200", "disagree on the line settings"),  # rtu-a is at 9600
        ("port: /dev/ttyUSB0, unit_id: 5", "unit 5 on /dev/ttyUSB0 of gateway gw1 is already device rtu-a"),
        ("port: /dev/ttyUSB1, unit_id: 5", None),  # the same address on another bus
    ],
)
def test_the_ledger_checks_serial_devices(device: str, error: str | None) -> None:
    devices = [
        "{protocol: modbus_rtu, id: rtu-a, port: /dev/ttyUSB0, unit_id: 5}",
        f"{{protocol: modbus_rtu, id: rtu-b, {device}}}",
    ]
    tags = ["A1 modbus: {device: rtu-a, address: 0}", "B1 modbus: {device: rtu-b, address: 0}"]
    text = plant_text(new_enterprise(), devices, tags)
    if error is None:
        load_plant_text(text)
    else:
        with pytest.raises(ConfigError, match=error):
            load_plant_text(text)


async def test_the_line_stays_silent_for_the_frame_gap_after_every_request() -> None:
    """The longest gap any device on the line asks for, after each request, inside the lock."""
    port = free_port()
    enterprise = line_plant(port, line="baudrate: 9600, parity: E")  # 4 ms by default
    a_device, b_device = enterprise.gateway("gw1").devices
    assert isinstance(a_device, ModbusRtuDevice)
    assert isinstance(b_device, ModbusRtuDevice)
    b_device = b_device.model_copy(update={"inter_frame_gap_ms": 20.0})  # a slow device on the line
    plc = line_plc(port)
    pauses: list[tuple[int, float]] = []  # (requests the server had seen, the gap) at each pause

    async def sleep(seconds: float) -> None:
        pauses.append((len(plc.reads), seconds))
        await asyncio.sleep(seconds)

    bus = SerialBus([a_device, b_device], sleep=sleep)
    a = ModbusSource(a_device, enterprise.tags_of_device("rtu-a"), bus)
    b = ModbusSource(b_device, enterprise.tags_of_device("rtu-b"), bus)
    try:
        async with running(plc):
            assert await poll_once(a, b) == GOOD_A | GOOD_B
    finally:
        a.close()
        b.close()
    assert pauses == [(1, 0.02), (2, 0.02), (3, 0.02), (4, 0.02)]


async def test_an_absent_unit_times_out_alone_within_its_own_timeout() -> None:
    """Unit 9 never answers: it reads BAD_COMM within its 0.2 s, although the line's client
    waits 60 s for the slowest device; the devices beside it read on, over the same line."""
    port = free_port()
    enterprise = line_plant(
        port,
        # the same line, with its own timeout (the others' 60 s is theirs, not given twice here)
        f"{{protocol: modbus_rtu, id: rtu-x, port: 'socket://127.0.0.1:{port}', baudrate: 19200, parity: N,"
        " unit_id: 9, timeout_s: 0.2}",
        line="baudrate: 19200, parity: N, timeout_s: 60",
    )
    a, b, x = modbus_sources(enterprise)
    try:
        async with running(line_plc(port)) as plc:
            for _ in range(2):
                readings = await asyncio.wait_for(poll_once(a, b, x), 10)
                assert readings == GOOD_A | GOOD_B | {"X1": (None, Quality.BAD_COMM)}
            assert [s.state.value for s in (a, b, x)] == ["up", "up", "down"]
            assert plc.connections == 1  # the silent unit did not cost the others the line
    finally:
        for source in (a, b, x):
            source.close()


async def test_a_line_that_goes_away_reads_bad_comm_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway_agent")
    port = free_port()
    sources = modbus_sources(line_plant(port))
    plc = line_plc(port)
    latest: Readings = {}
    stop = asyncio.Event()

    def emit(tag: str, _ts: int, value: float | None, quality: Quality) -> None:
        latest[tag] = (value, quality)

    def qualities() -> set[Quality]:
        return {q for _, q in latest.values()}

    tasks = [asyncio.create_task(s.run(emit, stop)) for s in sources]
    try:
        await until(lambda: len(latest) == 4 and qualities() == {Quality.BAD_COMM}, "BAD_COMM, nothing there")
        async with running(plc):
            await until(lambda: latest == GOOD_A | GOOD_B, "both devices reading", timeout=40)
        await until(lambda: qualities() == {Quality.BAD_COMM}, "BAD_COMM once the line is gone")
        async with running(plc):
            await until(lambda: latest == GOOD_A | GOOD_B, "recovery on the line", timeout=40)
            messages = [r.getMessage() for r in caplog.records if "rtu-" in r.getMessage()]
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
            await until(lambda: plc.connections == 0, "the line closed once its last device stopped")
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    for device in ("rtu-a", "rtu-b"):
        mine = [m for m in messages if f"device {device} " in m]
        assert len([m for m in mine if " down" in m]) == 2, mine  # never there, then lost: once each
        assert len([m for m in mine if "recovered" in m]) == 2, mine
