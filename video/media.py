"""Snapshots (JPEG, the event's box drawn) and short clips around an event (MJPEG AVI files).

A clip holds ``clip_pre_s`` seconds before the event from a ring buffer of small frames and
``clip_post_s`` after; it is written once complete, named after the event, in the camera's clip
directory, whose oldest files beyond ``max_files`` are removed.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from video.frames import Image, u8
from video.geometry import Box

logger = logging.getLogger(__name__)

SNAPSHOT_WIDTH = 960
JPEG_QUALITY = 80


def snapshot(image: Image, box: Box | None = None, label: str = "") -> bytes:
    """The frame as JPEG, at most SNAPSHOT_WIDTH wide, with the box and label drawn."""
    h, w = image.shape[:2]
    if w > SNAPSHOT_WIDTH:
        image = u8(
            cv2.resize(image, (SNAPSHOT_WIDTH, round(h * SNAPSHOT_WIDTH / w)), interpolation=cv2.INTER_AREA)
        )
    else:
        image = image.copy()
    size = (image.shape[1], image.shape[0])
    if box is not None and (box.w, box.h) != (1.0, 1.0):
        x, y, bw, bh = box.pixels(size)
        cv2.rectangle(image, (x, y), (x + bw, y + bh), (0, 0, 255), 2)
        if label:
            cv2.putText(image, label, (x, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 255), 1)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("the frame could not be encoded as JPEG")
    return bytes(encoded.tobytes())


@dataclass
class _Clip:
    event_id: str
    until_ms: int
    frames: list[Image]


@dataclass
class ClipRecorder:
    directory: Path | None  # None: no clips (the event still has its snapshot)
    fps: float
    pre_s: float = 3.0
    post_s: float = 3.0
    width: int = 320
    max_files: int = 200
    _ring: deque[tuple[int, Image]] = field(default_factory=deque)
    _recording: list[_Clip] = field(default_factory=list)

    def add(self, image: Image, ts_ms: int) -> list[tuple[str, str, int]]:
        """Keep a frame; returns the clips completed by it as (event id, file name, frames)."""
        if self.directory is None:
            return []
        h, w = image.shape[:2]
        small = u8(cv2.resize(image, (self.width, round(h * self.width / w)), interpolation=cv2.INTER_AREA))
        self._ring.append((ts_ms, small))
        while self._ring and self._ring[0][0] < ts_ms - self.pre_s * 1000:
            self._ring.popleft()
        done = []
        for clip in list(self._recording):
            clip.frames.append(small)
            if ts_ms >= clip.until_ms:
                self._recording.remove(clip)
                written = self._write(clip)
                if written is not None:
                    done.append((clip.event_id, written, len(clip.frames)))
        return done

    def flush(self) -> int:
        """Write the clips still recording as they are (the process stops); returns how many."""
        clips, self._recording = self._recording, []
        return sum(1 for clip in clips if self._write(clip) is not None)

    def start(self, event_id: str, ts_ms: int) -> str | None:
        """Begin the clip of a new event; returns the file name it will have."""
        if self.directory is None:
            return None
        self._recording.append(_Clip(event_id, ts_ms + int(self.post_s * 1000), [f for _, f in self._ring]))
        return _name(event_id)

    def _write(self, clip: _Clip) -> str | None:
        assert self.directory is not None  # noqa: S101 - checked by add
        if not clip.frames:
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / _name(clip.event_id)
        h, w = clip.frames[0].shape[:2]
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), max(1.0, self.fps), (w, h))
        try:
            if not writer.isOpened():
                logger.warning("clip %s cannot be written", path)
                return None
            for frame in clip.frames:
                if frame.shape[:2] == (h, w):
                    writer.write(frame)
        finally:
            writer.release()
        self._prune()
        return path.name

    def _prune(self) -> None:
        assert self.directory is not None  # noqa: S101 - only called after writing
        clips = sorted(self.directory.glob("*.avi"), key=lambda p: p.stat().st_mtime)
        for old in clips[: max(0, len(clips) - self.max_files)]:
            old.unlink(missing_ok=True)


def _name(event_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in event_id) + ".avi"
