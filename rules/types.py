"""What the rule engine emits."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Condition(StrEnum):
    HIGH = "HIGH"  # level 1 = H, 2 = HH
    LOW = "LOW"  # level 1 = L, 2 = LL
    FAULT = "FAULT"  # level 1 = bad quality or outside the measuring range


@dataclass(frozen=True, slots=True)
class Transition:
    """A condition of a tag changed level at a source time (level 0 = returned to normal)."""

    tag_id: int
    condition: Condition
    level: int
    ts_ms: int
    value: float | None
    limit: float | None
