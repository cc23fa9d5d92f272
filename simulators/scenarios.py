"""Scenarios that drive one tag out of normal operation and back: excursions and transmitter faults.

An excursion (``overfill``, ``gas-leak``) climbs from the tag's current value through its H and HH
limits to a peak above the highest one, holds there (at least the tag's on-delay and 5 s more, so
it raises the alarm), then falls back to the tag's normal value and ends. A fault
(``sensor-fault``, ``sensor-freeze``) fails or freezes the transmitter for a while, then the tag
recovers. Times are simulated seconds (the sum of the model's steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hazardwatch.ledger import Tag, TagKind
from simulators.values import FaultMode, SimValue, TagKey


@dataclass(frozen=True, slots=True)
class ExcursionSpec:
    name: str
    kinds: tuple[TagKind, ...]  # the kinds of tag it may drive; the default is the first tag of kinds[0]
    rise_pct_s: float  # default climb rate, % of span per second
    hold_s: float  # time at the peak
    fall_factor: float  # fall rate = climb rate × fall_factor
    overshoot_pct: float  # peak = highest of H/HH + overshoot, % of span


@dataclass(frozen=True, slots=True)
class FaultSpec:
    name: str
    kinds: tuple[TagKind, ...]
    mode: FaultMode
    duration_s: float


ScenarioSpec = ExcursionSpec | FaultSpec

LEVEL_FIRST = (TagKind.LEVEL, *(k for k in TagKind if k is not TagKind.LEVEL))

SCENARIOS: dict[str, ScenarioSpec] = {
    spec.name: spec
    for spec in (
        ExcursionSpec(
            "overfill", (TagKind.LEVEL,), rise_pct_s=4.0, hold_s=4.0, fall_factor=2.0, overshoot_pct=3.0
        ),
        ExcursionSpec(
            "gas-leak",
            (TagKind.GAS_COMBUSTIBLE, TagKind.GAS_TOXIC),
            rise_pct_s=5.0,
            hold_s=5.0,
            fall_factor=0.8,
            overshoot_pct=10.0,
        ),
        FaultSpec("sensor-fault", LEVEL_FIRST, FaultMode.FAILED, duration_s=15.0),
        FaultSpec("sensor-freeze", LEVEL_FIRST, FaultMode.FROZEN, duration_s=15.0),
    )
}
NORMAL = "normal"
HOLD_MARGIN_S = 5.0
SCENARIO_NAMES = (*sorted(SCENARIOS), NORMAL)


def excursion_peak(tag: Tag, overshoot_pct: float) -> float:
    """Where an excursion holds: above the highest of H and HH, inside the measuring range."""
    top = tag.limits.hh if tag.limits.hh is not None else tag.limits.h
    if top is None:
        raise ValueError(f"tag {tag.code} has no H or HH limit to drive it through")
    high = tag.range[1]
    peak = top + overshoot_pct * tag.span / 100.0
    ceiling = high - 0.01 * tag.span
    return peak if peak <= ceiling else (top + high) / 2.0


class ActiveScenario:
    """One running scenario on one tag; advance() gives the tag's value each step."""

    def __init__(self, spec: ScenarioSpec, key: TagKey) -> None:
        self.spec = spec
        self.key = key
        self.elapsed_s = 0.0
        self.phase = "start"

    @property
    def done(self) -> bool:
        return self.phase == "done"

    def advance(self, dt_s: float, normal: float) -> SimValue:
        raise NotImplementedError


class Excursion(ActiveScenario):
    def __init__(self, spec: ExcursionSpec, key: TagKey, tag: Tag, start: float, rate: float | None,
                 hold_s: float | None = None) -> None:  # fmt: skip
        super().__init__(spec, key)
        climb = spec.rise_pct_s if rate is None else rate
        if not (math.isfinite(climb) and climb > 0):
            raise ValueError(f"rate must be a positive % of span per second, not {rate}")
        self.peak = excursion_peak(tag, spec.overshoot_pct)
        self.up = climb * tag.span / 100.0
        self.down = self.up * spec.fall_factor
        if hold_s is not None and not (math.isfinite(hold_s) and hold_s >= 0):
            raise ValueError(f"hold must be a number of seconds, not {hold_s}")
        # by default at the peak long enough for the tag's on-delay to pass, so the excursion raises HH
        self.hold_s = (
            hold_s if hold_s is not None else max(spec.hold_s, tag.effective_delays_s[0] + HOLD_MARGIN_S)
        )
        self.value = start
        self.phase = "rise"

    def advance(self, dt_s: float, normal: float) -> SimValue:
        self.elapsed_s += dt_s
        if self.phase == "rise":
            self.value = min(self.peak, self.value + self.up * dt_s)
            if self.value >= self.peak:
                self.phase = "hold"
        elif self.phase == "hold":
            self.hold_s -= dt_s
            if self.hold_s <= 0:
                self.phase = "fall"
        elif self.phase == "fall":
            self.value = max(normal, self.value - self.down * dt_s)
            if self.value <= normal:
                self.phase = "done"
        else:
            self.value = normal
        return SimValue(self.value)


class Fault(ActiveScenario):
    def __init__(self, spec: FaultSpec, key: TagKey, last: float) -> None:
        super().__init__(spec, key)
        self.mode = spec.mode
        self.duration_s = spec.duration_s
        self.frozen = last
        self.phase = spec.mode.value

    def advance(self, dt_s: float, normal: float) -> SimValue:
        self.elapsed_s += dt_s
        if self.elapsed_s >= self.duration_s:
            self.phase = "done"
        if self.done:
            return SimValue(normal)
        if self.mode is FaultMode.FAILED:
            return SimValue(math.nan, FaultMode.FAILED)
        return SimValue(self.frozen, FaultMode.FROZEN)


def begin(spec: ScenarioSpec, key: TagKey, tag: Tag, last: float, rate: float | None,
          hold_s: float | None = None) -> ActiveScenario:  # fmt: skip
    """Start spec on a tag whose last value was last."""
    if isinstance(spec, ExcursionSpec):
        return Excursion(spec, key, tag, last, rate, hold_s)
    if rate is not None or hold_s is not None:
        raise ValueError(
            f"rate and hold apply to the excursions ({', '.join(excursion_names())}), not {spec.name}"
        )
    return Fault(spec, key, last)


def excursion_names() -> list[str]:
    return [name for name, spec in SCENARIOS.items() if isinstance(spec, ExcursionSpec)]
