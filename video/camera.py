"""One camera end to end, without I/O of its own: frames in, wire events and status out.

It joins the analytics, the event lifecycle, snapshots and clips. ``frame`` takes a decoded
frame at its time; ``silence`` is the clock's turn while no frame comes (events end, the
camera goes offline). Both are called from the camera's capture process, never an event loop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from hazardwatch import wire
from hazardwatch.ledger.cameras import Camera
from video.analytics import CameraAnalytics
from video.events import EventChange, EventTracker
from video.frames import Image
from video.media import ClipRecorder, snapshot

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CameraStatus:
    status: str  # online, offline, tampered
    since_ms: int | None  # None: just started, not known yet (never reported)
    reasons: tuple[str, ...] = ()


class CameraPipeline:
    def __init__(self, camera: Camera, gateway: str, state_dir: Path | None = None) -> None:
        self.camera = camera
        self.gateway = gateway
        baseline = state_dir / "baselines" / f"{camera.code}.npz" if state_dir else None
        self.analytics = CameraAnalytics(camera, baseline_path=baseline)
        self.events = EventTracker(camera.code, camera.events)
        clips = state_dir / "clips" / camera.code if state_dir else None
        opts = camera.events
        self.clips = ClipRecorder(clips, camera.fps, opts.clip_pre_s, opts.clip_post_s)
        self.last_frame_ms: int | None = None
        self._first_ms: int | None = None  # the first time the pipeline was asked (frame or silence)
        self.frames = 0
        self._clip_of: dict[str, str] = {}
        self._status = CameraStatus("offline", None)

    def frame(self, image: Image, ts_ms: int) -> list[wire.EdgeEvent]:
        """Analyse one frame; returns the events to publish."""
        self.frames += 1
        self.last_frame_ms = ts_ms
        self._first_ms = ts_ms if self._first_ms is None else self._first_ms
        analysis = self.analytics.analyse(image, ts_ms)
        out = []
        for change in self.events.update(analysis.detections, ts_ms):
            jpeg = None
            if change.phase == "new":
                jpeg = snapshot(image, change.box, change.kind)
                clip = self.clips.start(change.event_id, ts_ms)
                if clip is not None:
                    self._clip_of[change.event_id] = clip
            out.append(self._wire(change, jpeg))
        for event_id, _name, frames in self.clips.add(image, ts_ms):
            logger.debug("clip of %s written (%d frames)", event_id, frames)
        self._set_status("tampered" if analysis.tamper else "online", ts_ms, tuple(sorted(analysis.tamper)))
        return out

    def silence(self, now_ms: int) -> list[wire.EdgeEvent]:
        """No frame: events end on time, and the camera is offline after ``offline_after_s``."""
        if self._first_ms is None:
            self._first_ms = now_ms
        last = self.last_frame_ms if self.last_frame_ms is not None else self._first_ms
        if now_ms - last >= self.camera.offline_after_s * 1000:
            self._set_status("offline", now_ms)
        return [self._wire(c, None) for c in self.events.tick(now_ms)]

    def close(self) -> None:
        """The camera stops: clips still recording are written as far as they got."""
        self.clips.flush()

    @property
    def status(self) -> CameraStatus:
        return self._status

    def _set_status(self, status: str, ts_ms: int, reasons: tuple[str, ...] = ()) -> None:
        if status != self._status.status or reasons != self._status.reasons:
            if status != self._status.status:
                logger.info("camera %s is %s %s", self.camera.code, status, ", ".join(reasons))
            self._status = CameraStatus(status, ts_ms, reasons)

    def _wire(self, change: EventChange, jpeg: bytes | None) -> wire.EdgeEvent:
        clip = self._clip_of.get(change.event_id)
        if change.phase == "end":
            self._clip_of.pop(change.event_id, None)
        return wire.EdgeEvent(
            gateway=self.gateway,
            seq=0,  # numbered by the publisher
            sent_ms=0,
            event_id=change.event_id,
            camera=change.camera,
            kind=change.kind,
            phase=change.phase,
            start_ms=change.start_ms,
            ts_ms=change.ts_ms,
            zone=change.zone,
            score=float(change.score),
            suspected=change.suspected,
            box=change.box.as_list(),
            detail=change.detail,
            snapshot=jpeg,
            clip=clip,
        )
