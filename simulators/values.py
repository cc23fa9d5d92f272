"""What the process model hands to the protocol servers: a value and the transmitter's health."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple


class TagKey(NamedTuple):
    enterprise: str
    tag: str

    def __str__(self) -> str:
        return f"{self.enterprise}/{self.tag}"


class FaultMode(StrEnum):
    OK = "ok"
    FROZEN = "frozen"  # the transmitter repeats its last value with good status
    FAILED = "failed"  # the transmitter has failed: no value (NaN), bad status


@dataclass(frozen=True, slots=True)
class SimValue:
    """A tag's simulated value in engineering units; NaN when the transmitter has failed."""

    value: float
    mode: FaultMode = FaultMode.OK
