"""A camera group's process: capture and analytics of a few cameras, results to the parent.

The parent (:mod:`video.service`) starts one such process per group, so OpenCV's decoding and
analysis never run on an event loop and a hung or crashed decoder takes only its group down.
The process talks to its parent through one queue: ``("event", group, EdgeEvent)``, ``("status",
group, camera, dict)`` on every status change, ``("beat", group, {camera: stats})`` every few seconds.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2

from hazardwatch import logsetup
from hazardwatch.ledger.cameras import Camera
from video.camera import CameraPipeline, CameraStatus
from video.capture import Capture, stream_url

logger = logging.getLogger(__name__)

BEAT_S = 2.0
EXIT_HUNG = 3  # too many reads hang: the parent restarts the process


class Outbox(Protocol):
    def put(self, item: Any, block: bool = ..., timeout: float | None = ...) -> None: ...


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class GroupSpec:
    index: int
    gateway: str
    cameras: list[dict[str, Any]]  # Camera.model_dump(mode="json"): picklable, validated again
    state_dir: str | None
    log_level: str = "INFO"


class CameraRunner:
    """One camera: its capture under the watchdog, its pipeline, paced at the camera's fps."""

    def __init__(self, camera: Camera, group: int, gateway: str, state_dir: Path | None) -> None:
        self.camera = camera
        self.group = group
        password = os.environ.get(camera.password_env) if camera.password_env else None
        pace = camera.fps if camera.source == "file" else None
        source = stream_url(camera.url, camera.username, password)
        self.capture = Capture(source, stall_s=max(5.0, camera.offline_after_s), pace_fps=pace)
        self.pipeline = CameraPipeline(camera, gateway, state_dir)
        self.period = 1.0 / camera.fps
        self._next = 0.0
        self._reported: CameraStatus | None = None

    def step(self, out: Outbox, now: float) -> None:
        if now < self._next:
            return
        self._next = max(self._next + self.period, now)
        got = self.capture.poll(now)
        now_ms = time.time_ns() // 1_000_000
        # no frame: events end on time, and the camera is offline once silent for offline_after_s
        events = self.pipeline.silence(now_ms) if got is None else self.pipeline.frame(got[0], got[1])
        for event in events:
            out.put(("event", self.group, event))
        status = self.pipeline.status
        if status != self._reported and status.since_ms is not None:
            self._reported = status
            out.put(("status", self.group, self.camera.code, self.status_dict()))

    def status_dict(self) -> dict[str, object]:
        status = self.pipeline.status
        return {"status": status.status, "since": status.since_ms, "reasons": list(status.reasons),
                **self.capture.stats.as_dict()}  # fmt: skip


def run_group(spec: GroupSpec, out: Outbox, stop: StopFlag) -> None:
    """The group process's body: poll every camera until ``stop`` is set."""
    logsetup.configure(spec.log_level, f"video[{spec.index}]")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    cv2.setNumThreads(1)  # parallel by process, one camera group per core at most
    state = Path(spec.state_dir) if spec.state_dir else None
    runners = [CameraRunner(Camera.model_validate(c), spec.index, spec.gateway, state) for c in spec.cameras]
    next_beat = 0.0
    try:
        while not stop.is_set():
            now = time.monotonic()
            for runner in runners:
                try:
                    runner.step(out, now)
                except Exception:  # one camera's bad frame never stops the others
                    logger.exception("camera %s: analysis failed", runner.camera.code)
                if runner.capture.too_many_hung:
                    logger.error("camera %s: reads keep hanging; restarting the process", runner.camera.code)
                    sys.exit(EXIT_HUNG)
            if now >= next_beat:
                next_beat = now + BEAT_S
                known = {
                    r.camera.code: r.status_dict() for r in runners if r.pipeline.status.since_ms is not None
                }
                out.put(("beat", spec.index, known))  # cameras not yet known are not reported
            time.sleep(min(0.02, min(r.period for r in runners) / 4) if runners else 0.2)
    finally:
        for runner in runners:
            runner.capture.close()
            runner.pipeline.close()
