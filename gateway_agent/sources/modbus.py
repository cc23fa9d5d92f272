"""Modbus polling with block reads, over TCP or a serial line (RTU): one poll in flight per device.

A device reaches its slave through a link: a TCP endpoint (host:port), where each device keeps a
connection of its own, or a serial bus (one port, RS-485), where the devices share one client and
the line stays silent for the inter-frame gap after every request. The devices of one link take
turns under its lock, a whole poll at a time.

Comm state machine: CONNECTING → UP ⇄ DOWN. A refused connection or a timeout takes the device
DOWN: every tag gets a BAD_COMM reading each poll (a dead device is never silent), its connection
is dropped (a serial line stays open for the other devices on it) and reconnecting waits a capped
exponential backoff. An exception response (the device answers but refuses a block) gives BAD_COMM
to that block's tags only. Each transition is logged once (down once, recovered once; a refused
block once until it answers again).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol, TypeVar

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from gateway_agent.decode import decode_point
from gateway_agent.sources.base import CommState, Emit
from gateway_agent.sources.blocks import Block, plan_blocks
from hazardwatch.ledger.models import ModbusDevice, ModbusRtuDevice, ModbusTable, Tag
from hazardwatch.quality import Quality

logger = logging.getLogger(__name__)

MIN_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0

Client = AsyncModbusTcpClient | AsyncModbusSerialClient
AnyModbusDevice = ModbusDevice | ModbusRtuDevice
_C = TypeVar("_C", AsyncModbusTcpClient, AsyncModbusSerialClient)


class Link(Protocol):
    """The way the devices of one TCP endpoint or one serial line reach it, taking turns."""

    lock: asyncio.Lock
    where: str

    def join(self) -> None: ...

    def leave(self) -> None: ...

    async def open(self, timeout_s: float) -> Client | None:
        """A connected client for one device, or None if it cannot connect."""
        ...

    def release(self, client: Client) -> None:
        """The device is done with ``client`` (it failed, or the device stops)."""
        ...

    async def pause(self) -> None:
        """Wait out what the link needs between two requests."""
        ...


class TcpEndpoint:
    """A Modbus TCP endpoint (host:port): its devices connect each on its own and share the lock."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.lock = asyncio.Lock()
        self.where = f"{host}:{port}"

    def join(self) -> None:
        """Nothing but the lock is shared: nothing to count."""

    def leave(self) -> None:
        """Each device closes its own connection."""

    async def open(self, timeout_s: float) -> AsyncModbusTcpClient | None:
        client = AsyncModbusTcpClient(self.host, port=self.port, timeout=timeout_s, retries=0,
                                      reconnect_delay=0)  # fmt: skip
        return await _connected(client)

    def release(self, client: Client) -> None:
        client.close()  # a late answer must not be taken for the next request's

    async def pause(self) -> None:
        return


