"""A plain per-reading reference of the limit engine's semantics, for tests and benchmarks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hazardwatch.quality import Quality
from rules.engine import LONG_AGO, OVER_RANGE_SHARE, UNDER_RANGE_SHARE, TagConfig


def _side(level: int, v: float, first: float, second: float, db: float) -> int:
    on1, on2 = level >= 1, level >= 2
    if v >= first:
        on1 = True
    elif v < first - db:
        on1 = False
    if v >= second:
        on2 = True
    elif v < second - db:
        on2 = False
    return 2 if on2 else (1 if on1 else 0)


@dataclass
class Reference:
    """Written for clarity, not speed: one reading at a time, dicts for state."""

    cfg: TagConfig
    high: dict[int, int] = field(default_factory=dict)  # alarm levels, after the delays
    low: dict[int, int] = field(default_factory=dict)
    fault: dict[int, int] = field(default_factory=dict)
    last: dict[int, int] = field(default_factory=dict)
    raw: dict[tuple[str, int], int] = field(default_factory=dict)  # levels before the delays…
    since: dict[tuple[str, int], int] = field(default_factory=dict)  # …and since when they hold

    def _delay(self, name: str, i: int, ts: int, raw: int) -> int | None:
        """The alarm level once ``raw`` has held for its delay, else None (the level stays)."""
        key = (name, i)
        if raw != self.raw.get(key, 0):
            self.raw[key] = raw
            self.since[key] = ts
        delay = self.cfg.on_delay_ms[i] if raw > 0 else self.cfg.off_delay_ms[i]
        return raw if ts - self.since.get(key, LONG_AGO) >= delay else None

    def step(self, i: int, ts: int, value: float, quality: int) -> list[tuple[int, str, int, int]]:
        cfg = self.cfg
        if not cfg.in_service[i] or ts <= self.last.get(i, -(2**62)):
            return []
        self.last[i] = ts
        lo, hi = float(cfg.range_low[i]), float(cfg.range_high[i])
        span = hi - lo
        valid = (
            quality in (Quality.GOOD, Quality.UNCERTAIN)
            and math.isfinite(value)
            and lo - UNDER_RANGE_SHARE * span <= value <= hi + OVER_RANGE_SHARE * span
        )
        tag_id = int(cfg.tag_id[i])
        out = []
        if valid:
            db = float(cfg.deadband[i])
            raw_high = _side(self.raw.get(("HIGH", i), 0), value, float(cfg.h[i]), float(cfg.hh[i]), db)
            raw_low = _side(self.raw.get(("LOW", i), 0), -value, -float(cfg.l[i]), -float(cfg.ll[i]), db)
            for name, table, raw in (("HIGH", self.high, raw_high), ("LOW", self.low, raw_low)):
                new = self._delay(name, i, ts, raw)
                if new is not None and new != table.get(i, 0):
                    out.append((tag_id, name, new, ts))
                    table[i] = new
        else:
            for name, table in (("HIGH", self.high), ("LOW", self.low)):  # a held raw level may mature
                held = self.raw.get((name, i), 0)
                new = self._delay(name, i, ts, held)
                if new is not None and new != table.get(i, 0):
                    out.append((tag_id, name, new, ts))
                    table[i] = new
        fault = 0 if valid else 1
        if fault != self.fault.get(i, 0):
            out.append((tag_id, "FAULT", fault, ts))
        self.fault[i] = fault
        return out
