"""The agent: every device of a gateway polled or subscribed, readings batched, buffered, published.

Per gateway: the sources emit readings into a :class:`Collector`; every ``publish_interval_s``
(or when full) the collector is cut into a batch that the :class:`Publisher` commits to the
store-and-forward buffer and sends. Every ``heartbeat_s`` the gateway's health is published
(retained), written to ``<state dir>/<enterprise>-<gateway>.health.json`` for
``hazardwatch agent status``, and exposed on the Prometheus endpoint.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import signal
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway_agent import remote_config
from gateway_agent.buffer import Buffer, Durability
from gateway_agent.publisher import Publisher
from gateway_agent.sources.base import CommState, Emit, Source
from gateway_agent.sources.modbus import ModbusSource, modbus_links
from gateway_agent.sources.opcua import OpcUaSource
from hazardwatch import wire
from hazardwatch.errors import ConfigError
from hazardwatch.ledger import Enterprise, Gateway, ModbusDevice, ModbusRtuDevice, Plant
from hazardwatch.quality import Quality
from hazardwatch.settings import MqttAddress

logger = logging.getLogger(__name__)

HEALTH_VERSION = 1


@dataclass(slots=True)
class DeviceCounters:
    """What the agent saw of one device: readings by quality and how late they arrive."""

    readings: int = 0
    bad: int = 0  # readings without a value (BAD, BAD_COMM, INSTRUMENT_FAULT, …)
    last_reading_ms: int | None = None
    latency_ms: float | None = None  # arrival minus source time of the latest reading
    latency_max_ms: float = 0.0  # since the last heartbeat


class Collector:
    """Readings emitted by the sources since the last batch was cut."""

    def __init__(self, gateway: str, max_batch: int) -> None:
        self._gateway = gateway
        self._max_batch = max_batch
        self._batch = wire.ReadingBatch(gateway=gateway, seq=0, sent_ms=0)
        self.full = asyncio.Event()
        self.devices: dict[str, DeviceCounters] = {}

    def emit(self, tag: str, ts_ms: int, value: float | None, quality: Quality) -> None:
        self._batch.append(tag, ts_ms, value, quality)
        if len(self._batch) >= self._max_batch:
            self.full.set()

    def emitter(self, device_id: str) -> Emit:
        """An ``emit`` for one device's source that also keeps that device's counters."""
        counters = self.devices.setdefault(device_id, DeviceCounters())

        def emit(tag: str, ts_ms: int, value: float | None, quality: Quality) -> None:
            now = time.time_ns() // 1_000_000
            counters.readings += 1
            counters.bad += not quality.has_value
            counters.last_reading_ms = now
            counters.latency_ms = float(now - ts_ms)
            counters.latency_max_ms = max(counters.latency_max_ms, counters.latency_ms)
            self.emit(tag, ts_ms, value, quality)

        return emit

    def __len__(self) -> int:
        return len(self._batch)

    def cut(self) -> wire.ReadingBatch:
        batch, self._batch = self._batch, wire.ReadingBatch(gateway=self._gateway, seq=0, sent_ms=0)
        self.full.clear()
        batch.sent_ms = time.time_ns() // 1_000_000
        return batch


def build_sources(enterprise: Enterprise, gateway: Gateway) -> list[Source]:
    """A source per device with tags. Modbus devices take turns on their link (a lock per TCP
    endpoint; one client, lock and frame gap per serial line), and their first polls are staggered
    over the period so devices do not poll in lockstep."""
    modbus_devices = [d for d in gateway.devices if isinstance(d, ModbusDevice | ModbusRtuDevice)]
    links = modbus_links(modbus_devices)
    sources: list[Source] = []
    for device in gateway.devices:
        tags = enterprise.tags_of_device(device.id)
        if not tags:
            continue
        if isinstance(device, ModbusDevice | ModbusRtuDevice):
            delay = device.poll_interval_s * modbus_devices.index(device) / len(modbus_devices)
            sources.append(ModbusSource(device, tags, links[device.id], start_delay_s=delay))
        else:
            sources.append(OpcUaSource(device, tags))
    return sources


def buffer_path(state_dir: Path, enterprise: str, gateway: str) -> Path:
    return state_dir / f"{enterprise}-{gateway}.buffer.sqlite3"


def health_path(state_dir: Path, enterprise: str, gateway: str) -> Path:
    return state_dir / f"{enterprise}-{gateway}.health.json"


class SourceSet:
    """The sources of one configuration, running under a stop event of their own."""

    def __init__(self, enterprise: Enterprise, gateway: Gateway, collector: Collector) -> None:
        self.sources = build_sources(enterprise, gateway)
        self._collector = collector
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._label = f"{enterprise.code}/{gateway.id}"

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(
                s.run(self._collector.emitter(s.device_id), self._stop), name=f"source-{s.device_id}"
            )
            for s in self.sources
        ]

    async def stop(self, *, cancel: bool = False) -> None:
        """Stop every source (at its next turn, or at once with ``cancel``) and wait for it."""
        self._stop.set()
        if cancel:
            for task in self._tasks:
                task.cancel()
        for result in await asyncio.gather(*self._tasks, return_exceptions=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                logger.error("gateway %s: a source failed: %r", self._label, result)

    def up(self) -> set[str]:
        return {s.device_id for s in self.sources if s.state == CommState.UP}


@dataclass
class ConfigStatus:
    """Which configuration runs, and what became of the last one pushed."""

    version: str
    origin: str  # "devices file" or "pushed"
    status: str = "applied"  # applied | rejected | rolled back
    error: str | None = None
    at_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)


MAX_UNSAVED_BATCHES = 2_000  # about 15 minutes of batches at the default interval


class Unsaved:
    """Batches the buffer could not commit (a full disk, an I/O error), held in memory in order
    and committed first at the next turn, so the gateway keeps reading instead of dying.

    Bounded: beyond ``limit`` the oldest are dropped, counted and logged. What is here is in memory
    only: the heartbeat reports it, with the error, until the buffer takes it.
    """

    def __init__(self, limit: int = MAX_UNSAVED_BATCHES) -> None:
        self.limit = limit
        self.batches: collections.deque[wire.ReadingBatch] = collections.deque()
        self.error: str | None = None
        self.dropped_batches = 0
        self.dropped_readings = 0

    def commit(self, publisher: Publisher, batch: wire.ReadingBatch | None) -> None:
        """Commit what is held, then ``batch``, in order; keep what the buffer refuses (disk I/O)."""
        if batch is not None:
            self.batches.append(batch)
        while self.batches:
            try:
                publisher.submit(self.batches[0])
            except (sqlite3.Error, OSError) as err:
                if self.error is None:
                    logger.exception("gateway %s/%s: the buffer cannot commit; batches are held in memory"
                                     " (at most %d) until it can", publisher.enterprise, publisher.gateway,
                                     self.limit)  # fmt: skip
                self.error = str(err)
                break
            self.batches.popleft()
        while len(self.batches) > self.limit:
            self.dropped_batches += 1
            self.dropped_readings += len(self.batches.popleft())
        if not self.batches and self.error is not None:
            logger.warning("gateway %s/%s: the buffer commits again (%d batches dropped meanwhile)",
                           publisher.enterprise, publisher.gateway, self.dropped_batches)  # fmt: skip
            self.error = None


@dataclass
class GatewayRuntime:
    """One running gateway, as the heartbeat, the metrics endpoint and tests see it."""

    enterprise: Enterprise
    gateway: Gateway
    publisher: Publisher
    collector: Collector
    source_set: SourceSet
    config: ConfigStatus
    started_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)
    unsaved: Unsaved = field(default_factory=Unsaved)

    @property
    def sources(self) -> list[Source]:
        return self.source_set.sources

    @property
    def key(self) -> tuple[str, str]:
        return self.enterprise.code, self.gateway.id

    def health(self) -> dict[str, Any]:
        """The heartbeat document (JSON-ready)."""
        now = time.time_ns() // 1_000_000
        stats = self.publisher.buffer.stats()
        publisher = self.publisher
        devices = []
        for source in self.sources:
            counters = self.collector.devices.get(source.device_id, DeviceCounters())
            devices.append({
                "id": source.device_id,
                "state": str(source.state),
                "readings": counters.readings,
                "bad_readings": counters.bad,
                "last_reading_ms": counters.last_reading_ms,
                "latency_ms": counters.latency_ms,
                "latency_max_ms": counters.latency_max_ms,
            })  # fmt: skip
            counters.latency_max_ms = 0.0
        return {
            "v": HEALTH_VERSION,
            "enterprise": self.enterprise.code,
            "gateway": self.gateway.id,
            "at": now,
            "pid": os.getpid(),
            "started": self.started_ms,
            "heartbeat_s": self.gateway.heartbeat_s,
            "mqtt": {
                "connected": publisher.connected.is_set(),
                "connects": publisher.connects,
                "published": publisher.published,
                "replayed": publisher.replayed,
                "acked": publisher.acked,
                "in_flight": publisher.in_flight,
            },
            "buffer": {
                "batches": stats.depth,
                "readings": stats.readings,
                "bytes": stats.bytes,
                "oldest_age_s": None if stats.oldest_ms is None else max(now - stats.oldest_ms, 0) / 1000,
                "next_seq": stats.next_seq,
                "produced_batches": stats.put_batches,
                "produced_readings": stats.put_readings,
                "dropped_batches": stats.dropped_batches,
                "dropped_readings": stats.dropped_readings,
                "kept_batches": stats.kept_batches,
                "unsaved_batches": len(self.unsaved.batches),
                "unsaved_dropped_batches": self.unsaved.dropped_batches,
                "error": self.unsaved.error,
                "resent_batches": stats.resent_batches,
                "durability": self.gateway.buffer.durability,
            },
            "devices": devices,
            "clock_offset_ms": publisher.clock_offset_ms,
            "conflict": publisher.conflict,
            "config": {
                "version": self.config.version,
                "origin": self.config.origin,
                "status": self.config.status,
                "error": self.config.error,
                "at": self.config.at_ms,
            },
        }


async def run_gateway(enterprise: Enterprise, gateway: Gateway, mqtt: MqttAddress, *, state_dir: Path,
                      stop: asyncio.Event, publish_interval_s: float | None = None, max_batch: int = 5000,
                      runtimes: dict[tuple[str, str], GatewayRuntime] | None = None) -> bool:  # fmt: skip
    """One gateway: its sources feed one collector, cut into a batch every interval or when full.

    The buffer's bounds and durability are taken at start; a pushed configuration changes the
    devices, tags, publish interval and heartbeat while running. Returns True when it stood down
    because another agent runs as the same gateway (the others of the process run on).
    """
    policy = gateway.buffer
    buffer = await asyncio.to_thread(
        Buffer,
        buffer_path(state_dir, enterprise.code, gateway.id),
        max_bytes=int(policy.max_mb * 1024 * 1024),
        max_age_s=policy.max_age_h * 3600,
        durability=Durability(policy.durability),
        keep_sent_s=policy.keep_sent_h * 3600,
        keep_sent_bytes=int(policy.keep_sent_mb * 1024 * 1024),
    )
    loop = asyncio.get_running_loop()
    pushes: asyncio.Queue[bytes] = asyncio.Queue()

    def on_config(raw: bytes) -> None:  # on paho's network thread
        loop.call_soon_threadsafe(pushes.put_nowait, raw)

    publisher = Publisher(enterprise.code, gateway.id, mqtt, buffer, on_config=on_config)
    collector = Collector(gateway.id, max_batch)
    sources = SourceSet(enterprise, gateway, collector)
    config = ConfigStatus(remote_config.version_of(enterprise), "devices file")
    runtime = GatewayRuntime(enterprise, gateway, publisher, collector, sources, config)
    if runtimes is not None:
        runtimes[runtime.key] = runtime
    publisher.start()
    runtime.source_set.start()
    logger.info("gateway %s/%s: %d sources", enterprise.code, gateway.id, len(runtime.sources))
    next_heartbeat = time.monotonic()
    try:
        while not stop.is_set() and publisher.conflict is None:
            interval = (
                publish_interval_s if publish_interval_s is not None else runtime.gateway.publish_interval_s
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(collector.full.wait(), interval)
            if len(collector) or runtime.unsaved.batches:
                # committing to the buffer fsyncs: keep that off the event loop
                await asyncio.to_thread(runtime.unsaved.commit, publisher, _cut(collector))
            await asyncio.to_thread(publisher.tick)
            while not pushes.empty() and not stop.is_set():
                await apply_push(runtime, pushes.get_nowait())
                next_heartbeat = 0.0  # tell the platform at once
            if time.monotonic() >= next_heartbeat:
                next_heartbeat = time.monotonic() + runtime.gateway.heartbeat_s
                await asyncio.to_thread(_heartbeat, runtime, state_dir)
    finally:
        if publisher.conflict is None:
            stop.set()
        # cancelled rather than stopped: do not wait for the sources' next turn
        await runtime.source_set.stop(cancel=_cancelling())
        if len(collector) or runtime.unsaved.batches:
            await asyncio.to_thread(runtime.unsaved.commit, publisher, _cut(collector))
        await asyncio.to_thread(publisher.stop)
        await asyncio.to_thread(_heartbeat, runtime, state_dir, publish=False)
        await asyncio.to_thread(buffer.close)
        if runtimes is not None:
            runtimes.pop(runtime.key, None)
    return publisher.conflict is not None


async def apply_push(runtime: GatewayRuntime, raw: bytes) -> None:
    """Validate a pushed configuration and swap the sources; roll back if the new ones do not start.

    "Do not start" means: building them fails, or a device that answered under the old
    configuration does not answer under the new one within its start time. A device that was
    down before may stay down (the new configuration is not to blame).
    """
    label = f"{runtime.enterprise.code}/{runtime.gateway.id}"
    try:
        pushed = remote_config.parse(raw, runtime.enterprise.code, runtime.gateway.id)
    except ConfigError as err:
        logger.warning("gateway %s: pushed configuration rejected: %s", label, err)
        runtime.config = ConfigStatus(runtime.config.version, runtime.config.origin, "rejected", str(err))
        return
    if pushed.version == runtime.config.version:
        return  # the retained push of what already runs
    try:
        candidate = SourceSet(pushed.enterprise, pushed.gateway, runtime.collector)
    except Exception as err:  # noqa: BLE001 - any failure to build is a rejection, reported
        logger.warning("gateway %s: pushed configuration %s cannot be built: %r", label, pushed.version, err)
        runtime.config = ConfigStatus(runtime.config.version, runtime.config.origin, "rejected", repr(err))
        return
    old = runtime.source_set
    answered = old.up()
    await old.stop()
    candidate.start()
    failed = await _wait_started(
        candidate, answered & {s.device_id for s in candidate.sources}, pushed.gateway
    )
    if not failed:
        runtime.enterprise, runtime.gateway, runtime.source_set = pushed.enterprise, pushed.gateway, candidate
        runtime.config = ConfigStatus(pushed.version, "pushed")
        logger.info("gateway %s: pushed configuration %s applied (%d sources)", label, pushed.version,
                    len(candidate.sources))  # fmt: skip
        return
    await candidate.stop(cancel=True)
    restored = SourceSet(runtime.enterprise, runtime.gateway, runtime.collector)
    restored.start()
    runtime.source_set = restored
    why = f"devices did not answer under the new configuration: {', '.join(sorted(failed))}"
    runtime.config = ConfigStatus(runtime.config.version, runtime.config.origin, "rolled back", why)
    logger.warning("gateway %s: pushed configuration %s rolled back: %s", label, pushed.version, why)


async def _wait_started(candidate: SourceSet, expected: set[str], gateway: Gateway) -> set[str]:
    """Devices of ``expected`` that do not answer within the start time (empty when all do)."""
    budget = max((d.poll_interval_s + d.timeout_s for d in gateway.devices), default=1.0)
    deadline = time.monotonic() + min(max(3 * budget, 5.0), 30.0)
    while time.monotonic() < deadline:
        if expected <= candidate.up():
            return set()
        await asyncio.sleep(0.1)
    return expected - candidate.up()


def _heartbeat(runtime: GatewayRuntime, state_dir: Path, *, publish: bool = True) -> None:
    health = runtime.health()
    if publish:
        runtime.publisher.publish_health(health)
    path = health_path(state_dir, *runtime.key)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(health, indent=1), encoding="utf-8")
        tmp.replace(path)
    except OSError as err:  # a full disk must not stop the gateway; the heartbeat still went out
        logger.warning("gateway %s/%s: health file %s not written: %s", *runtime.key, path, err)


def _cut(collector: Collector) -> wire.ReadingBatch | None:
    """The readings collected since the last cut, as a batch, if there are any."""
    return collector.cut() if len(collector) else None


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def run_agent(plant: Plant, mqtt: MqttAddress, *, state_dir: Path, enterprise: str | None = None,
                    gateway: str | None = None, publish_interval_s: float | None = None,
                    stop: asyncio.Event | None = None, metrics: tuple[str, int] | None = None,
                    runtimes: dict[tuple[str, str], GatewayRuntime] | None = None) -> list[str]:  # fmt: skip
    """Run every gateway of the plant (or the selected ones) in this process until ``stop`` is set.

    ``metrics`` is the (host, port) of the Prometheus endpoint, or None for none. Returns the
    gateways that stood down because another agent runs as them.
    """
    from gateway_agent import metrics as prometheus

    stop = stop or asyncio.Event()
    runtimes = runtimes if runtimes is not None else {}
    selected = select_gateways(plant, enterprise, gateway)
    async with contextlib.AsyncExitStack() as stack:
        if metrics is not None:
            await stack.enter_async_context(prometheus.endpoint(metrics[0], metrics[1], runtimes))
        tasks = {}
        async with asyncio.TaskGroup() as group:
            for e, g in selected:
                tasks[f"{e.code}/{g.id}"] = group.create_task(
                    run_gateway(
                        e,
                        g,
                        mqtt,
                        state_dir=state_dir,
                        publish_interval_s=publish_interval_s,
                        stop=stop,
                        runtimes=runtimes,
                    ),
                    name=f"gateway-{e.code}-{g.id}",
                )
    return [label for label, task in tasks.items() if task.result()]


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


STOOD_DOWN_EXIT = 3  # another agent runs as our gateway: a supervisor must not start us again


def serve(plant: Plant, mqtt: MqttAddress, *, state_dir: Path, enterprise: str | None = None,
          gateway: str | None = None, metrics: tuple[str, int] | None = None) -> int:  # fmt: skip
    """Run the agent until a signal; the exit code (``STOOD_DOWN_EXIT`` when a gateway stood down)."""

    async def main() -> list[str]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_agent(plant, mqtt, state_dir=state_dir, enterprise=enterprise, gateway=gateway,
                               stop=stop, metrics=metrics)  # fmt: skip

    stood_down = asyncio.run(main())
    return STOOD_DOWN_EXIT if stood_down else 0
