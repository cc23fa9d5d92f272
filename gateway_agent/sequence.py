"""The per-gateway batch sequence number, kept across restarts in a small state file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)


class SequenceFile:
    """Hands out strictly increasing sequence numbers and persists the next one.

    Every ``take()`` writes the next number to a temporary file, fsyncs it and renames it over
    the state file, so a power cut leaves either the old or the new number, never an empty or
    torn file. It does file I/O: call it off the event loop.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._next = self._load()

    def _load(self) -> int:
        try:
            text = self._path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return 1
        try:
            value = int(text)
        except ValueError:
            logger.warning("sequence file %s is unreadable (%r): starting again at 1", self._path, text)
            return 1
        return max(value, 1)

    @property
    def next(self) -> int:
        return self._next

    def take(self) -> int:
        seq = self._next
        self._write(seq + 1)
        self._next = seq + 1
        return seq

    def _write(self, value: int) -> None:
        tmp = self._path.with_name(self._path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, str(value).encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self._path)
