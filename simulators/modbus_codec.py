"""Encode a tag's simulated value into the registers of its Modbus point.

raw = (value - offset) / scale, rounded and clamped for integer types; the raw value is packed
big-endian, then the register order is reversed for word_order little and the two bytes of each
register are swapped for byte_order little (the inverse of what a reader does).

A failed transmitter is served as a sentinel the reader can recognise:

=========  =====================================
float32    NaN (quiet NaN, 0x7FC00000)
float64    NaN
int16      -32768 (0x8000), the type's minimum
int32      -2147483648 (0x80000000)
int64      -9223372036854775808
uint16     65535 (0xFFFF), the type's maximum
uint32     4294967295 (0xFFFFFFFF)
bool       False (de-energised)
=========  =====================================

Unsigned types use their maximum, not 0, because 0 is an ordinary reading (a gas detector in
clean air). Healthy values are clamped one step short of the sentinel, so a sentinel always means
a failed transmitter. With any realistic scale both sentinels decode far outside the tag's range.
"""

from __future__ import annotations

import math
import struct

from hazardwatch.ledger import ModbusPoint
from hazardwatch.ledger.models import DataType
from simulators.values import FaultMode, SimValue

INTEGER_BOUNDS: dict[DataType, tuple[int, int]] = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
}

FAILED_RAW: dict[DataType, int] = {
    DataType.INT16: -(2**15),
    DataType.INT32: -(2**31),
    DataType.INT64: -(2**63),
    DataType.UINT16: 2**16 - 1,
    DataType.UINT32: 2**32 - 1,
}
"""The raw integer a failed transmitter is served as, by data type (floats are served as NaN)."""

_FLOAT32_MAX = 3.4028234663852886e38


def raw_value(point: ModbusPoint, value: float) -> int | float:
    """The raw (unscaled) value a healthy transmitter reports, ready to pack."""
    raw = (value - point.offset) / point.scale
    bounds = INTEGER_BOUNDS.get(point.datatype)
    if bounds is None:
        if point.datatype is DataType.FLOAT32 and math.isfinite(raw):
            return max(-_FLOAT32_MAX, min(_FLOAT32_MAX, raw))
        return raw
    low, high = bounds
    sentinel = FAILED_RAW[point.datatype]
    if sentinel == low:
        low += 1
    else:
        high -= 1
    if not math.isfinite(raw):
        return high if raw > 0 else low
    return max(low, min(high, round(raw)))


def encode_registers(point: ModbusPoint, sim: SimValue) -> list[int]:
    """The registers of a register point (holding or input), in address order."""
    code = point.datatype.struct_code
    raw: int | float
    if sim.mode is FaultMode.FAILED or not math.isfinite(sim.value):
        raw = FAILED_RAW.get(point.datatype, math.nan)
    else:
        raw = raw_value(point, sim.value)
    data = struct.pack(">" + code, raw)
    registers = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if point.word_order == "little":
        registers.reverse()
    if point.byte_order == "little":
        registers = [((r & 0xFF) << 8) | (r >> 8) for r in registers]
    return registers


def encode_bit(point: ModbusPoint, sim: SimValue) -> bool:
    """The state of a bit point (coil or discrete input)."""
    if sim.mode is FaultMode.FAILED or not math.isfinite(sim.value):
        return False
    return (sim.value - point.offset) / point.scale >= 0.5
