"""Every data type in every byte and word order, and 4–20 mA loops, read from a real pymodbus server.

The server's registers are filled by pymodbus' own encoder (``encode``), not by the agent's
decoder run backwards; literal rows from a PLC manual pin both down. ModbusSource polls them
the way the agent does: block reads, decode, scale, quality.
"""

from __future__ import annotations

import math
from typing import Literal

import pytest

from gateway_agent.sources.modbus import ModbusSource, TcpEndpoint
from hazardwatch.ledger import Enterprise, load_plant_text
from hazardwatch.ledger.models import DataType, ModbusDevice
from hazardwatch.quality import Quality
from tests.modbus_support import Plc, Readings, encode, new_enterprise, plant_text, poll_once, running
from tests.support import free_port

Order = Literal["big", "little"]
LAYOUTS: dict[str, tuple[Order, Order]] = {  # PLC manuals' names: (byte order, word order)
    "ABCD": ("big", "big"),
    "BADC": ("little", "big"),
    "CDAB": ("big", "little"),
    "DCBA": ("little", "little"),
}

VALUES: list[tuple[DataType, float]] = [
    (DataType.INT16, -32768),
    (DataType.INT16, -1234),
    (DataType.INT16, 32767),
    (DataType.UINT16, 0),
    (DataType.UINT16, 65535),
    (DataType.INT32, -(2**31)),
    (DataType.INT32, 123_456_789),
    (DataType.UINT32, 2**32 - 1),
    (DataType.UINT32, 70_000),
    (DataType.INT64, -(2**63)),
    (DataType.INT64, 2**62 + 12_345),
    (DataType.FLOAT32, 42.5),
    (DataType.FLOAT32, -0.15625),
    (DataType.FLOAT32, 3.4028234663852886e38),  # the largest float32
    (DataType.FLOAT64, -1.0e-3),
    (DataType.FLOAT64, 123_456.789_012_345),
    (DataType.FLOAT64, 1.0e308),
]
NON_FINITE: list[tuple[DataType, float]] = [
    (datatype, special) for datatype in (DataType.FLOAT32, DataType.FLOAT64)
    for special in (math.nan, math.inf, -math.inf)
]  # fmt: skip


class Device:
    """One unit of a real server and the points on it, laid out one after another per table."""

    def __init__(self, port: int, tag_range: str = "[0, 1]") -> None:
        self.plc = Plc(port, [1], size=256)
        self.points: list[str] = []
        self.next = {"holding": 0, "input": 0, "coil": 0, "discrete": 0}
        self._port = port
        self._range = tag_range

    def add(self, code: str, table: str, datatype: DataType, registers: list[int], point: str = "") -> None:
        address = self.next[table]
        self.plc.put(1, table, address, registers)
        self.next[table] += datatype.registers
        extra = f", {point}" if point else ""
        self.points.append(f"{code} modbus: {{device: plc, table: {table}, address: {address}, "
                           f"datatype: {datatype}{extra}}}")  # fmt: skip

    def add_bit(self, code: str, table: str, state: bool) -> None:
        address = self.next[table]
        self.plc.bits[1][table][address] = state
        self.next[table] += 1
        self.points.append(
            f"{code} modbus: {{device: plc, table: {table}, address: {address}, datatype: bool}}"
        )

    async def poll(self) -> tuple[Readings, ModbusSource]:
        device_line = f"{{protocol: modbus_tcp, id: plc, host: 127.0.0.1, port: {self._port}, unit_id: 1}}"
        text = plant_text(new_enterprise(), [device_line], self.points, tag_range=self._range)
        enterprise: Enterprise = load_plant_text(text).enterprises[0]
        device = enterprise.gateway("gw1").devices[0]
        assert isinstance(device, ModbusDevice)
        source = ModbusSource(device, enterprise.tags_of_device("plc"), TcpEndpoint(device.host, device.port))
        try:
            async with running(self.plc):
                return await poll_once(source), source
        finally:
            source.close()


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
async def test_every_type_in_every_layout_from_a_real_server(layout: str) -> None:
    byte_order, word_order = LAYOUTS[layout]
    orders = f"byte_order: {byte_order}, word_order: {word_order}"
    device = Device(free_port())
    expected: Readings = {}
    for i, (datatype, value) in enumerate(VALUES):
        for table in ("holding", "input"):  # function codes 3 and 4
            code = f"{table[0].upper()}{i}"
            device.add(code, table, datatype, encode(datatype, value, byte_order, word_order), orders)
            expected[code] = (float(value), Quality.GOOD)
    for i, (datatype, special) in enumerate(NON_FINITE):
        device.add(f"N{i}", "holding", datatype, encode(datatype, special, byte_order, word_order), orders)
        expected[f"N{i}"] = (None, Quality.BAD)  # a NaN or infinity is never a value
    for table in ("coil", "discrete"):  # function codes 1 and 2
        for state in (True, False):
            code = f"{table[0].upper()}{int(state)}"
            device.add_bit(code, table, state)
            expected[code] = (float(state), Quality.GOOD)
    readings, source = await device.poll()
    assert readings == expected
    assert source.requests == len(source.blocks) == 4  # one read per table, all types side by side


