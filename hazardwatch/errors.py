"""The exception tree of the shared kernel."""

from __future__ import annotations


class HazardWatchError(Exception):
    """Base of every error HazardWatch raises on purpose."""


class ConfigError(HazardWatchError, ValueError):
    """A configuration file or setting is invalid; the message says where and why."""


class WireError(HazardWatchError, ValueError):
    """A payload does not follow the wire format; the message is the dead-letter reason."""
