"""Modbus TCP and RTU polling with block reads: one poll in flight per device, one lock per endpoint
(TCP) or serial line (RTU, which also keeps the inter-frame silence).

Comm state machine: CONNECTING → UP ⇄ DOWN. A refused connection or a timeout takes the device
DOWN: every tag gets a BAD_COMM reading each poll (a dead device is never silent), the client is
closed and reconnecting waits a capped exponential backoff. An exception response (the device
answers but refuses a block) gives BAD_COMM to that block's tags only. Each transition is logged
once (down once, recovered once; a refused block once until it answers again).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from serial import SerialException

from gateway_agent.decode import decode_point
from gateway_agent.sources.base import CommState, Emit
from gateway_agent.sources.blocks import Block, plan_blocks
from hazardwatch.ledger.models import ModbusDevice, ModbusRtuDevice, ModbusTable, Tag
from hazardwatch.quality import Quality

logger = logging.getLogger(__name__)

MIN_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0


Client = AsyncModbusTcpClient | AsyncModbusSerialClient


class SerialBus:
    """One serial line (RS-485) and the RTU devices on it: one client, one lock, the frame gap.

    A serial port can be opened once, and only one request may be on the line at a time: the
    devices of a bus share its client and take turns under its lock, with the inter-frame silence
    kept after every request. The client is closed when the last device stops.
    """

    def __init__(self, device: ModbusRtuDevice) -> None:
        self.port = device.port
        self.lock = asyncio.Lock()
        self.gap_s = device.frame_gap_s
        self._line = device
        self._client: AsyncModbusSerialClient | None = None
        self._users = 0

    def join(self) -> None:
        self._users += 1

    def leave(self) -> None:
        self._users -= 1
        if self._users <= 0:
            self.close()

    async def connect(self, timeout_s: float) -> AsyncModbusSerialClient | None:
        if self._client is not None and self._client.connected:
            return self._client
        self.close()
        line = self._line
        client = AsyncModbusSerialClient(
            line.port, framer=FramerType.RTU, baudrate=line.baudrate, bytesize=line.bytesize,
            parity=line.parity, stopbits=line.stopbits, timeout=timeout_s, retries=0, reconnect_delay=0,
        )  # fmt: skip
        try:
            connected = await client.connect()
        except (OSError, ModbusException, SerialException):
            connected = False
        if not connected:
            client.close()
            return None
        self._client = client
        return client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class ModbusSource:
    def __init__(self, device: ModbusDevice | ModbusRtuDevice, tags: list[Tag],
                 lock: asyncio.Lock | None = None, *, bus: SerialBus | None = None,
                 max_gap: int | None = None, start_delay_s: float = 0.0) -> None:  # fmt: skip
        """A TCP device takes the lock of its endpoint; an RTU device the bus it is on."""
        if bus is not None:
            lock = bus.lock
        if lock is None:
            raise ValueError("a Modbus source needs an endpoint lock (TCP) or a serial bus (RTU)")
        self.device_id = device.id
        self._device = device
        self._blocks = plan_blocks(tags, device.max_gap if max_gap is None else max_gap)
        self._bus = bus
        self._lock = lock
        self._start_delay_s = start_delay_s
        self._state = CommState.CONNECTING
        self._client: Client | None = None
        if bus is not None:
            bus.join()
        self._retry_at = 0.0
        self._backoff = MIN_BACKOFF_S
        self._rejected: set[tuple[ModbusTable, int]] = set()
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
                    self._close()
                    self._emit_bad(emit, self._blocks, _now_ms())
                next_poll += period
                now = time.monotonic()
                if next_poll < now:  # overran: skip missed cycles rather than bunch up
                    next_poll = now
                await _wait(stop, next_poll - now)
        finally:
            self._close()
            if self._bus is not None:
                self._bus.leave()

    async def poll(self, emit: Emit) -> None:
        """One poll cycle: every block read once, all readings stamped with the poll time."""
        async with self._lock:
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
        self._close()
        if self._bus is not None:
            serial = await self._bus.connect(self._device.timeout_s)
            if serial is None:
                self._down(f"cannot open serial port {self._bus.port}")
                return False
            self._client = serial
            return True
        device = self._device
        assert isinstance(device, ModbusDevice)  # noqa: S101 - no bus: TCP
        client = AsyncModbusTcpClient(
            device.host, port=device.port, timeout=device.timeout_s, retries=0, reconnect_delay=0,
        )  # fmt: skip
        try:
            connected = await client.connect()
        except (OSError, ModbusException):
            connected = False
        if not connected:
            client.close()
            self._down("cannot connect")
            return False
        self._client = client
        return True

    async def _read(self, block: Block) -> list[int] | None:
        """The block's words (bits as 0/1), or None: after a transport failure the client is closed."""
        assert self._client is not None  # noqa: S101 - connected above
        reader: Any = {
            ModbusTable.HOLDING: self._client.read_holding_registers,
            ModbusTable.INPUT: self._client.read_input_registers,
            ModbusTable.COIL: self._client.read_coils,
            ModbusTable.DISCRETE: self._client.read_discrete_inputs,
        }[block.table]
        self.requests += 1
        try:
            response = await reader(block.start, count=block.count, device_id=self._device.unit_id)
        except (TimeoutError, ModbusException, OSError) as err:
            self._down(f"{type(err).__name__}: {err}")
            self._close()  # a late answer must not be taken for the next request's
            return None
        finally:
            if self._bus is not None:
                await asyncio.sleep(self._bus.gap_s)  # the line stays silent between frames
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
            logger.warning("modbus device %s (%s unit %s) down: %s", self.device_id, self._where,
                           self._device.unit_id, why)  # fmt: skip
        self._state = CommState.DOWN
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)

    @property
    def _where(self) -> str:
        device = self._device
        return device.port if isinstance(device, ModbusRtuDevice) else f"{device.host}:{device.port}"

    def _up(self) -> None:
        if self._state == CommState.DOWN:
            logger.info("modbus device %s recovered", self.device_id)
        self._state = CommState.UP
        self._backoff = MIN_BACKOFF_S

    def _close(self) -> None:
        """Drop this device's connection; a shared serial line stays open for the others."""
        if self._client is not None and self._bus is None:
            self._client.close()
        self._client = None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        return
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return
