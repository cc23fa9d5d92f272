"""Relative polygons (zones, masks) rasterized at an image size, and relative boxes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

Mask = npt.NDArray[np.uint8]
RelPolygon = Sequence[tuple[float, float]]


def polygon_mask(polygons: Sequence[RelPolygon], size: tuple[int, int]) -> Mask:
    """255 inside any of the polygons, 0 elsewhere, at ``size`` = (width, height)."""
    width, height = size
    mask = np.zeros((height, width), np.uint8)
    for polygon in polygons:
        points = np.array([[x * (width - 1), y * (height - 1)] for x, y in polygon], np.float32)
        cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 255)
    return mask


@dataclass(frozen=True, slots=True)
class Box:
    """A box relative to the frame: left, top, width, height in 0…1."""

    x: float
    y: float
    w: float
    h: float

    @classmethod
    def from_pixels(cls, x: int, y: int, w: int, h: int, size: tuple[int, int]) -> Box:
        width, height = size
        return cls(x / width, y / height, w / width, h / height)

    def pixels(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        width, height = size
        return round(self.x * width), round(self.y * height), round(self.w * width), round(self.h * height)

    def as_list(self) -> list[float]:
        return [round(v, 4) for v in (self.x, self.y, self.w, self.h)]

    def union(self, other: Box) -> Box:
        x0, y0 = min(self.x, other.x), min(self.y, other.y)
        x1, y1 = max(self.x + self.w, other.x + other.w), max(self.y + self.h, other.y + other.h)
        return Box(x0, y0, x1 - x0, y1 - y0)


def boxes_of(mask: Mask, min_pixels: int) -> list[Box]:
    """Boxes of the mask's connected blobs of at least ``min_pixels`` pixels, largest first."""
    size = (mask.shape[1], mask.shape[0])
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    found = []
    for i in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[i, :5])
        if area >= min_pixels:
            found.append((area, Box.from_pixels(x, y, w, h, size)))
    return [box for _, box in sorted(found, key=lambda item: -item[0])]
