"""One camera's analytics: a frame in, the detections present in it out (pure, no I/O).

Time comes from the frame (its source timestamp), so scenes replay identically in tests.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2

from hazardwatch.ledger.cameras import Camera
from video.errors import ModelError
from video.firesmoke import FireSmokeDetector
from video.frames import Frame, Image
from video.geometry import Box
from video.motion import MotionDetector
from video.onnxslot import OnnxDetector
from video.tamper import TamperDetector
from video.zones import ZoneWatch

logger = logging.getLogger(__name__)
WHOLE = Box(0.0, 0.0, 1.0, 1.0)
SUSPECTED = frozenset({"FIRE", "SMOKE"})


@dataclass(frozen=True, slots=True)
class Detection:
    """Something present in one frame: a kind (the alarm condition), an optional zone."""

    kind: str
    zone: str | None
    score: float
    box: Box
    detail: dict[str, object] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str | None]:
        return self.kind, self.zone


@dataclass
class Analysis:
    frame: Frame
    detections: list[Detection]
    tamper: set[str]
    motion_fraction: float
    global_change: bool


class CameraAnalytics:
    def __init__(self, camera: Camera, *, baseline_path: Path | None = None) -> None:
        self.camera = camera
        options = camera.detectors
        self.motion = MotionDetector(masks=camera.masks)
        self.tamper = TamperDetector(options.tamper, baseline_path, camera.masks)
        self.zones = ZoneWatch(camera.zones if options.intrusion else [], ZoneInfo(camera.timezone))
        self.firesmoke = FireSmokeDetector(fire=options.fire, smoke=options.smoke)
        self.onnx: OnnxDetector | None = None
        self._onnx_last: Detection | None = None
        if options.onnx is not None:
            try:
                self.onnx = OnnxDetector(options.onnx)
            except ModelError as err:
                logger.warning("camera %s: ONNX detector disabled: %s", camera.code, err)

    def analyse(self, image: Image, ts_ms: int) -> Analysis:
        frame = Frame.prepare(image, ts_ms)
        motion = self.motion.detect(frame)
        tamper = self.tamper.observe(frame)
        detections: list[Detection] = []
        if tamper:
            measures = {k: round(v, 3) for k, v in self.tamper.measures.items()}
            detail: dict[str, object] = {"reasons": sorted(tamper), **measures}
            detections.append(Detection("TAMPER", None, 1.0, WHOLE, detail))
        elif self.tamper.raw:  # a covered, turned or frozen view says nothing about the scene
            self.motion.reset()
        else:
            for hit in self.zones.observe(frame, motion):
                detections.append(Detection(hit.kind, hit.zone, hit.score, hit.box, hit.detail))
            for s in self.firesmoke.observe(frame, motion, self.motion.background):
                detections.append(Detection(s.kind, None, s.score, s.box, {"suspected": True, **s.detail}))
            detections.extend(self._onnx(frame))
        return Analysis(frame, detections, tamper, motion.fraction, motion.global_change)

    def _onnx(self, frame: Frame) -> list[Detection]:
        """The model's verdict; between the frames it runs on, its last one holds."""
        if self.onnx is None:
            return []
        if not self.onnx.due():
            return [self._onnx_last] if self._onnx_last is not None else []
        try:
            score = self.onnx.score(frame.small)
        except (ModelError, ValueError, cv2.error) as err:
            logger.warning("camera %s: ONNX detector disabled: %s", self.camera.code, err)
            self.onnx = None
            return []
        condition = self.onnx.options.condition
        hit = score >= self.onnx.options.threshold
        self._onnx_last = Detection(condition, None, round(score, 3), WHOLE, {"model": True}) if hit else None
        return [self._onnx_last] if self._onnx_last is not None else []
