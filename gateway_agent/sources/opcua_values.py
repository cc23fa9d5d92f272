"""OPC-UA data values as readings: status code → quality, timestamps, the data-change filter.

Pure functions and small state, no I/O: the subscription handler and the poller share them,
so a tag reads the same whether its node is subscribed or polled.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

from asyncua import ua
from asyncua.ua.status_codes import StatusCodes

from hazardwatch.quality import Quality

_SEVERITY_MASK = 0xC000_0000
_SUBCODE_MASK = 0xFFFF_0000  # the low 16 bits are info bits (overflow, limits), not the condition

_BY_SUBCODE: dict[int, Quality] = {
    **dict.fromkeys(
        (
            StatusCodes.BadCommunicationError,
            StatusCodes.BadNotConnected,
            StatusCodes.BadNoCommunication,
            StatusCodes.BadServerNotConnected,
            StatusCodes.BadConnectionClosed,
            StatusCodes.BadSecureChannelClosed,
            StatusCodes.BadTimeout,
            StatusCodes.BadRequestTimeout,
            StatusCodes.BadServerHalted,
            StatusCodes.BadShutdown,
            StatusCodes.BadDisconnect,
            StatusCodes.BadWaitingForInitialData,
        ),
        Quality.BAD_COMM,
    ),
    StatusCodes.BadSensorFailure: Quality.INSTRUMENT_FAULT,
    StatusCodes.BadDeviceFailure: Quality.INSTRUMENT_FAULT,
    StatusCodes.BadOutOfService: Quality.OUT_OF_SERVICE,
}


def quality_of(status: ua.StatusCode | int | None) -> Quality:
    """The quality a status code means; an absent status is Good (OPC-UA omits Good)."""
    if status is None:
        return Quality.GOOD
    code = status if isinstance(status, int) else int(status.value)
    severity = code & _SEVERITY_MASK
    if severity == 0:
        return Quality.GOOD
    if severity == 0x4000_0000:
        return Quality.UNCERTAIN
    return _BY_SUBCODE.get(code & _SUBCODE_MASK, Quality.BAD)


def reading_of(val: Any, status: ua.StatusCode | None) -> tuple[float | None, Quality]:
    """Value and quality of a data value: a value that is not a finite number is BAD."""
    quality = quality_of(status)
    if not quality.has_value:
        return None, quality
    if isinstance(val, bool):
        return float(val), quality
    if isinstance(val, int | float) and math.isfinite(val):
        return float(val), quality
    return None, Quality.BAD


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _ms(moment: datetime | None) -> int | None:
    """UTC milliseconds of an OPC-UA time; None when absent or at/before the Unix epoch (unset)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    ms = int(moment.timestamp() * 1000)
    return ms if ms > 0 else None


def source_ms(data: ua.DataValue) -> int:
    """The reading's time: the source timestamp, else the server's, else now."""
    return _ms(data.SourceTimestamp) or _ms(data.ServerTimestamp) or now_ms()


def value_of(data: ua.DataValue) -> Any:
    return data.Value.Value if data.Value is not None else None


class ChangeFilter:
    """A data-change filter (trigger StatusValue, absolute deadband) applied on the client.

    Polled nodes go through it so that they report like subscribed ones: a reading when the
    status changes or the value moves more than the deadband from the last value reported.
    """

    def __init__(self, deadband: float) -> None:
        self._deadband = deadband
        self._last: tuple[int, float | None] | None = None

    def passes(self, status: ua.StatusCode | None, number: float | None) -> bool:
        """Whether this data value is reported; it then becomes the one later ones compare with."""
        code = 0 if status is None else int(status.value)
        if self._last is not None and not self._changed(self._last, code, number):
            return False
        self._last = (code, number)
        return True

    def _changed(self, last: tuple[int, float | None], code: int, number: float | None) -> bool:
        last_code, last_number = last
        if code != last_code:
            return True
        if number is None or last_number is None:
            return (number is None) != (last_number is None)
        return abs(number - last_number) > self._deadband
