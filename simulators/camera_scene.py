"""Synthetic camera scenes with a fixed seed: a tank farm seen from a mast, and what happens in it.

``Scene(name, seed).frame(i)`` is frame i (BGR, uint8) or None once the camera is gone (offline).
The same name, seed and size always give the same frames, so tests, the demo stream and the
bench see identical pictures. The timestamp overlay in the top left changes every second, as
real cameras' do: the sample camera masks it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
EVENT_FRAME = 10  # frame at which a scenario's event starts
NOISE_FRAMES = 7
SCENES = (
    "normal", "intrusion", "night", "covered", "defocused", "moved", "frozen", "offline", "fire",
    "smoke", "ir_switch", "orange_object", "drift", "rain",
)  # fmt: skip
NEGATIVE = ("normal", "ir_switch", "orange_object", "drift", "rain")
# the sample camera's zones, relative (devices.yaml uses the same)
DANGER_ZONE = [(0.05, 0.6), (0.55, 0.6), (0.55, 0.97), (0.05, 0.97)]
RESTRICTED_ZONE = [(0.6, 0.6), (0.97, 0.6), (0.97, 0.97), (0.6, 0.97)]
OVERLAY_MASK = [(0.0, 0.0), (0.5, 0.0), (0.5, 0.1), (0.0, 0.1)]


@lru_cache(maxsize=16)
def _background(width: int, height: int, shift: int, seed: int) -> Image:
    """The static view: sky, ground with texture, three spheres on legs, pipes and a fence."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.uint8)
    horizon = int(height * 0.45)
    for y in range(horizon):
        t = y / horizon
        image[y, :] = (int(205 - 30 * t), int(180 - 20 * t), int(150 - 10 * t))
    texture = cv2.resize(rng.integers(60, 110, (12, 24), dtype=np.uint8), (width, height - horizon),
                         interpolation=cv2.INTER_CUBIC)  # fmt: skip
    image[horizon:, :, 0] = texture * 0.85
    image[horizon:, :, 1] = texture
    image[horizon:, :, 2] = texture * 0.9
    big = width * 2  # draw on a wider canvas so a turned camera still sees something
    canvas = np.zeros((height, big, 3), np.uint8)
    canvas[:, :width] = image
    canvas[:, width:] = image[:, ::-1]
    r = int(height * 0.14)
    for k in range(6):
        cx, cy = int(width * (0.18 + 0.3 * k)), int(height * 0.4)
        for dx in (-r // 2, r // 2):
            cv2.line(canvas, (cx + dx, cy), (cx + dx, cy + int(r * 1.5)), (90, 90, 95), max(1, r // 8))
        cv2.circle(canvas, (cx, cy), r, (205, 205, 210), -1, cv2.LINE_AA)
        cv2.circle(canvas, (cx - r // 3, cy - r // 3), r // 3, (235, 235, 240), -1, cv2.LINE_AA)
        cv2.circle(canvas, (cx, cy), r, (120, 120, 125), 2, cv2.LINE_AA)
        cv2.putText(canvas, f"T10{k + 1}", (cx - r // 2, cy + r // 6), cv2.FONT_HERSHEY_SIMPLEX,
                    r / 45, (40, 40, 160), 1, cv2.LINE_AA)  # fmt: skip
    y_pipe = int(height * 0.58)
    cv2.line(canvas, (0, y_pipe), (big, y_pipe), (60, 120, 170), max(2, height // 60))
    for x in range(0, big, max(6, width // 40)):
        cv2.line(canvas, (x, int(height * 0.5)), (x, int(height * 0.56)), (150, 150, 150), 1)
    cv2.line(canvas, (0, int(height * 0.5)), (big, int(height * 0.5)), (150, 150, 150), 1)
    view: Image = np.ascontiguousarray(canvas[:, shift : shift + width])
    return view


@lru_cache(maxsize=8)
def _noise(width: int, height: int, seed: int) -> npt.NDArray[np.int16]:
    """A bank of sensor-noise frames (σ = 2 grey levels): consecutive frames never repeat."""
    rng = np.random.default_rng((seed, 99))
    return np.round(rng.normal(0, 2.0, (NOISE_FRAMES, height, width, 3))).astype(np.int16)


def _overlay(image: Image, second: int) -> None:
    h, w = image.shape[:2]
    text = f"2026-12-01 10:{second // 60 % 60:02d}:{second % 60:02d}"
    cv2.putText(image, text, (3, int(h * 0.07)), cv2.FONT_HERSHEY_SIMPLEX, w / 1000, (255, 255, 255), 1)


def _person(image: Image, x: float, y_feet: float, colour: tuple[int, int, int]) -> None:
    h, w = image.shape[:2]
    bw, bh = max(3, int(w * 0.035)), max(8, int(h * 0.16))
    x0, y1 = int(x * w), int(y_feet * h)
    cv2.rectangle(image, (x0, y1 - bh), (x0 + bw, y1), colour, -1)
    cv2.circle(image, (x0 + bw // 2, y1 - bh - bw // 2), max(2, bw // 2), colour, -1)


def _bgr(grey: npt.NDArray[np.float32]) -> Image:
    return np.asarray(cv2.cvtColor(np.clip(grey, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR), np.uint8)


@dataclass
class Scene:
    name: str = "normal"
    seed: int = 0
    width: int = 640
    height: int = 360
    fps: float = 5.0
    _frozen: Image | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.name not in SCENES:
            raise ValueError(f"unknown scene {self.name!r} (known: {', '.join(SCENES)})")

    def frame(self, i: int) -> Image | None:
        """Frame i of the scene, or None: the camera is offline from then on."""
        event = i >= EVENT_FRAME
        if self.name == "offline" and event:
            return None
        if self.name == "frozen" and event and self._frozen is not None:
            return self._frozen.copy()
        shift = int(self.width * 0.12) if self.name == "moved" and event else 0
        image = _background(self.width, self.height, shift, self.seed).copy()
        rng = np.random.default_rng((self.seed, i))
        self._act(image, i, rng)
        _overlay(image, int(i / self.fps))
        noisy = image.astype(np.int16) + _noise(self.width, self.height, self.seed)[i % NOISE_FRAMES]
        image = np.clip(noisy, 0, 255).astype(np.uint8)
        image = self._after(image, i, rng)
        if self.name == "frozen" and i == EVENT_FRAME - 1:
            self._frozen = image.copy()
        return image

    def _act(self, image: Image, i: int, rng: np.random.Generator) -> None:
        h, w = image.shape[:2]
        if self.name == "intrusion" and i >= EVENT_FRAME:
            _person(image, 0.06 + 0.012 * (i - EVENT_FRAME), 0.9, (70, 45, 35))
        elif self.name == "orange_object":
            cv2.rectangle(
                image, (int(w * 0.7), int(h * 0.3)), (int(w * 0.78), int(h * 0.42)), (0, 140, 255), -1
            )
        elif self.name == "fire" and i >= EVENT_FRAME // 2:
            self._flame(image, i - EVENT_FRAME // 2, rng)
        elif self.name == "smoke" and i >= EVENT_FRAME // 2:
            self._plume(image, i - EVENT_FRAME // 2, rng)

    def _flame(self, image: Image, t: int, rng: np.random.Generator) -> None:
        h, w = image.shape[:2]
        base_x, base_y = int(w * 0.3), int(h * 0.54)
        size = int(h * (0.04 + 0.002 * min(t, 30)))
        for _ in range(14):
            dx, dy = rng.normal(0, size * 0.35), -abs(rng.normal(0, size * 0.6))
            radius = max(2, int(size * rng.uniform(0.25, 0.5)))
            colour = (int(rng.integers(0, 60)), int(rng.integers(120, 220)), 255)
            cv2.circle(image, (int(base_x + dx), int(base_y + dy)), radius, colour, -1)

    def _plume(self, image: Image, t: int, rng: np.random.Generator) -> None:
        h, w = image.shape[:2]
        layer = np.zeros((h, w), np.float32)
        cx, cy = w * 0.75, h * (0.42 - 0.003 * t)
        radius = h * (0.05 + 0.006 * min(t, 25))
        for _ in range(6):
            ox, oy = rng.normal(0, radius * 0.25), rng.normal(0, radius * 0.25)
            cv2.circle(layer, (int(cx + ox), int(cy + oy)), int(radius * 0.8), 1.0, -1)
        layer = cv2.GaussianBlur(layer, (0, 0), max(1.0, radius / 4)) * 0.6
        grey = np.full_like(image, 115, dtype=np.float32)
        mixed = image * (1 - layer[..., None]) + grey * layer[..., None]
        image[:] = np.clip(mixed, 0, 255).astype(np.uint8)

    def _after(self, image: Image, i: int, rng: np.random.Generator) -> Image:
        h, w = image.shape[:2]
        event = i >= EVENT_FRAME
        if self.name == "night":
            grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32) * 0.35
            out = _bgr(grey)
            if event:
                _person(out, 0.62 + 0.01 * (i - EVENT_FRAME), 0.92, (150, 150, 150))
            return out
        if self.name == "covered" and event:
            dark = np.full_like(image, 38)
            return np.asarray(np.clip(dark + rng.normal(0, 1.5, image.shape), 0, 255), np.uint8)
        if self.name == "defocused" and event:
            return np.asarray(cv2.GaussianBlur(image, (0, 0), w / 70), np.uint8)
        if self.name == "ir_switch" and event:
            grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32) * 1.25 + 10
            return _bgr(grey)
        if self.name == "drift":
            return np.asarray(np.clip(image.astype(np.float32) * (1.0 - 0.006 * i), 0, 255), np.uint8)
        if self.name == "rain":
            for _ in range(w // 2):
                x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
                length = int(rng.integers(h // 30, h // 15))
                cv2.line(image, (x, y), (x + length // 4, y + length), (200, 200, 200), 1)
        return image
