"""Confirm that a motion box holds a person, with OpenCV's built-in HOG people detector."""

from __future__ import annotations

import cv2
import numpy as np

from video.frames import Image, u8
from video.geometry import Box

MIN_HEIGHT = 160  # the detector's window is 64×128: small crops are scaled up to this
MIN_WEIGHT = 0.3


class PersonConfirmer:
    def __init__(self) -> None:
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), np.float32))

    def confirm(self, image: Image, box: Box) -> bool:
        """Whether the detector finds a person in the box (with a margin) of the full frame."""
        height, width = image.shape[:2]
        x, y, w, h = box.pixels((width, height))
        mx, my = max(8, w // 2), max(8, h // 4)
        x0, y0 = max(0, x - mx), max(0, y - my)
        x1, y1 = min(width, x + w + mx), min(height, y + h + my)
        crop = image[y0:y1, x0:x1]
        if crop.shape[0] < 8 or crop.shape[1] < 8:
            return False
        scale = max(1.0, MIN_HEIGHT / crop.shape[0], 80 / crop.shape[1])
        if scale > 1.0:
            crop = u8(cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR))
        _rects, weights = self._hog.detectMultiScale(crop, winStride=(8, 8), padding=(8, 8), scale=1.05)
        return any(float(w) >= MIN_WEIGHT for w in list(weights))
