"""The pure parts of the OPC-UA source: status codes as qualities, the client-side data-change
filter, and the devices.yaml settings of OPC-UA devices and points."""

from __future__ import annotations

import math
from datetime import UTC
from typing import Any

import pytest
from asyncua import ua
from asyncua.ua.status_codes import StatusCodes

from gateway_agent.sources.opcua_security import Credentials, OpcUaConfigError, credentials
from gateway_agent.sources.opcua_values import ChangeFilter, quality_of, reading_of, source_ms
from hazardwatch.errors import ConfigError
from hazardwatch.quality import Quality
from tests.opcua_support import node, opcua_plant

OVERFLOW = 0x0480  # InfoType DataValue + Overflow: a queue dropped values, the condition is unchanged

QUALITIES = [
    (None, Quality.GOOD),
    (StatusCodes.Good, Quality.GOOD),
    (StatusCodes.GoodOverload, Quality.GOOD),
    (StatusCodes.Good | OVERFLOW, Quality.GOOD),
    (StatusCodes.UncertainLastUsableValue, Quality.UNCERTAIN),
    (StatusCodes.UncertainSensorNotAccurate, Quality.UNCERTAIN),
    (StatusCodes.UncertainEngineeringUnitsExceeded, Quality.UNCERTAIN),
    (StatusCodes.BadCommunicationError, Quality.BAD_COMM),
    (StatusCodes.BadCommunicationError | OVERFLOW, Quality.BAD_COMM),
    (StatusCodes.BadNotConnected, Quality.BAD_COMM),
    (StatusCodes.BadNoCommunication, Quality.BAD_COMM),
    (StatusCodes.BadServerNotConnected, Quality.BAD_COMM),
    (StatusCodes.BadTimeout, Quality.BAD_COMM),
    (StatusCodes.BadWaitingForInitialData, Quality.BAD_COMM),
    (StatusCodes.BadSensorFailure, Quality.INSTRUMENT_FAULT),
    (StatusCodes.BadDeviceFailure, Quality.INSTRUMENT_FAULT),
    (StatusCodes.BadDeviceFailure | OVERFLOW, Quality.INSTRUMENT_FAULT),
    (StatusCodes.BadOutOfService, Quality.OUT_OF_SERVICE),
    (StatusCodes.BadNodeIdUnknown, Quality.BAD),
    (StatusCodes.BadConfigurationError, Quality.BAD),
    (StatusCodes.Bad, Quality.BAD),
    (0xC0000000, Quality.BAD),  # the reserved severity counts as bad
]


@pytest.mark.parametrize(("status", "quality"), QUALITIES)
def test_status_code_to_quality(status: int | None, quality: Quality) -> None:
    code = None if status is None else ua.StatusCode(ua.UInt32(status))
    assert quality_of(code) == quality
    if status is not None:
        assert quality_of(status) == quality


@pytest.mark.parametrize(
    ("value", "status", "reading"),
    [
        (1.5, StatusCodes.Good, (1.5, Quality.GOOD)),
        (7, StatusCodes.Good, (7.0, Quality.GOOD)),
        (True, StatusCodes.Good, (1.0, Quality.GOOD)),
        (2.0, StatusCodes.UncertainLastUsableValue, (2.0, Quality.UNCERTAIN)),
        (math.nan, StatusCodes.Good, (None, Quality.BAD)),  # a good NaN is still no number
        (math.inf, StatusCodes.Good, (None, Quality.BAD)),
        ("12.5", StatusCodes.Good, (None, Quality.BAD)),
        (None, StatusCodes.Good, (None, Quality.BAD)),
        (3.0, StatusCodes.BadSensorFailure, (None, Quality.INSTRUMENT_FAULT)),  # no value with a bad status
        (3.0, StatusCodes.BadOutOfService, (None, Quality.OUT_OF_SERVICE)),
    ],
)
def test_reading_of_a_value(value: Any, status: int, reading: tuple[float | None, Quality]) -> None:
    assert reading_of(value, ua.StatusCode(ua.UInt32(status))) == reading


def test_the_source_time_wins_then_the_server_time() -> None:
    source = ua.DateTime(2024, 5, 1, 8, 0, tzinfo=UTC)
    server = ua.DateTime(2024, 5, 1, 8, 0, 1, tzinfo=UTC)
    assert source_ms(ua.DataValue(SourceTimestamp=source, ServerTimestamp=server)) == 1714550400000
    assert source_ms(ua.DataValue(ServerTimestamp=server)) == 1714550401000
    epoch = ua.DateTime(1601, 1, 1, tzinfo=UTC)  # OPC-UA's "no time"
    assert source_ms(ua.DataValue(SourceTimestamp=epoch, ServerTimestamp=server)) == 1714550401000


