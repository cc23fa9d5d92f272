"""Modbus register words → engineering values, for every data type, byte and word order."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from gateway_agent.errors import DecodeError
from hazardwatch.ledger.models import CurrentLoop, DataType, ModbusPoint
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
_MA_TOLERANCE = 1e-9  # counts → mA rounding must not move a reading of exactly 3.6 or 21.0 mA


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
    if point.current_loop is not None:
        if span is None:
            raise ValueError("a 4–20 mA point is scaled over its tag's range: pass the span")
        return current_loop_value(raw, point.current_loop, span)
    value = raw * point.scale + point.offset
    if not math.isfinite(value):
        return None, Quality.BAD
    return value, Quality.GOOD


def current_loop_value(raw: float, loop: CurrentLoop,
                       span: tuple[float, float]) -> tuple[float | None, Quality]:  # fmt: skip
    """Raw counts → mA → engineering units over ``span``; NAMUR failure currents are no value."""
    milliamps = 4.0 + 16.0 * (raw - loop.raw_4ma) / (loop.raw_20ma - loop.raw_4ma)
    if not math.isfinite(milliamps):
        return None, Quality.BAD
    if milliamps <= NAMUR_FAILED_LOW_MA + _MA_TOLERANCE or milliamps >= NAMUR_FAILED_HIGH_MA - _MA_TOLERANCE:
        return None, Quality.INSTRUMENT_FAULT
    low, high = span
    return low + (high - low) * (milliamps - 4.0) / 16.0, Quality.GOOD
