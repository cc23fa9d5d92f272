"""The agent: every device of a gateway polled or subscribed, readings batched and published."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from pathlib import Path

from gateway_agent.publisher import Publisher
from gateway_agent.sources.base import Source
from gateway_agent.sources.modbus import ModbusSource
from gateway_agent.sources.opcua import OpcUaSource
from hazardwatch import wire
from hazardwatch.ledger import Enterprise, Gateway, Plant
from hazardwatch.quality import Quality
from hazardwatch.settings import MqttAddress

logger = logging.getLogger(__name__)


class Collector:
    """Readings emitted by the sources since the last batch was cut."""

    def __init__(self, gateway: str, max_batch: int) -> None:
        self._gateway = gateway
        self._max_batch = max_batch
        self._batch = wire.ReadingBatch(gateway=gateway, seq=0, sent_ms=0)
        self.full = asyncio.Event()

    def emit(self, tag: str, ts_ms: int, value: float | None, quality: Quality) -> None:
        self._batch.append(tag, ts_ms, value, quality)
        if len(self._batch) >= self._max_batch:
            self.full.set()

    def __len__(self) -> int:
        return len(self._batch)

    def cut(self) -> wire.ReadingBatch:
        batch, self._batch = self._batch, wire.ReadingBatch(gateway=self._gateway, seq=0, sent_ms=0)
        self.full.clear()
        batch.sent_ms = time.time_ns() // 1_000_000
        return batch


def build_sources(enterprise: Enterprise, gateway: Gateway) -> list[Source]:
    locks: dict[tuple[str, int], asyncio.Lock] = {}
    sources: list[Source] = []
    modbus_devices = [d for d in gateway.devices if d.protocol == "modbus_tcp"]
    for device in gateway.devices:
        tags = enterprise.tags_of_device(device.id)
        if not tags:
            continue
        if device.protocol == "modbus_tcp":
            lock = locks.setdefault((device.host, device.port), asyncio.Lock())
            # stagger the first polls across the period so devices do not poll in lockstep
            delay = device.poll_interval_s * modbus_devices.index(device) / max(len(modbus_devices), 1)
            sources.append(ModbusSource(device, tags, lock, start_delay_s=delay))
        else:
            sources.append(OpcUaSource(device, tags))
    return sources


async def run_gateway(enterprise: Enterprise, gateway: Gateway, mqtt: MqttAddress, *, state_dir: Path,
                      publish_interval_s: float = 0.5, max_batch: int = 5000,
                      stop: asyncio.Event) -> None:  # fmt: skip
    """One gateway: its sources feed one collector, cut into a batch every interval or when full."""
    publisher = Publisher(enterprise.code, gateway.id, mqtt, state_dir)
    collector = Collector(gateway.id, max_batch)
    sources = build_sources(enterprise, gateway)
    publisher.start()
    tasks = [asyncio.create_task(s.run(collector.emit, stop), name=f"source-{s.device_id}") for s in sources]
    logger.info("gateway %s/%s: %d sources", enterprise.code, gateway.id, len(sources))
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(collector.full.wait(), publish_interval_s)
            if len(collector):
                # numbering writes (and fsyncs) the sequence file: keep that off the event loop
                await asyncio.to_thread(publisher.submit, collector.cut())
    finally:
        stop.set()
        if _cancelling():  # cancelled rather than stopped: do not wait for the sources' next turn
            for task in tasks:
                task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                logger.error("gateway %s/%s: a source failed: %r", enterprise.code, gateway.id, result)
        if len(collector):
            await asyncio.to_thread(publisher.submit, collector.cut())
        await asyncio.to_thread(publisher.stop)


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def run_agent(plant: Plant, mqtt: MqttAddress, *, state_dir: Path, enterprise: str | None = None,
                    gateway: str | None = None, publish_interval_s: float = 0.5,
                    stop: asyncio.Event | None = None) -> None:  # fmt: skip
    """Run every gateway of the plant (or the selected ones) in this process until ``stop`` is set."""
    stop = stop or asyncio.Event()
    selected = select_gateways(plant, enterprise, gateway)
    async with asyncio.TaskGroup() as group:
        for e, g in selected:
            group.create_task(
                run_gateway(
                    e, g, mqtt, state_dir=state_dir, publish_interval_s=publish_interval_s, stop=stop
                ),
                name=f"gateway-{e.code}-{g.id}",
            )


def select_gateways(plant: Plant, enterprise: str | None = None,
                    gateway: str | None = None) -> list[tuple[Enterprise, Gateway]]:  # fmt: skip
    """The (enterprise, gateway) pairs to run; ValueError when the selection matches none."""
    selected = [
        (e, g)
        for e in plant.enterprises
        if enterprise is None or e.code == enterprise
        for g in e.gateways
        if gateway is None or g.id == gateway
    ]
    if not selected:
        raise ValueError(f"no gateway matches enterprise={enterprise!r} gateway={gateway!r}")
    return selected


def serve(plant: Plant, mqtt: MqttAddress, *, state_dir: Path, enterprise: str | None = None,
          gateway: str | None = None) -> None:  # fmt: skip
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_agent(plant, mqtt, state_dir=state_dir, enterprise=enterprise, gateway=gateway, stop=stop)

    asyncio.run(main())
