"""OPC-UA subscriptions against a real asyncua server: a restart loses nothing written while
connected, the deadband filter, status codes as qualities with source timestamps."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from asyncua.ua.status_codes import StatusCodes

from gateway_agent.sources.base import CommState
from gateway_agent.sources.opcua import OpcUaSource
from hazardwatch.quality import Quality
from tests.opcua_support import SOURCE_TIME, UaServer, node, opcua_plant, running, serving, until, until_up
from tests.support import free_port

FAST = {"publishing_interval_ms": 50, "timeout_s": 2, "keepalive_s": 1}


@dataclass
class CounterWriter:
    """Writes 1, 2, 3 … to T.CNT every 100 ms while running; remembers each value's source time."""

    server: UaServer
    written: dict[float, int] = field(default_factory=dict)  # value → source time (ms)
    running: asyncio.Event = field(default_factory=asyncio.Event)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    count: int = 0

    async def run(self) -> None:
        while True:
            await self.running.wait()
            self.idle.clear()
            self.count += 1
            self.written[float(self.count)] = await self.server.write("T.CNT", float(self.count))
            self.idle.set()
            await asyncio.sleep(0.1)

    async def pause(self) -> None:
        """Stop writing; return once no write is in flight."""
        self.running.clear()
        await self.idle.wait()


async def test_a_server_restart_rebuilds_the_subscription_and_loses_nothing_written_while_connected() -> None:
    port = free_port()
    points: dict[str, dict[str, Any]] = {
        "CNT": {"node": node("T.CNT"), "sampling_interval_ms": 0, "queue_size": 100},
        "PT": {"node": node("T.PT")},
    }
    device, tags = opcua_plant({"endpoint": f"opc.tcp://127.0.0.1:{port}/test/", **FAST}, points)
    source = OpcUaSource(device, tags)
    server = UaServer(port, {"T.CNT": 0.0, "T.PT": 1.5})
    await server.start()
    await server.write("T.PT", 1.5, when=SOURCE_TIME)
    writer = CounterWriter(server)
    writing = asyncio.create_task(writer.run())
    try:
        async with running(source) as emitted:
            await until_up(source, emitted, ["CNT", "PT"])
            first = len(writer.written) + 1  # written from here on: while the subscription lives
            writer.running.set()
            await until(lambda: len(writer.written) >= first + 20, "twenty values written")
            await writer.pause()
            last = writer.count
            await until(lambda: emitted.values("CNT")[-1] == last, "the last value before the restart")
            received = {value: ts for ts, value, quality in emitted.of("CNT") if quality == Quality.GOOD}
            for value in range(first, last + 1):  # every one, with its source time
                assert received.get(float(value)) == writer.written[float(value)], value

            await server.stop()
            await until(lambda: emitted.quality("CNT") == emitted.quality("PT") == Quality.BAD_COMM, "loss")
            before_restart = len(emitted.readings)

            server = UaServer(port, {"T.CNT": float(last), "T.PT": 1.5})
            await server.start()
            await server.write("T.PT", 1.5, when=SOURCE_TIME)
            writer.server = server
            await until(lambda: source.state == CommState.UP and emitted.quality("CNT") == Quality.GOOD,
                        "the subscription rebuilt")  # fmt: skip
            again = {
                tag for tag, _, _, quality in emitted.readings[before_restart:] if quality == Quality.GOOD
            }
            assert again == {"CNT", "PT"}  # current values read again, the unchanged one too
            assert emitted.latest("PT") == (int(SOURCE_TIME.timestamp() * 1000), 1.5, Quality.GOOD)

            resumed = writer.count + 1
            writer.running.set()
            await until(lambda: writer.count >= resumed + 20, "twenty values after the restart")
            await writer.pause()
            last = writer.count
            await until(lambda: emitted.values("CNT")[-1] == last, "the last value after the restart")
            received = {value: ts for ts, value, quality in emitted.of("CNT") if quality == Quality.GOOD}
            for value in range(resumed, last + 1):
                assert received.get(float(value)) == writer.written[float(value)], value
    finally:
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writing
        await server.stop()


