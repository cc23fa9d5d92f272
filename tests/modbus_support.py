"""Helpers of the Modbus tests and bench: a real pymodbus server that records every read, register
images encoded the way a device lays them out, and a small plant of a test's own."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
import uuid
from collections.abc import AsyncIterator, Callable
from functools import partial

from pymodbus import FramerType
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice
from pymodbus.simulator.simutils import SimUtils

from gateway_agent.sources.modbus import ModbusSource
from hazardwatch.ledger.models import DataType
from hazardwatch.quality import Quality

# -- a plant of the test's own -----------------------------------------------------------------


def plant_text(enterprise: str, devices: list[str], tags: list[str], tag_range: str = "[0, 1]") -> str:
    """A one-gateway plant: ``devices`` as YAML flow mappings, ``tags`` as "CODE point: {...}"."""
    device_lines = "\n".join(f"          - {d}" for d in devices)
    tag_lines = "\n".join(
        f'              - {{code: {code}, name: t, kind: other, unit: "", range: {tag_range}, {point}}}'
        for code, point in (t.split(" ", 1) for t in tags)
    )
    return f"""
version: 1
enterprises:
  - code: {enterprise}
    name: 试验企业
    credit_code: 91330110MA2H3K7L01
    division: "330110"
    gateways:
      - id: gw1
        devices:
{device_lines}
    hazard_sources:
      - code: H1
        name: 罐区
        people_within_500m: 0
        chemicals: [{{name: 氨, max_quantity_t: 20}}]
        responsibles: {{principal: a, technical: b, operational: c}}
        equipment:
          - code: T1
            name: 罐
            kind: tank
            tags:
{tag_lines}
"""


def new_enterprise() -> str:
    return f"T{uuid.uuid4().hex[:10]}"


# -- register images ---------------------------------------------------------------------------


def words(fmt: str, value: float, byte_order: str = "big", word_order: str = "big") -> list[int]:
    """The registers a device holds for ``value`` packed as struct ``fmt``, in the given orders."""
    raw = struct.pack(">" + fmt, value)
    pairs = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    if byte_order == "little":
        pairs = [p[::-1] for p in pairs]
    if word_order == "little":
        pairs.reverse()
    return [int.from_bytes(p, "big") for p in pairs]


def encode(datatype: DataType, value: float, byte_order: str, word_order: str) -> list[int]:
    """The same image made by pymodbus' own encoder (its DATATYPE), bytes swapped by hand (it
    has no byte order): an encoder independent of the agent's decoder and of ``words``."""
    pymodbus_type = AsyncModbusTcpClient.DATATYPE[datatype.name]
    number = value if datatype in (DataType.FLOAT32, DataType.FLOAT64) else int(value)
    registers = AsyncModbusTcpClient.convert_to_registers(
        number, pymodbus_type, word_order="little" if word_order == "little" else "big"
    )
    if byte_order == "little":
        registers = [((r & 0xFF) << 8) | (r >> 8) for r in registers]
    return registers


# -- a real Modbus server ----------------------------------------------------------------------

_TABLE_BY_FUNCTION = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}


class Plc:
    """A pymodbus server whose units hold the images tests put there; it records every read.

    ``framer=FramerType.RTU`` serves RTU frames over TCP (a serial device server, the way pyserial's
    ``socket://`` reaches one). Units in ``silent`` take requests and never answer, as an absent
    slave on an RS-485 line.
    """

    def __init__(self, port: int, unit_ids: list[int], size: int = 64, framer: FramerType = FramerType.SOCKET,
                 silent: frozenset[int] = frozenset()) -> None:  # fmt: skip
        self.port = port
        self.framer = framer
        self.silent = silent
        self.registers = {u: {"holding": [0] * size, "input": [0] * size} for u in unit_ids}
        self.bits = {u: {"coil": [False] * size, "discrete": [False] * size} for u in unit_ids}
        self.reads: list[tuple[int, str, int, int]] = []  # (unit, table, address, count)
        self._server: ModbusTcpServer | None = None

    def put(self, unit: int, table: str, address: int, values: list[int]) -> None:
        self.registers[unit][table][address : address + len(values)] = values

    def _device(self, unit: int) -> SimDevice:
        size = len(self.registers[unit]["holding"])
        bits = [SimData(0, count=size, values=False, datatype=SimType.BITS)]
        regs = [SimData(0, count=size, values=0, datatype=SimType.REGISTERS)]
        simdata = (bits, list(bits), regs, list(regs))
        return SimDevice(unit, simdata=simdata, action=partial(self._action, unit))

    async def _action(self, unit: int, function_code: int, _start: int, address: int, count: int,
                      registers: list[int],
                      set_values: list[int] | list[bool] | None) -> ExcCodes | None:  # fmt: skip
        table = _TABLE_BY_FUNCTION.get(function_code)
        if table is None or set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION
        self.reads.append((unit, table, address, count))
        if table in self.bits[unit]:
            image = SimUtils.bitsToRegisters(self.bits[unit][table])
        else:
            image = self.registers[unit][table]
        registers[: len(image)] = image
        return None

    def _drop_silent_answers(self, sending: bool, packet: bytes) -> bytes:
        """An RTU frame starts with the unit address: a silent unit's answer is never sent."""
        if sending and self.framer == FramerType.RTU and packet and packet[0] in self.silent:
            return b""
        return packet

    async def start(self) -> None:
        server = ModbusTcpServer(
            [self._device(u) for u in self.registers], address=("127.0.0.1", self.port), framer=self.framer,
            trace_packet=self._drop_silent_answers,
        )  # fmt: skip
        await server.serve_forever(background=True)
        self._server = server

    @property
    def connections(self) -> int:
        """Clients connected now (a serial line's client is one, however many devices are on it)."""
        return 0 if self._server is None else len(self._server.active_connections)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None


@contextlib.asynccontextmanager
async def running(plc: Plc) -> AsyncIterator[Plc]:
    await plc.start()
    try:
        yield plc
    finally:
        await plc.stop()


async def until(probe: Callable[[], bool], what: str, timeout: float = 20) -> None:
    """Wait for ``probe`` with a deadline, never for a fixed time."""
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


Readings = dict[str, tuple[float | None, Quality]]


async def poll_once(*sources: ModbusSource) -> Readings:
    """One poll of every source at once: tag → (value, quality)."""
    readings: Readings = {}

    def emit(tag: str, _ts: int, value: float | None, quality: Quality) -> None:
        readings[tag] = (value, quality)

    await asyncio.gather(*(s.poll(emit) for s in sources))
    return readings
