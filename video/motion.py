"""Motion against a running-average background, on the tiny grey image.

The background follows the scene slowly (``alpha``), more slowly still under motion, so a
person standing still stays foreground for a while. Each frame is first brought to the
background's mean brightness, so slow lighting drift and auto-exposure never read as motion.
A change over most of the frame at once (an IR-cut switch, lights on) is a global change: the
background is reset to the new frame and no motion is reported for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from video.frames import Frame, u8
from video.geometry import Box, Mask, RelPolygon, boxes_of, polygon_mask

_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))


@dataclass(frozen=True, slots=True)
class Motion:
    mask: Mask  # 255 where moving, at the tiny size
    boxes: list[Box] = field(default_factory=list)
    fraction: float = 0.0  # share of the (unmasked) frame moving
    global_change: bool = False


@dataclass
class MotionDetector:
    masks: Sequence[RelPolygon] = ()
    threshold: float = 22.0  # grey levels above the background
    alpha: float = 0.05  # background learning rate
    alpha_moving: float = 0.005  # learning rate under motion
    min_blob_frac: float = 0.0008  # smallest blob, share of the frame
    global_frac: float = 0.45  # this much of the frame changing at once is a global change
    warm_up_frames: int = 5  # frames the first background is learned from
    _background: npt.NDArray[np.float32] | None = None
    _ignore: Mask | None = None
    _previous: Mask | None = None
    _learning: list[npt.NDArray[np.uint8]] = field(default_factory=list)
    _size: tuple[int, int] = (0, 0)

    @property
    def background(self) -> npt.NDArray[np.float32] | None:
        """The running background (at the tiny size, brightness-normalized), if started."""
        return self._background

    def reset(self) -> None:
        self._background = None
        self._learning.clear()

    def detect(self, frame: Frame) -> Motion:
        gray = frame.tiny_gray
        size = frame.tiny_size
        if (self._background is None or self._size != size) and self._start(gray, size):
            return Motion(np.zeros_like(gray))
        assert self._background is not None  # noqa: S101 - started above
        assert self._ignore is not None  # noqa: S101 - started above
        current = gray.astype(np.float32)
        bg_mean, cur_mean = float(self._background.mean()), float(current.mean())
        if cur_mean > 1.0:
            current *= bg_mean / cur_mean
        diff = cv2.absdiff(current, self._background)
        moving: Mask = np.where(diff > self.threshold, 255, 0).astype(np.uint8)
        moving[self._ignore > 0] = 0
        valid = max(1, int(np.count_nonzero(self._ignore == 0)))
        raw_fraction = np.count_nonzero(moving) / valid
        if raw_fraction > self.global_frac:
            self._background = current.copy()
            self._previous = None
            return Motion(np.zeros_like(gray), fraction=raw_fraction, global_change=True)
        moving = u8(cv2.dilate(cv2.morphologyEx(moving, cv2.MORPH_OPEN, _KERNEL), _KERNEL))
        # an object moves through overlapping places frame to frame; rain and snow do not
        previous, self._previous = self._previous, moving
        if previous is not None:
            moving = u8(cv2.bitwise_and(moving, cv2.dilate(previous, _KERNEL)))
        still = cv2.bitwise_not(moving)
        cv2.accumulateWeighted(current, self._background, self.alpha, mask=still)
        cv2.accumulateWeighted(current, self._background, self.alpha_moving, mask=moving)
        min_pixels = max(2, round(self.min_blob_frac * size[0] * size[1]))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(moving, connectivity=8)
        small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < min_pixels)
        if count > 1 and small.size:
            moving[np.isin(labels, small[small > 0])] = 0
        return Motion(moving, boxes_of(moving, min_pixels), float(np.count_nonzero(moving)) / valid, False)

    def _start(self, gray: npt.NDArray[np.uint8], size: tuple[int, int]) -> bool:
        """Learn the first background as the median of a few frames (robust to rain, passers-by);
        True while still learning."""
        if self._learning and self._learning[0].shape != gray.shape:
            self._learning.clear()
        self._learning.append(gray)
        if len(self._learning) < self.warm_up_frames:
            return True
        self._background = np.median(np.stack(self._learning), axis=0).astype(np.float32)
        self._learning.clear()
        self._previous = None
        self._size = size
        self._ignore = polygon_mask(self.masks, size)
        return True
