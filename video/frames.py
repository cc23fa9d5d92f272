"""One decoded frame prepared once for every detector: downscaled colour and grey images.

Detectors work on small images (320 and 160 pixels wide): analysis cost then barely depends on
the stream's resolution, and sensor noise and thin clutter (rain, snow) average out.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
Floats = npt.NDArray[np.float32]


def u8(array: object) -> Image:
    """An OpenCV result as the 8-bit image it is (no copy)."""
    return np.asarray(array, dtype=np.uint8)


def f32(array: object) -> Floats:
    """An OpenCV result as the float32 image it is (no copy)."""
    return np.asarray(array, dtype=np.float32)


SMALL_WIDTH = 320  # tamper: sharpness and alignment
TINY_WIDTH = 160  # motion, zones, fire and smoke


def _resize(image: Image, width: int) -> Image:
    h, w = image.shape[:2]
    height = max(2, round(h * width / w))
    return u8(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame at its source time (UTC ms) and its prepared downscaled images."""

    ts_ms: int
    full: Image  # BGR as decoded
    small: Image  # BGR, SMALL_WIDTH wide
    small_gray: Image
    tiny: Image  # BGR, TINY_WIDTH wide
    tiny_gray: Image  # blurred a little: the motion detector's input

    @classmethod
    def prepare(cls, image: Image, ts_ms: int) -> Frame:
        if image.ndim == 2:
            image = u8(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
        small = _resize(image, SMALL_WIDTH) if image.shape[1] != SMALL_WIDTH else image
        tiny = _resize(small, TINY_WIDTH)
        tiny_gray = u8(cv2.GaussianBlur(cv2.cvtColor(tiny, cv2.COLOR_BGR2GRAY), (3, 3), 0))
        small_gray = u8(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
        return cls(ts_ms, image, small, small_gray, tiny, tiny_gray)

    @property
    def tiny_size(self) -> tuple[int, int]:
        """(width, height) of the tiny images."""
        return self.tiny.shape[1], self.tiny.shape[0]
