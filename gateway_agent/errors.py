"""Errors of the gateway agent."""

from __future__ import annotations

from hazardwatch.errors import HazardWatchError


class AgentError(HazardWatchError):
    """Base of gateway agent errors."""


class DecodeError(AgentError, ValueError):
    """Registers cannot be decoded as the configured type."""
