"""The plant's process model: pure, synchronous and deterministic for a seed.

``PlantModel(plant, seed)`` simulates every tag of every enterprise of a devices file. ``step(dt_s)``
advances it; ``reading(enterprise, tag)`` gives a tag's value and its transmitter's health. Normal
operation keeps every tag inside its limits; ``start_scenario`` drives one tag out and back (see
simulators.scenarios), ``reset`` ends it.
"""

from __future__ import annotations

import logging
import math
import random
from typing import Any

from hazardwatch.ledger import Plant, Tag, TagKind
from simulators.behaviour import SHARED_TAU_S, OrnsteinUhlenbeck, TagProcess
from simulators.scenarios import (
    NORMAL,
    SCENARIO_NAMES,
    SCENARIOS,
    ActiveScenario,
    ExcursionSpec,
    ScenarioSpec,
    begin,
)
from simulators.values import FaultMode, SimValue, TagKey

logger = logging.getLogger(__name__)


class PlantModel:
    """Every tag of the plant, stepped together."""

    def __init__(self, plant: Plant, seed: int = 0) -> None:
        self.plant = plant
        self.time_s = 0.0
        self._rng = random.Random(seed)
        self._tags: dict[TagKey, Tag] = {}
        self._equipment: dict[TagKey, tuple[str, str]] = {}
        self._drivers: dict[tuple[str, str], OrnsteinUhlenbeck] = {}
        self._processes: dict[TagKey, TagProcess] = {}
        for enterprise, _, equipment, tag in plant.iter_tags():
            key = TagKey(enterprise.code, tag.code)
            owner = (enterprise.code, equipment.code)
            self._tags[key] = tag
            self._equipment[key] = owner
            if owner not in self._drivers:
                self._drivers[owner] = OrnsteinUhlenbeck(1.0, SHARED_TAU_S, self._rng)
            self._processes[key] = TagProcess(tag, self._rng)
        self._out: dict[TagKey, SimValue] = {k: SimValue(p.value) for k, p in self._processes.items()}
        self._active: ActiveScenario | None = None
        self._spread: list[ActiveScenario] = []  # a gas leak's other detectors
        self._last: dict[str, Any] | None = None

    # ------------------------------------------------------------------ reading

    @property
    def keys(self) -> list[TagKey]:
        """Every tag, in the order of the devices file."""
        return list(self._tags)

    def tag(self, enterprise_code: str, tag_code: str) -> Tag:
        return self._tags[self._key(enterprise_code, tag_code)]

    def reading(self, enterprise_code: str, tag_code: str) -> SimValue:
        return self._out[self._key(enterprise_code, tag_code)]

    def normal_value(self, enterprise_code: str, tag_code: str) -> float:
        """What the tag would read with no scenario running."""
        return self._processes[self._key(enterprise_code, tag_code)].value

    def _key(self, enterprise_code: str, tag_code: str) -> TagKey:
        key = TagKey(enterprise_code, tag_code)
        if key not in self._tags:
            raise KeyError(f"no tag {key} in the plant")
        return key

    # ------------------------------------------------------------------ time

    def step(self, dt_s: float) -> None:
        """Advance the whole plant by dt_s simulated seconds."""
        if not (math.isfinite(dt_s) and dt_s >= 0):
            raise ValueError(f"dt_s must be a finite, non-negative number of seconds, not {dt_s}")
        if dt_s == 0:
            return
        self.time_s += dt_s
        shared = {owner: driver.step(dt_s, self._rng) for owner, driver in self._drivers.items()}
        for key, process in self._processes.items():
            normal = process.step(self.time_s, dt_s, shared[self._equipment[key]], self._rng)
            self._out[key] = SimValue(normal)
        active = self._active
        if active is not None:
            self._out[active.key] = active.advance(dt_s, self._processes[active.key].value)
            if active.done:
                logger.info(
                    "scenario %s on %s ended after %.1f s", active.spec.name, active.key, active.elapsed_s
                )
                self._finish(active)
        for reached in list(self._spread):
            self._out[reached.key] = reached.advance(dt_s, self._processes[reached.key].value)
            if reached.done:
                self._spread.remove(reached)

    # ------------------------------------------------------------------ scenarios

    def start_scenario(
        self,
        name: str,
        *,
        enterprise: str | None = None,
        tag: str | None = None,
        rate: float | None = None,
        spread: int = 0,
        hold_s: float | None = None,
    ) -> dict[str, Any]:
        """Start a scenario (replacing any running one) and return the state, with ``replaced`` naming
        the scenario it ended while that still ran (else None); ValueError if invalid.

        ``spread`` (gas-leak only): the leak also reaches that many more detectors of the same
        kind on the same equipment (area), each climbing a fifth slower than the one before."""
        if name == NORMAL:
            self.reset()
            return self.state()
        spec = SCENARIOS.get(name)
        if spec is None:
            raise ValueError(f"unknown scenario {name!r}; valid scenarios: {', '.join(SCENARIO_NAMES)}")
        key = self._resolve(spec, enterprise, tag)
        last = self._out[key].value
        if not math.isfinite(last):
            last = self._processes[key].value
        active = begin(spec, key, self._tags[key], last, rate, hold_s)
        reached = self._reach(spec, key, rate, spread, hold_s)
        running = self._active
        replaced = (
            f"{running.spec.name} on {running.key}" if running is not None and not running.done else None
        )
        if self._active is not None or self._spread:
            if self._active is not None:
                logger.info("scenario %s on %s replaced", self._active.spec.name, self._active.key)
            self.reset()
        self._active = active
        self._spread = reached
        self._out[key] = active.advance(0.0, self._processes[key].value)
        logger.info("scenario %s started on %s", name, key)
        return {**self.state(), "replaced": replaced}

    def _reach(
        self, spec: ScenarioSpec, key: TagKey, rate: float | None, spread: int, hold_s: float | None
    ) -> list[ActiveScenario]:
        if spread <= 0:
            return []
        if not isinstance(spec, ExcursionSpec) or spec.name != "gas-leak":
            raise ValueError(f"spread applies to gas-leak, not {spec.name}")
        kind = self._tags[key].kind
        neighbours = [
            k for k, t in self._tags.items()
            if k != key and t.kind is kind and self._equipment[k] == self._equipment[key]
        ]  # fmt: skip
        if len(neighbours) < spread:
            raise ValueError(
                f"{key.tag} has {len(neighbours)} other {kind.value} detectors in its area, not {spread}"
            )
        base = rate if rate is not None else spec.rise_pct_s
        return [
            begin(spec, k, self._tags[k], self._processes[k].value, base * 0.8 ** (n + 1), hold_s)
            for n, k in enumerate(neighbours[:spread])
        ]

    def reset(self) -> None:
        """End any scenario; its tags read their normal values again."""
        for reached in self._spread:
            self._out[reached.key] = SimValue(self._processes[reached.key].value)
        self._spread = []
        active = self._active
        if active is None:
            return
        self._out[active.key] = SimValue(self._processes[active.key].value)
        active.phase = "cancelled"
        self._finish(active)

    def _finish(self, active: ActiveScenario) -> None:
        self._active = None
        self._last = {
            "scenario": active.spec.name,
            "enterprise": active.key.enterprise,
            "tag": active.key.tag,
            "outcome": "completed" if active.done else "cancelled",
            "ended_at_s": round(self.time_s, 3),
        }

    def _resolve(self, spec: ScenarioSpec, enterprise: str | None, tag: str | None) -> TagKey:
        enterprises = [e.code for e in self.plant.enterprises]
        if enterprise is not None and enterprise not in enterprises:
            raise ValueError(
                f"unknown enterprise {enterprise!r}; valid enterprises: {', '.join(enterprises)}"
            )
        pool = [
            key
            for kind in spec.kinds
            for key, t in self._tags.items()
            if t.kind is kind and enterprise in (None, key.enterprise)
        ]
        kinds = "" if len(spec.kinds) == len(TagKind) else " or ".join(k.value for k in spec.kinds) + " "
        if tag is None:
            if not pool:
                raise ValueError(f"{spec.name} needs a {kinds}tag and there is none here")
            return pool[0]
        matches = [key for key in pool if key.tag == tag]
        if len(matches) > 1:
            raise ValueError(f"tag {tag} exists in several enterprises: give the enterprise too")
        if not matches:
            valid = ", ".join(str(key) for key in pool) or "none"
            raise ValueError(f"{spec.name} cannot drive tag {tag!r}; valid {kinds}tags: {valid}")
        return matches[0]

    def state(self) -> dict[str, Any]:
        """Scenario progress, as JSON-ready data."""
        active = self._active
        state: dict[str, Any] = {
            "time_s": round(self.time_s, 3),
            "last": self._last,
            "spread": [r.key.tag for r in self._spread],
        }
        if active is None:
            state.update(scenario=None, enterprise=None, tag=None, phase="idle", elapsed_s=0.0)
            state.update(value=None, mode=FaultMode.OK.value)
            return state
        out = self._out[active.key]
        state.update(
            scenario=active.spec.name,
            enterprise=active.key.enterprise,
            tag=active.key.tag,
            phase=active.phase,
            elapsed_s=round(active.elapsed_s, 3),
            value=out.value if math.isfinite(out.value) else None,
            mode=out.mode.value,
        )
        return state