class SerialBus:
    """One serial line (RS-485) and the RTU devices on it: one client, one lock, the frame gap.

    A serial port can be opened once, and only one request may be on the line at a time: the
    devices of a bus share its client and take turns under its lock, with the inter-frame silence
    kept after every request — the longest any device on the line asks for. The client waits as
    long as the slowest device; each request is cut at its own device's timeout. The client is
    closed when the last device leaves.
    """

    def __init__(self, devices: list[ModbusRtuDevice], *,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:  # fmt: skip
        """``devices`` are every device on one port (the ledger makes their line settings agree)."""
        self._line = devices[0]
        self.where = self._line.port
        self.lock = asyncio.Lock()
        self.gap_s = max(d.frame_gap_s for d in devices)
        self.timeout_s = max(d.timeout_s for d in devices)
        self._sleep = sleep
        self._client: AsyncModbusSerialClient | None = None
        self._users = 0

    def join(self) -> None:
        self._users += 1

    def leave(self) -> None:
        self._users -= 1
        if self._users <= 0:
            self.close()

    async def open(self, timeout_s: float) -> AsyncModbusSerialClient | None:
        """The line's client, opened again if it was lost (``timeout_s``: see the class)."""
        if self._client is not None and self._client.connected:
            return self._client
        self.close()
        line = self._line
        client = AsyncModbusSerialClient(
            line.port, framer=FramerType.RTU, baudrate=line.baudrate, bytesize=line.bytesize,
            parity=line.parity, stopbits=line.stopbits, timeout=self.timeout_s, retries=0,
            reconnect_delay=0,
        )  # fmt: skip
        self._client = await _connected(client)
        return self._client

    def release(self, client: Client) -> None:
        """A device that failed leaves the line open for the others; a lost line reopens on open()."""

    async def pause(self) -> None:
        await self._sleep(self.gap_s)  # the line stays silent between frames

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def modbus_links(devices: Iterable[AnyModbusDevice]) -> dict[str, Link]:
    """The link of every device, by device id: one TCP endpoint per host:port, one bus per port."""
    devices = list(devices)
    lines: dict[str, list[ModbusRtuDevice]] = {}
    for device in devices:
        if isinstance(device, ModbusRtuDevice):
            lines.setdefault(device.port, []).append(device)
    buses = {port: SerialBus(members) for port, members in lines.items()}
    endpoints: dict[tuple[str, int], TcpEndpoint] = {}
    links: dict[str, Link] = {}
    for device in devices:
        if isinstance(device, ModbusRtuDevice):
            links[device.id] = buses[device.port]
            continue
        key = (device.host, device.port)
        if key not in endpoints:
            endpoints[key] = TcpEndpoint(*key)
        links[device.id] = endpoints[key]
    return links


class ModbusSource:
    def __init__(self, device: AnyModbusDevice, tags: list[Tag], link: Link, *,
                 max_gap: int | None = None, start_delay_s: float = 0.0) -> None:  # fmt: skip
        self.device_id = device.id
        self._device = device
        self._blocks = plan_blocks(tags, device.max_gap if max_gap is None else max_gap)
        self._link = link
        self._start_delay_s = start_delay_s
        self._state = CommState.CONNECTING
        self._client: Client | None = None
        self._retry_at = 0.0
        self._backoff = MIN_BACKOFF_S
        self._rejected: set[tuple[ModbusTable, int]] = set()
        self._joined = True
        link.join()
        self.requests = 0

    @property
    def state(self) -> CommState:
        return self._state

    @property
    def blocks(self) -> list[Block]:
        return self._blocks

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        period = self._device.poll_interval_s
        try:
            await _wait(stop, self._start_delay_s)
            next_poll = time.monotonic()
            while not stop.is_set():
                try:
                    await self.poll(emit)
                except Exception:  # the supervisor loop: a bug must not silence the device
                    logger.exception("modbus device %s: poll failed", self.device_id)
                    self._drop()
                    self._emit_bad(emit, self._blocks, _now_ms())
                next_poll += period
                now = time.monotonic()
                if next_poll < now:  # overran: skip missed cycles rather than bunch up
                    next_poll = now
                await _wait(stop, next_poll - now)
        finally:
            self.close()

    def close(self) -> None:
        """Drop the connection and leave the link (the last device on a serial line closes it)."""
        self._drop()
        if self._joined:
            self._joined = False
            self._link.leave()

    async def poll(self, emit: Emit) -> None:
        """One poll cycle: every block read once, all readings stamped with the poll time."""
        async with self._link.lock:
            now = _now_ms()
            if not await self._ensure_connected():
                self._emit_bad(emit, self._blocks, now)
                return
            for index, block in enumerate(self._blocks):
                registers = await self._read(block)
                if registers is None:
                    if self._client is None:  # the connection is gone: the rest fails too
                        self._emit_bad(emit, self._blocks[index:], now)
                        return
                    self._emit_bad(emit, [block], now)
                    continue
                self._emit_block(emit, block, registers, now)

    async def _ensure_connected(self) -> bool:
        if self._client is not None and self._client.connected:
            return True
        if time.monotonic() < self._retry_at:
            return False
        self._drop()
        self._client = await self._link.open(self._device.timeout_s)
        if self._client is None:
            self._down("cannot connect")
            return False
        return True

    async def _read(self, block: Block) -> list[int] | None:
        """The block's words (bits as 0/1), or None: after a transport failure the client is dropped."""
        assert self._client is not None  # noqa: S101 - connected above
        reader: Any = {
            ModbusTable.HOLDING: self._client.read_holding_registers,
            ModbusTable.INPUT: self._client.read_input_registers,
            ModbusTable.COIL: self._client.read_coils,
            ModbusTable.DISCRETE: self._client.read_discrete_inputs,
        }[block.table]
        self.requests += 1
        try:
            async with asyncio.timeout(self._device.timeout_s):
                response = await reader(block.start, count=block.count, device_id=self._device.unit_id)
        except (TimeoutError, ModbusException, OSError) as err:
            silent = isinstance(err, TimeoutError)
            self._down(
                f"no answer within {self._device.timeout_s} s" if silent else f"{type(err).__name__}: {err}"
            )
            self._drop()
            return None
        finally:
            await self._link.pause()
        self._up()  # it answered, even if with an exception response
        if response.isError():
            self._reject(block, f"exception response {response}")
            return None
        self._accept(block)
        if block.table in (ModbusTable.COIL, ModbusTable.DISCRETE):
            return [int(bit) for bit in response.bits[: block.count]]
        registers: list[int] = list(response.registers)
        if len(registers) < block.count:
            self._reject(block, f"short answer: {len(registers)} of {block.count} registers")
            return None
        return registers

    def _reject(self, block: Block, why: str) -> None:
        """A block the device refuses (e.g. illegal address): logged once until it answers again."""
        key = (block.table, block.start)
        if key not in self._rejected:
            logger.warning("modbus device %s: %s %d+%d rejected: %s", self.device_id, block.table,
                           block.start, block.count, why)  # fmt: skip
            self._rejected.add(key)

    def _accept(self, block: Block) -> None:
        key = (block.table, block.start)
        if key in self._rejected:
            self._rejected.discard(key)
            logger.info("modbus device %s: %s %d+%d answers again", self.device_id, block.table,
                        block.start, block.count)  # fmt: skip

    def _emit_block(self, emit: Emit, block: Block, registers: list[int], now: int) -> None:
        for tag in block.tags:
            point = tag.modbus
            assert point is not None  # noqa: S101
            offset = point.address - block.start
            value, quality = decode_point(
                registers[offset : offset + point.datatype.registers], point, tag.range
            )
            emit(tag.code, now, value, quality)

    def _emit_bad(self, emit: Emit, blocks: list[Block], now: int) -> None:
        for block in blocks:
            for tag in block.tags:
                emit(tag.code, now, None, Quality.BAD_COMM)

    def _down(self, why: str) -> None:
        if self._state != CommState.DOWN:
            logger.warning("modbus device %s (%s unit %s) down: %s", self.device_id, self._link.where,
                           self._device.unit_id, why)  # fmt: skip
        self._state = CommState.DOWN
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)

    def _up(self) -> None:
        if self._state == CommState.DOWN:
            logger.info("modbus device %s recovered", self.device_id)
        self._state = CommState.UP
        self._backoff = MIN_BACKOFF_S

    def _drop(self) -> None:
        if self._client is not None:
            self._link.release(self._client)
            self._client = None


async def _connected(client: _C) -> _C | None:
    """The client once connected, or None (closed) if it cannot connect."""
    try:
        connected = await client.connect()
    except (OSError, ModbusException):  # pymodbus answers False, but a transport may raise
        connected = False
    if not connected:
        client.close()
        return None
    return client


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        return
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return
