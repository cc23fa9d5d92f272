"""Decoding table: (registers, data type, byte order, word order) → engineering value and quality.

Register words are built with ``struct`` the way a device lays them out: the value packed big
endian, split into 16-bit words, bytes swapped inside each word for byte_order=little, and
the words reversed for word_order=little (ABCD, BADC, CDAB, DCBA in PLC manuals).
"""

from __future__ import annotations

import math
import struct
from typing import Literal

import pytest

from gateway_agent.decode import decode_point, registers_to_raw
from gateway_agent.errors import DecodeError
from hazardwatch.ledger.models import CurrentLoop, DataType, ModbusPoint, ModbusTable
from hazardwatch.quality import Quality

Order = Literal["big", "little"]
ORDERS: dict[str, tuple[Order, Order]] = {
    "ABCD": ("big", "big"),
    "BADC": ("little", "big"),
    "CDAB": ("big", "little"),
    "DCBA": ("little", "little"),
}


def layout(datatype: DataType, value: float, name: str) -> list[int]:
    """The registers a device with the named byte/word layout holds for the value."""
    byte_order, word_order = ORDERS[name]
    raw = struct.pack(">" + datatype.struct_code, value)
    words = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    if byte_order == "little":
        words = [w[::-1] for w in words]
    if word_order == "little":
        words.reverse()
    return [struct.unpack(">H", w)[0] for w in words]


def point(datatype: DataType, name: str = "ABCD", scale: float = 1.0, offset: float = 0.0) -> ModbusPoint:
    byte_order, word_order = ORDERS[name]
    return ModbusPoint(device="d", address=0, datatype=datatype, byte_order=byte_order,
                       word_order=word_order, scale=scale, offset=offset)  # fmt: skip


VALUES: list[tuple[DataType, float]] = [
    (DataType.INT16, -1234),
    (DataType.INT16, 32767),
    (DataType.UINT16, 65000),
    (DataType.INT32, -123_456_789),
    (DataType.UINT32, 4_000_000_000),
    (DataType.INT64, -9_000_000_000_000),
    (DataType.INT64, 2**62 + 12345),
    (DataType.FLOAT32, 42.5),
    (DataType.FLOAT32, -0.15625),
    (DataType.FLOAT64, -1.0e-3),
    (DataType.FLOAT64, 123456.789012345),
]


@pytest.mark.parametrize("name", sorted(ORDERS))
@pytest.mark.parametrize(("datatype", "value"), VALUES)
def test_every_type_in_every_layout(datatype: DataType, value: float, name: str) -> None:
    registers = layout(datatype, value, name)
    assert len(registers) == datatype.registers
    decoded, quality = decode_point(registers, point(datatype, name))
    assert quality == Quality.GOOD
    assert decoded == pytest.approx(value)


# Literal rows from a PLC manual's point of view: 42.5 as float32 is 0x422A0000.
LITERAL: list[tuple[list[int], DataType, str, float]] = [
    ([0x422A, 0x0000], DataType.FLOAT32, "ABCD", 42.5),
    ([0x2A42, 0x0000], DataType.FLOAT32, "BADC", 42.5),
    ([0x0000, 0x422A], DataType.FLOAT32, "CDAB", 42.5),
    ([0x0000, 0x2A42], DataType.FLOAT32, "DCBA", 42.5),
    ([0xFFFF], DataType.INT16, "ABCD", -1),
    ([0xFFFF], DataType.UINT16, "ABCD", 65535),
    ([0x0100], DataType.UINT16, "BADC", 1),
    ([0x0001, 0x0000], DataType.UINT32, "ABCD", 65536),
    ([0x0000, 0x0001], DataType.UINT32, "CDAB", 65536),
    ([0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE], DataType.INT64, "ABCD", -2),
    ([0xFFFE, 0xFFFF, 0xFFFF, 0xFFFF], DataType.INT64, "CDAB", -2),
]


@pytest.mark.parametrize(("registers", "datatype", "name", "expected"), LITERAL)
def test_literal_layouts(registers: list[int], datatype: DataType, name: str, expected: float) -> None:
    assert layout(datatype, expected, name) == registers  # the struct builder agrees with the manual
    byte_order, word_order = ORDERS[name]
    assert registers_to_raw(registers, datatype, byte_order, word_order) == expected


@pytest.mark.parametrize("wrong", ["BADC", "CDAB", "DCBA"])
def test_a_wrong_layout_gives_a_different_number(wrong: str) -> None:
    registers = layout(DataType.FLOAT32, 42.5, "ABCD")
    value, _ = decode_point(registers, point(DataType.FLOAT32, wrong))
    assert value != 42.5