async def test_changes_under_the_deadband_are_not_reported() -> None:
    port = free_port()
    points = {
        "DB": {"node": node("T.DB"), "sampling_interval_ms": 0, "deadband": 0.5},
        "ALL": {"node": node("T.ALL"), "sampling_interval_ms": 0},  # the default: every change
    }
    device, tags = opcua_plant({"endpoint": f"opc.tcp://127.0.0.1:{port}/test/", **FAST}, points)
    source = OpcUaSource(device, tags)
    async with serving(UaServer(port, {"T.DB": 10.0, "T.ALL": 10.0})) as server, running(source) as emitted:
        await until_up(source, emitted, ["DB", "ALL"])
        steps = [10.1, 9.9, 10.2, 10.0, 10.3, 12.0]  # each within 0.5 of the one before, but the last
        for value in steps:
            await server.write("T.DB", value)
            await server.write("T.ALL", value)
        await until(lambda: emitted.values("DB")[-1] == 12.0, "the change beyond the deadband")
        await until(lambda: emitted.values("ALL")[-1] == 12.0, "every change of the unfiltered node")
        assert emitted.values("DB") == [10.0, 12.0]
        assert emitted.values("ALL") == [10.0, *steps]


async def test_a_subscription_gone_silent_is_rebuilt() -> None:
    port = free_port()
    points = {"X": {"node": node("T.X"), "sampling_interval_ms": 0}}
    device, tags = opcua_plant({"endpoint": f"opc.tcp://127.0.0.1:{port}/test/", **FAST}, points)
    source = OpcUaSource(device, tags)
    async with serving(UaServer(port, {"T.X": 1.0})) as server, running(source) as emitted:
        await until_up(source, emitted, ["X"])
        await server.silence_subscriptions()  # no data, no keep-alive; the session still answers
        stamp = await server.write("T.X", 5.0)
        await until(lambda: emitted.values("X")[-1] == 5.0, "the value through a rebuilt subscription")
        assert emitted.latest("X") == (stamp, 5.0, Quality.GOOD)


STATUSES = {
    "GOOD": (StatusCodes.Good, Quality.GOOD),
    "UNC": (StatusCodes.UncertainLastUsableValue, Quality.UNCERTAIN),
    "COMM": (StatusCodes.BadCommunicationError, Quality.BAD_COMM),
    "NOTC": (StatusCodes.BadNotConnected, Quality.BAD_COMM),
    "SENS": (StatusCodes.BadSensorFailure, Quality.INSTRUMENT_FAULT),
    "DEV": (StatusCodes.BadDeviceFailure, Quality.INSTRUMENT_FAULT),
    "OOS": (StatusCodes.BadOutOfService, Quality.OUT_OF_SERVICE),
    "CONF": (StatusCodes.BadConfigurationError, Quality.BAD),
}


async def test_status_codes_arrive_as_qualities_with_the_source_time() -> None:
    port = free_port()
    points = {name: {"node": node(f"T.{name}"), "sampling_interval_ms": 0} for name in STATUSES}
    device, tags = opcua_plant({"endpoint": f"opc.tcp://127.0.0.1:{port}/test/", **FAST}, points)
    source = OpcUaSource(device, tags)
    async with serving(UaServer(port, dict.fromkeys((f"T.{n}" for n in STATUSES), 0.0))) as server:
        for name, (status, _) in STATUSES.items():
            await server.write(f"T.{name}", 2.5, status, when=SOURCE_TIME)
        async with running(source) as emitted:
            await until_up(source, emitted, list(STATUSES))
            source_ms = int(SOURCE_TIME.timestamp() * 1000)
            for name, (_, quality) in STATUSES.items():
                value = 2.5 if quality.has_value else None
                assert emitted.latest(name) == (source_ms, value, quality), name

            stamp = await server.write("T.GOOD", 3.0, StatusCodes.BadOutOfService)  # taken out of service
            await until(lambda: emitted.quality("GOOD") == Quality.OUT_OF_SERVICE, "the status change")
            assert emitted.latest("GOOD") == (stamp, None, Quality.OUT_OF_SERVICE)