# A PLC manual's rows: 42.5 as float32 is 0x422A0000; 0x12345678 as uint32 is 305419896.
LITERAL: list[tuple[list[int], DataType, str, float]] = [
    ([0x422A, 0x0000], DataType.FLOAT32, "ABCD", 42.5),
    ([0x2A42, 0x0000], DataType.FLOAT32, "BADC", 42.5),
    ([0x0000, 0x422A], DataType.FLOAT32, "CDAB", 42.5),
    ([0x0000, 0x2A42], DataType.FLOAT32, "DCBA", 42.5),
    ([0x1234, 0x5678], DataType.UINT32, "ABCD", 0x12345678),
    ([0x3412, 0x7856], DataType.UINT32, "BADC", 0x12345678),
    ([0x5678, 0x1234], DataType.UINT32, "CDAB", 0x12345678),
    ([0x7856, 0x3412], DataType.UINT32, "DCBA", 0x12345678),
    ([0xFFFE, 0xFFFF, 0xFFFF, 0xFFFF], DataType.INT64, "CDAB", -2),
    ([0xFEFF, 0xFFFF, 0xFFFF, 0xFFFF], DataType.INT64, "DCBA", -2),
    ([0x0100], DataType.INT16, "BADC", 1),
    ([0x7FC0, 0x0000], DataType.FLOAT32, "ABCD", math.nan),  # quiet NaN
    ([0x0000, 0xC07F], DataType.FLOAT32, "DCBA", math.nan),
    ([0x7FF8, 0, 0, 0], DataType.FLOAT64, "ABCD", math.nan),
]


async def test_literal_layouts_and_their_swaps_from_a_real_server() -> None:
    """Each manual row reads as its value in its own layout and as another number in a swapped one
    (a one-register type has no word order: only a byte swap changes it)."""
    device = Device(free_port())
    same: Readings = {}
    swapped: dict[str, float] = {}
    for i, (registers, datatype, layout, value) in enumerate(LITERAL):
        if not math.isnan(value):
            assert encode(datatype, value, *LAYOUTS[layout]) == registers  # the encoder agrees
        for other, (byte_order, word_order) in LAYOUTS.items():
            code = f"L{i}{other}"
            device.add(
                code, "holding", datatype, registers, f"byte_order: {byte_order}, word_order: {word_order}"
            )
            if other == layout or (datatype.registers == 1 and byte_order == LAYOUTS[layout][0]):
                same[code] = (None, Quality.BAD) if math.isnan(value) else (float(value), Quality.GOOD)
            elif not math.isnan(value):
                swapped[code] = value
    readings, _ = await device.poll()
    assert {code: readings[code] for code in same} == same
    assert all(readings[code][0] != value for code, value in swapped.items())
    assert len(swapped) == 32  # 10 wide rows (not NaN) × 3 swaps, the int16 row × 2 byte swaps


