"""The video package's exceptions."""

from __future__ import annotations

from hazardwatch.errors import HazardWatchError


class VideoError(HazardWatchError):
    """A video analytics failure."""


class ModelError(VideoError, ValueError):
    """An ONNX model that cannot be loaded or does not fit its configuration."""
