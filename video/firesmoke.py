"""Suspected fire and smoke: colour rules plus motion, growth and persistence.

Fire: flame-coloured pixels (red-orange-yellow, saturated, bright, R > G > B) that flicker —
a good share of them changes from frame to frame — in most frames of a short window. A static
orange object has the colour but no flicker. Smoke: low-saturation grey motion that softens
the view behind it (the region still follows the background's structure but with less
contrast: semi-transparent), that grows and persists. Both are reported as *suspected*: the
officer confirms them against the gas and temperature tags of the same unit.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from video.frames import Frame, Image, u8
from video.geometry import Box, boxes_of
from video.motion import Motion

WINDOW = 8  # frames the persistence is judged over
PERSIST = 6  # frames of the window with a candidate
FIRE_MIN_FRAC = 0.0008  # smallest flame region, share of the frame
FIRE_FLICKER = 0.15  # share of flame pixels changing frame to frame
SMOKE_MIN_FRAC = 0.005
SMOKE_GROWTH = 1.15  # newest area over the oldest of the window
_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))


@dataclass(frozen=True, slots=True)
class Suspicion:
    kind: str  # FIRE or SMOKE
    score: float
    box: Box
    detail: dict[str, float]


def flame_mask(bgr: Image) -> Image:
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    b, g, r = (bgr[..., i].astype(np.int16) for i in range(3))
    flame = (h <= 35) & (s >= 120) & (v >= 215) & (r >= 215) & (r > g) & (g >= b + 30)
    return np.where(flame, 255, 0).astype(np.uint8)


def _ncc(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / denominator if denominator > 1e-6 else 0.0


@dataclass
class FireSmokeDetector:
    fire: bool = True
    smoke: bool = True
    _previous: Image | None = None
    _previous_flame: Image | None = None
    _fire_window: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    _smoke_window: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    _smoke_active: bool = False
    _smoke_last: tuple[float, Box, float, float] | None = None

    def observe(
        self, frame: Frame, motion: Motion, background: npt.NDArray[np.float32] | None
    ) -> list[Suspicion]:
        found: list[Suspicion] = []
        if self.fire:
            found.extend(self._fire(frame))
        if self.smoke:
            found.extend(self._smoke(frame, motion, background))
        return found

    def _fire(self, frame: Frame) -> list[Suspicion]:
        flame = flame_mask(frame.tiny)
        previous, previous_flame = self._previous, self._previous_flame
        self._previous, self._previous_flame = frame.tiny, flame
        pixels = int(np.count_nonzero(flame))
        size = frame.tiny_size
        enough = pixels >= max(3, FIRE_MIN_FRAC * size[0] * size[1])
        flicker = 0.0
        if (
            enough
            and previous is not None
            and previous_flame is not None
            and previous.shape == frame.tiny.shape
        ):
            region = u8(cv2.dilate(cv2.bitwise_or(flame, previous_flame), _KERNEL))
            changed = u8(cv2.bitwise_xor(flame, previous_flame))
            delta = u8(cv2.absdiff(frame.tiny, previous)).max(axis=2)
            changed[delta > 40] = 255
            flicker = int(np.count_nonzero(changed & region)) / max(1, int(np.count_nonzero(region)))
        candidate = enough and flicker >= FIRE_FLICKER
        self._fire_window.append(pixels if candidate else 0.0)
        hits = sum(1 for a in self._fire_window if a > 0)
        if not candidate or hits < PERSIST:
            return []
        boxes = boxes_of(flame, 3)
        box = boxes[0] if boxes else Box(0, 0, 1, 1)
        detail = {"flicker": round(flicker, 3), "area_pct": round(pixels / (size[0] * size[1]) * 100, 3)}
        return [Suspicion("FIRE", round(min(1.0, flicker * 2), 3), box, detail)]

    def _smoke(
        self, frame: Frame, motion: Motion, background: npt.NDArray[np.float32] | None
    ) -> list[Suspicion]:
        found = self._smoke_candidate(frame, motion, background)
        self._smoke_window.append(found[0] if found is not None else 0.0)
        areas = [a for a in self._smoke_window if a > 0]
        # growth opens a suspicion; persistence keeps it (a plume stops growing, not smoking)
        grew = len(areas) >= PERSIST and areas[-1] >= SMOKE_GROWTH * areas[0]
        self._smoke_active = len(areas) >= PERSIST and (self._smoke_active or grew)
        if found is not None:
            self._smoke_last = found
        if not self._smoke_active or self._smoke_last is None:
            return []
        _area, box, contrast, follows = self._smoke_last
        detail = {"contrast": round(contrast, 3), "follows": round(follows, 3),
                  "growth": round(areas[-1] / areas[0], 3)}  # fmt: skip
        return [Suspicion("SMOKE", round(min(1.0, 1.0 - contrast), 3), box, detail)]

    def _smoke_candidate(
        self, frame: Frame, motion: Motion, background: npt.NDArray[np.float32] | None
    ) -> tuple[float, Box, float, float] | None:
        """(area, box, contrast, follows) of a translucent grey moving region, if there is one."""
        size = frame.tiny_size
        if background is None or background.shape != frame.tiny_gray.shape:
            return None
        hsv = cv2.cvtColor(frame.tiny, cv2.COLOR_BGR2HSV)
        grey = (hsv[..., 1] < 50) & (hsv[..., 2] >= 70) & (hsv[..., 2] <= 235)
        candidate = np.where(grey & (motion.mask > 0), 255, 0).astype(np.uint8)
        boxes = boxes_of(candidate, max(4, round(SMOKE_MIN_FRAC * size[0] * size[1])))
        if not boxes:
            return None
        box = boxes[0]
        x, y, w, h = box.pixels(size)
        current = frame.tiny_gray[y : y + h, x : x + w].astype(np.float32)
        behind = background[y : y + h, x : x + w]
        behind_std = float(behind.std())
        contrast = float(current.std()) / behind_std if behind_std > 3 else 1.0
        follows = _ncc(current, behind)
        if follows < 0.35 or contrast > 0.8:  # opaque (a person, a vehicle) or no softening
            return None
        return float(np.count_nonzero(candidate[y : y + h, x : x + w])), box, contrast, follows