SIEMENS = "current_loop: {raw_4ma: 0, raw_20ma: 27648}"  # an S7 analog input card's counts
MILLIAMPS = "current_loop: {}"  # the raw value is the current in mA

# (data type, point, raw, tag value over [0, 250] or None, quality)
LOOP_ROWS: list[tuple[DataType, str, float, float | None, Quality]] = [
    (DataType.INT16, SIEMENS, 0, 0.0, Quality.GOOD),  # 4 mA: bottom of the range
    (DataType.INT16, SIEMENS, 13824, 125.0, Quality.GOOD),  # 12 mA
    (DataType.INT16, SIEMENS, 27648, 250.0, Quality.GOOD),  # 20 mA: top
    (DataType.INT16, SIEMENS, -691, 250 * (-691 / 27648), Quality.GOOD),  # 3.6001 mA: under range, a value
    (DataType.INT16, SIEMENS, -692, None, Quality.INSTRUMENT_FAULT),  # 3.5995 mA
    (DataType.INT16, SIEMENS, 29375, 250 * 29375 / 27648, Quality.GOOD),  # 20.9994 mA: over range, a value
    (DataType.INT16, SIEMENS, 29376, None, Quality.INSTRUMENT_FAULT),  # 21.0 mA exactly
    (DataType.INT16, SIEMENS, -32768, None, Quality.INSTRUMENT_FAULT),  # a wire break reads far under
    (DataType.FLOAT32, MILLIAMPS, 3.6, None, Quality.INSTRUMENT_FAULT),
    (DataType.FLOAT32, MILLIAMPS, 3.61, 250 * (3.61 - 4) / 16, Quality.GOOD),
    (DataType.FLOAT32, MILLIAMPS, 20.99, 250 * (20.99 - 4) / 16, Quality.GOOD),
    (DataType.FLOAT32, MILLIAMPS, 21.0, None, Quality.INSTRUMENT_FAULT),
    (DataType.FLOAT32, MILLIAMPS, math.nan, None, Quality.BAD),
    (DataType.FLOAT64, MILLIAMPS, 3.6, None, Quality.INSTRUMENT_FAULT),
    (DataType.FLOAT64, MILLIAMPS, 3.61, 250 * (3.61 - 4) / 16, Quality.GOOD),
    (DataType.FLOAT64, MILLIAMPS, 20.99, 250 * (20.99 - 4) / 16, Quality.GOOD),
    (DataType.FLOAT64, MILLIAMPS, 21.0, None, Quality.INSTRUMENT_FAULT),
    # exactly 3.6 mA on a card with odd counts, where counts → mA rounds to 3.6000000000000005
    (
        DataType.FLOAT64,
        "current_loop: {raw_4ma: 3097, raw_20ma: 6196}",
        3019.525,
        None,
        Quality.INSTRUMENT_FAULT,
    ),
    (DataType.UINT16, "current_loop: {raw_4ma: 6400, raw_20ma: 32000}", 19200, 125.0, Quality.GOOD),
    (DataType.UINT16, "current_loop: {raw_4ma: 6400, raw_20ma: 32000}", 5760, None, Quality.INSTRUMENT_FAULT),
    (
        DataType.UINT16,
        "current_loop: {raw_4ma: 6400, raw_20ma: 32000}",
        33600,
        None,
        Quality.INSTRUMENT_FAULT,
    ),
]


async def test_current_loops_scale_over_the_range_and_flag_namur_failures_from_a_real_server() -> None:
    device = Device(free_port(), tag_range="[0, 250]")
    for i, (datatype, point, raw, _, _) in enumerate(LOOP_ROWS):
        device.add(f"C{i}", "input", datatype, encode(datatype, raw, "big", "big"), point)
    readings, _ = await device.poll()
    for i, (_, point, raw, value, quality) in enumerate(LOOP_ROWS):
        got_value, got_quality = readings[f"C{i}"]
        assert got_quality == quality, (point, raw)
        assert got_value == (None if value is None else pytest.approx(value, rel=1e-6, abs=1e-9)), (
            point,
            raw,
        )
