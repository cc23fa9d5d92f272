"""What the rule engine emits."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Condition(StrEnum):
    HIGH = "HIGH"  # level 1 = H, 2 = HH
    LOW = "LOW"  # level 1 = L, 2 = LL
    FAULT = "FAULT"  # level 1 = bad quality or outside the measuring range
    ROC = "ROC"  # level 1 = moved by at least the rate-of-change limit within its period
    FROZEN = "FROZEN"  # level 1 = the value has not moved for the frozen window
    PREDICT = "PREDICT"  # level 1 = the trend reaches the next limit within the response time (预警)
    STALE = "STALE"  # level 1 = no reading for longer than the tag's stale period (offline)


@dataclass(frozen=True, slots=True)
class Transition:
    """A condition of a tag changed level at a source time (level 0 = returned to normal)."""

    tag_id: int
    condition: Condition
    level: int
    ts_ms: int
    value: float | None
    limit: float | None
