"""Modbus register words → engineering values, for every data type, byte and word order."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from gateway_agent.errors import DecodeError
from hazardwatch.ledger.models import DataType, ModbusPoint
from hazardwatch.quality import Quality


def registers_to_raw(words: Sequence[int], datatype: DataType, byte_order: str = "big",
                     word_order: str = "big") -> float:  # fmt: skip
    """Decode 16-bit words (as read, lowest address first) into the raw number."""
    if datatype == DataType.BOOL:
        return 1.0 if words[0] else 0.0
    count = datatype.registers
    if len(words) != count:
        raise DecodeError(f"{datatype} needs {count} registers, got {len(words)}")
    ordered = list(words) if word_order == "big" else list(reversed(words))
    chunks = []
    for word in ordered:
        if not 0 <= word <= 0xFFFF:
            raise DecodeError(f"register value {word} is not a 16-bit word")
        pair = word.to_bytes(2, "big")
        chunks.append(pair if byte_order == "big" else pair[::-1])
    value: float = struct.unpack(">" + datatype.struct_code, b"".join(chunks))[0]
    return value


NAMUR_FAILED_LOW_MA = 3.6  # NAMUR NE 43: at or below, the transmitter signals a failure
NAMUR_FAILED_HIGH_MA = 21.0  # at or above, likewise


def decode_point(words: Sequence[int], point: ModbusPoint,
                 span: tuple[float, float] | None = None) -> tuple[float | None, Quality]:  # fmt: skip
    """The engineering value and quality of one point; a non-finite number is BAD, never a value.

    A 4–20 mA point needs the tag's measuring range (``span``) to scale to; a current at or
    beyond NAMUR NE 43's failure levels gives INSTRUMENT_FAULT and no value.
    """
    try:
        raw = registers_to_raw(words, point.datatype, point.byte_order, point.word_order)
    except DecodeError:
        return None, Quality.BAD
    loop = point.current_loop
    if loop is not None and span is not None:
        milliamps = 4.0 + 16.0 * (raw - loop.raw_4ma) / (loop.raw_20ma - loop.raw_4ma)
        if not math.isfinite(milliamps):
            return None, Quality.BAD
        if milliamps <= NAMUR_FAILED_LOW_MA or milliamps >= NAMUR_FAILED_HIGH_MA:
            return None, Quality.INSTRUMENT_FAULT
        low, high = span
        return low + (high - low) * (milliamps - 4.0) / 16.0, Quality.GOOD
    value = raw * point.scale + point.offset
    if not math.isfinite(value):
        return None, Quality.BAD
    return value, Quality.GOOD
