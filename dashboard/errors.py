"""Errors of the dashboard."""

from __future__ import annotations

from hazardwatch.errors import HazardWatchError


class DashboardError(HazardWatchError):
    """Base of dashboard errors."""


class UserError(DashboardError, ValueError):
    """A user cannot be created as asked (bad role, scope, name or password)."""


class DatabaseUnavailable(DashboardError, ConnectionError):
    """The database cannot be reached right now."""
