"""The optional ONNX detector slot: a model file from configuration, run with cv2.dnn.

The model takes one image (N×3×H×W, scaled by ``scale``, RGB or BGR) and outputs scores, one
per class; the configured class at or above its threshold is a detection over the whole view.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from hazardwatch.ledger.cameras import OnnxOptions
from video.errors import ModelError
from video.frames import Image

logger = logging.getLogger(__name__)


class OnnxDetector:
    def __init__(self, options: OnnxOptions) -> None:
        path = Path(options.model)
        if not path.is_file():
            raise ModelError(f"ONNX model {path} does not exist")
        try:
            self._net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as err:
            raise ModelError(f"ONNX model {path} cannot be loaded: {str(err).strip()[:200]}") from err
        self.options = options
        self._count = 0
        self.last_score = 0.0

    def score(self, image: Image) -> float:
        """The configured class's score for an image (BGR)."""
        width, height = self.options.input_size
        blob = cv2.dnn.blobFromImage(
            image, self.options.scale, (width, height), swapRB=self.options.swap_rb, crop=False
        )
        self._net.setInput(blob)
        scores = np.asarray(self._net.forward(), dtype=np.float64).ravel()
        if self.options.class_index >= scores.size:
            raise ModelError(
                f"the model gives {scores.size} scores; class_index {self.options.class_index} is beyond"
            )
        self.last_score = float(scores[self.options.class_index])
        return self.last_score

    def due(self) -> bool:
        """Whether this analysed frame is one the model runs on (every n-th)."""
        self._count += 1
        return (self._count - 1) % self.options.every_n == 0
