"""Errors of the ingest tier."""

from __future__ import annotations

from hazardwatch.errors import HazardWatchError


class IngestError(HazardWatchError):
    """Base of ingest errors."""


class MigrationError(IngestError, RuntimeError):
    """The schema cannot be brought up to date."""
