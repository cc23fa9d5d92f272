"""Tamper: covered, defocused, moved (against the commissioning baseline) and frozen images.

The commissioning baseline is the mean of the first frames a camera delivers (or the one saved
for it on the gateway, so a restart does not learn a turned camera as normal): its sharpness
and its gradient image (at the tiny size). Every measure is invariant to a global gain, so an
IR-cut switch or a change of exposure is none of these. Offline is the capture's business (no frames at all).

The camera's masks (a burned-in timestamp, a logo) are left out of every measure: the overlay is
drawn after the lens, so it stays sharp on a defocused image, shows on a covered one, and its
changing digits are no movement of the view.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from hazardwatch.ledger.cameras import TamperOptions
from video.frames import Frame, f32
from video.geometry import RelPolygon, polygon_mask

logger = logging.getLogger(__name__)

Float = npt.NDArray[np.float32]
COVERED_STD = 9.0  # grey-level spread of a covered lens (a hand, cloth, paint)
FROZEN_DIFF = 0.05  # mean grey difference of identical frames (decoding is deterministic)
BASELINE_FRAMES = 5


def sharpness(gray: npt.NDArray[np.uint8], keep: npt.NDArray[np.bool_] | None = None) -> float:
    """Variance of the Laplacian over the variance of the image: gain-invariant focus (over the
    ``keep`` pixels only, when given)."""
    smooth = cv2.GaussianBlur(gray, (3, 3), 0)
    lap = cv2.Laplacian(smooth, cv2.CV_32F)
    if keep is not None:
        return float(lap[keep].var()) / (float(smooth[keep].astype(np.float32).var()) + 1.0)
    return float(lap.var()) / (float(smooth.astype(np.float32).var()) + 1.0)


def gradient(gray: npt.NDArray[np.uint8]) -> Float:
    """Gradient magnitude, normalized to unit mean: the structure the alignment compares."""
    g = gray.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = f32(cv2.magnitude(gx, gy))
    return magnitude / (float(magnitude.mean()) + 1e-6)


@dataclass
class Baseline:
    sharpness: float
    gradient: Float

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            np.savez(out, sharpness=np.float32(self.sharpness), gradient=self.gradient)

    @classmethod
    def load(cls, path: Path) -> Baseline | None:
        try:
            with np.load(path) as data:
                return cls(float(data["sharpness"]), data["gradient"].astype(np.float32))
        except (OSError, KeyError, ValueError) as err:
            logger.warning("baseline %s unreadable (%s); commissioning again", path, err)
            return None


@dataclass
class _Held:
    """A raw condition that must hold ``hold_ms`` to count, and clear as long to end."""

    since: int | None = None
    quiet_since: int | None = None
    active: bool = False

    def update(self, present: bool, ts: int, hold_ms: int) -> bool:
        if present:
            self.quiet_since = None
            self.since = ts if self.since is None else self.since
            if ts - self.since >= hold_ms:
                self.active = True
        else:
            self.since = None
            self.quiet_since = ts if self.quiet_since is None else self.quiet_since
            if ts - self.quiet_since >= hold_ms:
                self.active = False
        return self.active


@dataclass
class TamperDetector:
    options: TamperOptions = field(default_factory=TamperOptions)
    baseline_path: Path | None = None
    masks: Sequence[RelPolygon] = ()
    baseline: Baseline | None = None
    measures: dict[str, float] = field(default_factory=dict)
    raw: set[str] = field(default_factory=set)  # this frame's reasons, before they have held
    _learning: list[Frame] = field(default_factory=list)
    _previous: npt.NDArray[np.uint8] | None = None
    _frozen_since: int | None = None
    _held: dict[str, _Held] = field(default_factory=dict)
    _window: Float | None = None
    _keep: dict[tuple[int, int], npt.NDArray[np.bool_]] = field(default_factory=dict)  # by (width, height)

    def _kept(self, gray: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_] | None:
        """The pixels outside the masks at this image's size (None: no masks)."""
        if not self.masks:
            return None
        size = (int(gray.shape[1]), int(gray.shape[0]))
        keep = self._keep.get(size)
        if keep is None:
            keep = self._keep[size] = polygon_mask(self.masks, size) == 0
        return keep

    def __post_init__(self) -> None:
        if self.baseline is None and self.baseline_path is not None and self.baseline_path.exists():
            self.baseline = Baseline.load(self.baseline_path)

    def observe(self, frame: Frame) -> set[str]:
        """The tamper reasons active at this frame (each held for ``hold_s``)."""
        if not self.options.enabled:
            return set()
        raw = self.raw = self._raw(frame)
        hold_ms = int(self.options.hold_s * 1000)
        active = set()
        if "frozen" in raw:  # measured over its own duration; ends at the first changing frame
            active.add("frozen")
        for reason in ("covered", "defocused", "moved"):
            if self._held.setdefault(reason, _Held()).update(reason in raw, frame.ts_ms, hold_ms):
                active.add(reason)
        return active

    def _raw(self, frame: Frame) -> set[str]:
        reasons: set[str] = set()
        if self._is_frozen(frame):
            reasons.add("frozen")
        gray = frame.small_gray
        keep = self._kept(gray)
        blurred = cv2.GaussianBlur(gray, (5, 5), 0)
        spread = float(blurred[keep].std() if keep is not None else blurred.std())
        self.measures["spread"] = spread
        if spread < COVERED_STD:
            return reasons | {"covered"}  # nothing else can be judged on a covered lens
        if self.baseline is None:
            self._learn(frame)
            return reasons
        sharp = sharpness(gray, keep)
        ratio = sharp / max(self.baseline.sharpness, 1e-6)
        self.measures["sharpness_ratio"] = ratio
        if ratio < self.options.defocus_ratio:
            return reasons | {"defocused"}
        shift = self._shift(frame.tiny_gray)
        self.measures["shift_pct"] = shift
        if shift > self.options.moved_pct:
            reasons.add("moved")
        return reasons

    def _is_frozen(self, frame: Frame) -> bool:
        current = frame.tiny_gray
        previous, self._previous = self._previous, current
        if previous is None or previous.shape != current.shape:
            return False
        if float(cv2.absdiff(previous, current).mean()) > FROZEN_DIFF:
            self._frozen_since = None
            return False
        if self._frozen_since is None:
            self._frozen_since = frame.ts_ms
        return frame.ts_ms - self._frozen_since >= self.options.frozen_s * 1000

    def _learn(self, frame: Frame) -> None:
        self._learning.append(frame)
        if len(self._learning) < BASELINE_FRAMES:
            return
        mean = np.mean([f.tiny_gray.astype(np.float32) for f in self._learning], axis=0)
        gray = np.clip(mean, 0, 255).astype(np.uint8)
        sharp = float(np.median([sharpness(f.small_gray, self._kept(f.small_gray)) for f in self._learning]))
        self.baseline = Baseline(sharp, gradient(gray))
        self._learning.clear()
        if self.baseline_path is not None:
            self.baseline.save(self.baseline_path)
        logger.info("commissioning baseline learned (sharpness %.3f)", sharp)

    def _shift(self, gray: npt.NDArray[np.uint8]) -> float:
        """How far the view moved against the baseline, in % of the frame width."""
        assert self.baseline is not None  # noqa: S101 - checked by the caller
        current = gradient(gray)
        if current.shape != self.baseline.gradient.shape:
            return 100.0  # the stream's shape changed: not the commissioned view
        if self._window is None or self._window.shape != current.shape:
            self._window = f32(cv2.createHanningWindow((current.shape[1], current.shape[0]), cv2.CV_32F))
            keep = self._kept(gray)
            if keep is not None:  # the masks weigh nothing in the alignment
                self._window = f32(self._window * keep.astype(np.float32))
        # OpenCV (4.14) applies the window to its inputs in place: hand it a copy of the baseline, or
        # the baseline fades under the window frame after frame until a still view reads as moved
        (dx, dy), _response = cv2.phaseCorrelate(self.baseline.gradient.copy(), current, self._window)
        return float(np.hypot(dx, dy)) / int(current.shape[1]) * 100
