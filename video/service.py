"""`hazardwatch video`: the camera processes of a gateway, supervised, and their publisher.

Cameras are split into groups of ``group_size``; each group runs in a process of its own
(multiprocessing, spawn), which the service watches: a process that exits or stops beating
for ``STALL_S`` is killed and started again with capped exponential backoff, its cameras
reported offline meanwhile. Events and status changes come back through one queue and go out
over MQTT; events through each gateway's spool on disk, so none is lost to a broker outage or a
restart.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any

from hazardwatch.errors import ConfigError
from hazardwatch.ledger import Plant
from hazardwatch.ledger.cameras import Camera
from hazardwatch.settings import MqttAddress
from video.publisher import EventPublisher
from video.worker import GroupSpec, run_group

logger = logging.getLogger(__name__)

STALL_S = 30.0
MAX_BACKOFF_S = 30.0


@dataclass
class _Group:
    spec: GroupSpec
    codes: list[str]
    publisher: EventPublisher
    process: SpawnProcess | None = None
    last_beat: float = 0.0
    restarts: int = 0
    next_start: float = 0.0


@dataclass
class VideoService:
    plant: Plant
    address: MqttAddress
    state_dir: Path
    enterprise: str | None = None
    gateway: str | None = None
    group_size: int = 4
    log_level: str = "INFO"
    _groups: list[_Group] = field(default_factory=list)
    _publishers: dict[str, EventPublisher] = field(default_factory=dict)  # by gateway key

    def cameras(self) -> list[tuple[str, str, Camera]]:
        """(enterprise, gateway, camera) of the selection, in ledger order."""
        found = [
            (e.code, camera.gateway, camera)
            for e in self.plant.enterprises
            if self.enterprise in (None, e.code)
            for _, camera in e.iter_cameras()
            if self.gateway in (None, camera.gateway)
        ]
        if not found:
            raise ConfigError("no camera in the devices file for the selected enterprise and gateway")
        return found

    def run(self, stop: threading.Event) -> None:
        ctx = multiprocessing.get_context("spawn")
        out: Any = ctx.Queue()
        halt = ctx.Event()
        self._plan()
        for publisher in self._publishers.values():
            publisher.start()
        try:
            while not stop.is_set():
                try:
                    self._supervise(ctx, out, halt)
                    self._drain(out, timeout=0.2)
                except Exception:  # the supervisor loop outlives any one bad message or start
                    logger.exception("video supervisor step failed")
                    stop.wait(1.0)
        finally:
            halt.set()
            self._stop_groups()
            self._drain(out, timeout=0.0)
            for publisher in self._publishers.values():
                publisher.stop()

    def pids(self) -> list[int]:
        """Process ids of the camera groups running now."""
        return [g.process.pid for g in self._groups if g.process is not None and g.process.pid and
                g.process.is_alive()]  # fmt: skip

    def restarts(self) -> int:
        return sum(g.restarts for g in self._groups)

    def _plan(self) -> None:
        by_gateway: dict[tuple[str, str], list[Camera]] = {}
        for enterprise, gateway, camera in self.cameras():
            by_gateway.setdefault((enterprise, gateway), []).append(camera)
        for (enterprise, gateway), cameras in by_gateway.items():
            self._publishers[f"{enterprise}/{gateway}"] = EventPublisher(
                enterprise, gateway, self.address, spool_path(self.state_dir, enterprise, gateway)
            )
            for start in range(0, len(cameras), self.group_size):
                chunk = cameras[start : start + self.group_size]
                spec = GroupSpec(len(self._groups), gateway, [c.model_dump(mode="json") for c in chunk],
                                 str(self.state_dir / enterprise / gateway), self.log_level)  # fmt: skip
                publisher = self._publishers[f"{enterprise}/{gateway}"]
                self._groups.append(_Group(spec, [c.code for c in chunk], publisher))
        logger.info(
            "video: %d cameras in %d processes", sum(len(g.codes) for g in self._groups), len(self._groups)
        )

    def _supervise(self, ctx: Any, out: Any, halt: Any) -> None:
        now = time.monotonic()
        for group in self._groups:
            process = group.process
            if process is not None and process.is_alive() and now - group.last_beat < STALL_S:
                continue
            if process is not None:
                self._bury(group, now)
            if group.process is None and now >= group.next_start:
                group.process = ctx.Process(target=run_group, args=(group.spec, out, halt),
                                            name=f"hw-video-{group.spec.index}", daemon=True)  # fmt: skip
                group.process.start()
                group.last_beat = now
                logger.info("camera group %d started (pid %s): %s", group.spec.index, group.process.pid,
                            ", ".join(group.codes))  # fmt: skip

    def _bury(self, group: _Group, now: float) -> None:
        process = group.process
        assert process is not None  # noqa: S101 - the caller checked
        if process.is_alive():
            logger.warning("camera group %d silent for %.0f s; killing it", group.spec.index, STALL_S)
            process.kill()
        process.join(timeout=5)
        group.restarts += 1
        delay = min(2.0 ** min(group.restarts, 5), MAX_BACKOFF_S)
        logger.warning("camera group %d exited (%s); restarting in %.0f s", group.spec.index,
                       process.exitcode, delay)  # fmt: skip
        group.process, group.next_start = None, now + delay
        for code in group.codes:
            group.publisher.set_camera(code, {"status": "offline", "since": time.time_ns() // 1_000_000,
                                        "error": "camera process restarting"})  # fmt: skip

    def _drain(self, out: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = out.get(timeout=max(0.0, deadline - time.monotonic())) if timeout else out.get_nowait()
            except queue.Empty:
                return
            self._dispatch(item)
            timeout = 0.0  # take what is there, then return to supervising

    def _dispatch(self, item: tuple[Any, ...]) -> None:
        """One message of a group: ("beat", group, stats), ("event", group, event) or
        ("status", group, camera, status)."""
        group = self._groups[item[1]]
        if item[0] == "beat":
            group.last_beat = time.monotonic()
            group.publisher.refresh(item[2])
        elif item[0] == "event":
            group.publisher.publish_event(item[2])
        elif item[0] == "status":
            group.publisher.set_camera(item[2], item[3])

    def _stop_groups(self) -> None:
        for group in self._groups:
            if group.process is not None:
                group.process.join(timeout=10)
                if group.process.is_alive():
                    group.process.kill()
                    group.process.join(timeout=5)


def spool_path(state_dir: Path, enterprise: str, gateway: str) -> Path:
    """Where a gateway's video events wait for the broker."""
    return state_dir / enterprise / gateway / "video-events.sqlite"


def serve(plant: Plant, address: MqttAddress, state_dir: Path, *, enterprise: str | None = None,
          gateway: str | None = None, group_size: int = 4, log_level: str = "INFO") -> None:  # fmt: skip
    """Run until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _s, _f: stop.set())
    service = VideoService(plant, address, state_dir, enterprise, gateway, group_size, log_level)
    service.run(stop)