GOOD = ua.StatusCode(ua.UInt32(StatusCodes.Good))
UNCERTAIN = ua.StatusCode(ua.UInt32(StatusCodes.UncertainLastUsableValue))
BAD = ua.StatusCode(ua.UInt32(StatusCodes.BadNodeIdUnknown))


def test_the_change_filter_reports_from_the_last_reported_value() -> None:
    flt = ChangeFilter(deadband=0.5)
    samples = [(GOOD, 10.0), (GOOD, 10.0), (GOOD, 10.3), (GOOD, 10.5), (GOOD, 10.6), (GOOD, 10.2),
               (UNCERTAIN, 10.2), (BAD, None), (BAD, None), (GOOD, 10.2)]  # fmt: skip
    reported = [value for status, value in samples if flt.passes(status, value)]
    # 10.3 and 10.5 are within 0.5 of the reported 10.0; 10.6 is beyond; 10.2 is within 0.5 of 10.6;
    # a status change always reports
    assert reported == [10.0, 10.6, 10.2, None, 10.2]


def test_without_a_deadband_every_change_reports() -> None:
    flt = ChangeFilter(deadband=0.0)
    samples = [(GOOD, 1.0), (GOOD, 1.0), (GOOD, 1.0000001), (GOOD, 1.0000001), (None, 2.0)]
    assert [value for status, value in samples if flt.passes(status, value)] == [1.0, 1.0000001, 2.0]


# -- devices.yaml ---------------------------------------------------------------------------

SECURITY = {"certificate": "/etc/hw/agent.der", "private_key": "/etc/hw/agent-key.pem",
            "server_certificate": "/etc/hw/dcs.der"}  # fmt: skip


def test_point_and_device_defaults() -> None:
    device, [tag] = opcua_plant({"endpoint": "opc.tcp://dcs:4840/"}, {"LT": {"node": node("V.LT")}})
    assert tag.opcua is not None
    assert (tag.opcua.mode, tag.opcua.queue_size, tag.opcua.deadband) == ("subscribe", 10, 0.0)
    assert (device.security, device.username, device.password_env) == (None, None, None)
    assert credentials(device, {}) == Credentials()


def test_security_and_user_settings() -> None:
    device, _ = opcua_plant(
        {"endpoint": "opc.tcp://dcs:4840/", "security": {**SECURITY, "mode": "Sign",
         "private_key_password_env": "HW_KEY"}, "username": "hw", "password_env": "HW_OPCUA_PASSWORD_E1"},
        {"LT": {"node": node("V.LT"), "mode": "poll", "sampling_interval_ms": 1000, "deadband": 0.2}},
    )  # fmt: skip
    assert device.security is not None
    assert device.security.policy == "Basic256Sha256"
    creds = credentials(device, {"HW_OPCUA_PASSWORD_E1": "pw", "HW_KEY": "kpw"})
    assert (creds.username, creds.password, creds.key_password) == ("hw", "pw", "kpw")
    with pytest.raises(OpcUaConfigError, match="HW_KEY"):
        credentials(device, {"HW_OPCUA_PASSWORD_E1": "pw"})


@pytest.mark.parametrize(
    ("device", "point", "message"),
    [
        ({}, {"mode": "poll", "sampling_interval_ms": 0}, "a polled node needs sampling_interval_ms"),
        ({}, {"mode": "push"}, "subscribe"),
        ({}, {"deadband": -1}, "greater than or equal to 0"),
        ({}, {"queue_size": 0}, "greater than or equal to 1"),
        ({"username": "hw", "security": SECURITY}, {}, "give username and password_env together"),
        ({"password_env": "HW_PW", "security": SECURITY}, {}, "give username and password_env together"),
        ({"username": "hw", "password_env": "HW_PW"}, {}, "only sent over a secured connection"),
        ({"username": "hw", "password_env": "hunter2!", "security": SECURITY}, {}, "should match pattern"),
        ({"security": {**SECURITY, "policy": "Basic128Rsa15"}}, {}, "Basic256Sha256"),
        ({"security": {**SECURITY, "mode": "None"}}, {}, "SignAndEncrypt"),
        ({"password": "hunter2"}, {}, "Extra inputs are not permitted"),  # never the secret itself
    ],
)
def test_invalid_settings_are_errors(device: dict[str, Any], point: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        opcua_plant({"endpoint": "opc.tcp://dcs:4840/", **device}, {"LT": {"node": node("V.LT"), **point}})
