"""Errors of the alarm lifecycle."""

from __future__ import annotations

from hazardwatch.errors import HazardWatchError


class AlarmError(HazardWatchError):
    """Base of alarm errors."""


class InvalidTransition(AlarmError, ValueError):
    """The requested change is not allowed from the alarm's current state."""


class AlarmNotFound(AlarmError, LookupError):
    """No such alarm (or not within the caller's scope)."""