@pytest.mark.parametrize("special", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("datatype", [DataType.FLOAT32, DataType.FLOAT64])
@pytest.mark.parametrize("name", ["ABCD", "DCBA"])
def test_non_finite_floats_are_bad_without_value(datatype: DataType, special: float, name: str) -> None:
    assert decode_point(layout(datatype, special, name), point(datatype, name)) == (None, Quality.BAD)


def test_a_finite_raw_value_scaled_past_float_range_is_bad() -> None:
    registers = layout(DataType.FLOAT64, 1e308, "ABCD")
    assert decode_point(registers, point(DataType.FLOAT64, scale=10.0)) == (None, Quality.BAD)


@pytest.mark.parametrize(
    ("datatype", "raw", "scale", "offset", "expected"),
    [
        (DataType.INT16, 655, 0.1, -40.0, 25.5),
        (DataType.UINT16, 4000, 0.001, 0.0, 4.0),
        (DataType.INT32, -200, 0.5, 100.0, 0.0),
        (DataType.FLOAT32, 2.0, 2.5, 1.0, 6.0),
    ],
)
def test_scale_then_offset(
    datatype: DataType, raw: float, scale: float, offset: float, expected: float
) -> None:
    registers = layout(datatype, raw, "ABCD")
    value, quality = decode_point(registers, point(datatype, scale=scale, offset=offset))
    assert quality == Quality.GOOD
    assert value == pytest.approx(expected)


@pytest.mark.parametrize(("bit", "expected"), [(1, 1.0), (0, 0.0)])
def test_bits(bit: int, expected: float) -> None:
    coil = ModbusPoint(device="d", table=ModbusTable.COIL, address=3, datatype=DataType.BOOL)
    assert decode_point([bit], coil) == (expected, Quality.GOOD)


def test_wrong_register_count_or_word_is_bad() -> None:
    with pytest.raises(DecodeError):
        registers_to_raw([1], DataType.FLOAT32)
    with pytest.raises(DecodeError):
        registers_to_raw([0x10000], DataType.UINT16)
    assert decode_point([1], point(DataType.FLOAT32)) == (None, Quality.BAD)


SIEMENS = CurrentLoop(raw_4ma=0, raw_20ma=27648)  # an S7 analog input card's counts
MILLIAMPS = CurrentLoop()  # the raw value is already the current in mA


@pytest.mark.parametrize(
    ("raw", "loop", "expected", "quality"),
    [
        (0, SIEMENS, 0.0, Quality.GOOD),  # 4 mA: bottom of the range
        (27648, SIEMENS, 250.0, Quality.GOOD),  # 20 mA: top
        (13824, SIEMENS, 125.0, Quality.GOOD),  # 12 mA: half
        (-691, SIEMENS, -6.248, Quality.GOOD),  # 3.6001 mA: under the range, still a value
        (-692, SIEMENS, None, Quality.INSTRUMENT_FAULT),  # ≤ 3.6 mA: NAMUR failure
        (29376, SIEMENS, None, Quality.INSTRUMENT_FAULT),  # 21.0 mA exactly: failure
        (29375, SIEMENS, 265.616, Quality.GOOD),  # 20.999 mA: over range, still a value
        (3.61, MILLIAMPS, -6.094, Quality.GOOD),  # raw already in mA: 3.61 mA
        (3.6, MILLIAMPS, None, Quality.INSTRUMENT_FAULT),
        (20.99, MILLIAMPS, 265.469, Quality.GOOD),
        (21.0, MILLIAMPS, None, Quality.INSTRUMENT_FAULT),
        (25.0, MILLIAMPS, None, Quality.INSTRUMENT_FAULT),
        (0.0, MILLIAMPS, None, Quality.INSTRUMENT_FAULT),  # a broken wire
        # counts for exactly 3.6 mA that come out of counts → mA as 3.6000000000000005
        (3019.525, CurrentLoop(raw_4ma=3097, raw_20ma=6196), None, Quality.INSTRUMENT_FAULT),
        (math.nan, MILLIAMPS, None, Quality.BAD),
    ],
)
def test_current_loop_scales_to_the_range_and_flags_namur_failures(
    raw: float, loop: CurrentLoop, expected: float | None, quality: Quality
) -> None:
    datatype = DataType.INT32 if isinstance(raw, int) else DataType.FLOAT64
    p = ModbusPoint(device="d", address=0, datatype=datatype, current_loop=loop)
    value, got = decode_point(layout(datatype, raw, "ABCD"), p, (0.0, 250.0))
    assert got == quality
    assert value == (None if expected is None else pytest.approx(expected, abs=0.001))


def test_a_current_loop_needs_the_range_to_scale_to() -> None:
    p = ModbusPoint(device="d", address=0, datatype=DataType.FLOAT32, current_loop=MILLIAMPS)
    with pytest.raises(ValueError, match="range"):
        decode_point(layout(DataType.FLOAT32, 12.0, "ABCD"), p)


def test_a_current_loop_is_numeric_and_not_also_scaled() -> None:
    with pytest.raises(ValueError, match="current_loop"):
        ModbusPoint(device="d", address=0, datatype=DataType.INT16, scale=0.1, current_loop=SIEMENS)


def test_a_current_loop_is_never_a_bit() -> None:
    with pytest.raises(ValueError, match="current_loop"):
        ModbusPoint(
            device="d", table=ModbusTable.COIL, address=0, datatype=DataType.BOOL, current_loop=SIEMENS
        )


def test_a_current_loop_needs_two_different_counts() -> None:
    with pytest.raises(ValueError, match="differ"):
        CurrentLoop(raw_4ma=100, raw_20ma=100)
