"""Capture through OpenCV's FFmpeg backend: RTSP, HTTP MJPEG and files.

A :class:`FrameReader` thread reads as fast as the stream delivers and keeps only the latest
frame; frames replaced before anyone took them are counted as dropped. Reads can hang inside
FFmpeg, so the watchdog is outside the reader: :class:`Capture` (polled by the camera's
process) abandons a reader that delivered nothing for ``stall_s`` and starts a new one, with
capped exponential backoff between attempts. A hung reader thread cannot be killed: it is a
daemon, flagged to stop, and once too many hang the process exits for its parent to restart.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import cv2
import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]
MAX_BACKOFF_S = 30.0
MAX_HUNG_READERS = 3


def stream_url(url: str, username: str | None = None, password: str | None = None) -> str:
    """What OpenCV opens: a path for file://, the URL with the credentials put in otherwise."""
    if url.startswith("file://"):
        return url[len("file://") :]
    if not username:
        return url
    parts = urlsplit(url)
    netloc = f"{quote(username, safe='')}:{quote(password or '', safe='')}@{parts.netloc}"
    return urlunsplit(parts._replace(netloc=netloc))


class FrameReader(threading.Thread):
    def __init__(self, source: str, *, timeout_s: float = 5.0, pace_fps: float | None = None) -> None:
        super().__init__(name="hw-video-reader", daemon=True)
        self._source = source
        self._timeout_ms = int(timeout_s * 1000)
        self._pace = 1.0 / pace_fps if pace_fps else 0.0
        self._lock = threading.Lock()
        self._latest: tuple[Image, int, int] | None = None
        self._taken = 0
        self._stop_flag = threading.Event()
        self.frames = 0
        self.dropped = 0
        self.error: str | None = None
        self.opened = threading.Event()

    def run(self) -> None:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            self._timeout_ms,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            self._timeout_ms,
        ]
        try:
            capture = cv2.VideoCapture(self._source, cv2.CAP_FFMPEG, params)
        except cv2.error as err:
            self.error = f"cannot open: {str(err).strip()[:200]}"
            return
        try:
            if not capture.isOpened():
                self.error = "cannot open the stream"
                return
            self.opened.set()
            self._read(capture)
        finally:
            capture.release()

    def _read(self, capture: cv2.VideoCapture) -> None:
        while not self._stop_flag.is_set():
            ok, image = capture.read()
            if not ok or image is None:
                self.error = "the stream ended or a read failed"
                return
            ts_ms = time.time_ns() // 1_000_000
            with self._lock:
                self.frames += 1
                if self._latest is not None and self._latest[2] > self._taken:
                    self.dropped += 1
                self._latest = (np.asarray(image, dtype=np.uint8), ts_ms, self.frames)
            if self._pace:
                self._stop_flag.wait(self._pace)

    def take(self) -> tuple[Image, int] | None:
        """The latest frame and its receive time (UTC ms), if one arrived since the last take."""
        with self._lock:
            if self._latest is None or self._latest[2] <= self._taken:
                return None
            image, ts_ms, seq = self._latest
            self._taken = seq
            return image, ts_ms

    def stop(self) -> None:
        self._stop_flag.set()


@dataclass
class CaptureStats:
    frames: int = 0
    dropped: int = 0
    reconnects: int = 0
    fps: float = 0.0
    connected: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"frames": self.frames, "dropped": self.dropped, "reconnects": self.reconnects,
                "fps": round(self.fps, 2), "connected": self.connected, "error": self.error}  # fmt: skip


class Capture:
    """One camera's reader under a watchdog; ``poll`` from the camera process's loop."""

    def __init__(self, source: str, *, stall_s: float = 10.0, timeout_s: float = 5.0,
                 pace_fps: float | None = None) -> None:  # fmt: skip
        self._source = source
        self._stall_s = stall_s
        self._timeout_s = timeout_s
        self._pace = pace_fps
        self._reader: FrameReader | None = None
        self._hung: list[FrameReader] = []
        self._backoff = 1.0
        self._next_attempt = 0.0
        self._last_frame = 0.0
        self._started = 0.0
        self._window: list[float] = []
        self._dropped_before = 0
        self.stats = CaptureStats()

    @property
    def too_many_hung(self) -> bool:
        self._hung = [r for r in self._hung if r.is_alive()]
        return len(self._hung) >= MAX_HUNG_READERS

    def poll(self, now: float | None = None) -> tuple[Image, int] | None:
        now = time.monotonic() if now is None else now
        reader = self._reader
        if reader is None:
            if now >= self._next_attempt:
                self._start(now)
            return None
        got = reader.take()
        if got is not None:
            self._on_frame(now)
            return got
        if not reader.is_alive():
            self._lost(now, reader.error or "the reader stopped")
        elif now > self._stall_deadline():
            reader.stop()
            self._hung.append(reader)
            self._lost(now, f"no frame for {self._stall_s:g} s (read hangs)")
        return None

    def _stall_deadline(self) -> float:
        """When the current reader counts as hung: ``stall_s`` after its last frame, or after the
        open timeout plus ``stall_s`` while it has delivered none."""
        if self._last_frame > self._started:
            return self._last_frame + self._stall_s
        return self._started + self._timeout_s + self._stall_s

    def close(self) -> None:
        if self._reader is not None:
            self._reader.stop()
            self._reader.join(timeout=self._timeout_s + 1)
            self._reader = None

    def _start(self, now: float) -> None:
        self._reader = FrameReader(self._source, timeout_s=self._timeout_s, pace_fps=self._pace)
        self._started = now
        self._reader.start()

    def _on_frame(self, now: float) -> None:
        reader = self._reader
        assert reader is not None  # noqa: S101 - a frame came from it
        if not self.stats.connected:
            logger.info("stream %s: receiving frames", _safe(self._source))
        self.stats.connected, self.stats.error = True, None
        self._backoff = 1.0
        self._last_frame = now
        self._window = [t for t in self._window if now - t < 5.0] + [now]
        span = self._window[-1] - self._window[0]
        self.stats.fps = (len(self._window) - 1) / span if span > 0 else 0.0
        self.stats.frames += 1
        self.stats.dropped = self._dropped_before + reader.dropped

    def _lost(self, now: float, reason: str) -> None:
        reader = self._reader
        if reader is not None:
            self._dropped_before += reader.dropped
        self._reader = None
        if self.stats.connected or self.stats.error != reason:
            logger.warning(
                "stream %s lost: %s; retrying in %.0f s", _safe(self._source), reason, self._backoff
            )
        self.stats.connected, self.stats.error = False, reason
        self.stats.reconnects += 1
        self._next_attempt = now + self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)


def _safe(source: str) -> str:
    """The source without credentials, for logs."""
    parts = urlsplit(source)
    if parts.password is None:
        return source
    return urlunsplit(parts._replace(netloc=parts.hostname or ""))
