"""What every source offers the agent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

from hazardwatch.quality import Quality

# emit(tag code, source time in UTC ms, value or None, quality)
Emit = Callable[[str, int, float | None, Quality], None]


class CommState(StrEnum):
    CONNECTING = "connecting"
    UP = "up"
    DOWN = "down"


class Source(Protocol):
    device_id: str

    @property
    def state(self) -> CommState: ...

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        """Produce readings until ``stop`` is set; never raise for a device fault."""
        ...
