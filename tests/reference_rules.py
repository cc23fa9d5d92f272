"""A plain per-reading reference of the limit engine's semantics, for tests and benchmarks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hazardwatch.quality import Quality
from rules.engine import OVER_RANGE_SHARE, UNDER_RANGE_SHARE, TagConfig


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
    high: dict[int, int] = field(default_factory=dict)
    low: dict[int, int] = field(default_factory=dict)
    fault: dict[int, int] = field(default_factory=dict)
    last: dict[int, int] = field(default_factory=dict)

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
            new_high = _side(self.high.get(i, 0), value, float(cfg.h[i]), float(cfg.hh[i]), db)
            new_low = _side(self.low.get(i, 0), -value, -float(cfg.l[i]), -float(cfg.ll[i]), db)
            for name, table, new in (("HIGH", self.high, new_high), ("LOW", self.low, new_low)):
                if new != table.get(i, 0):
                    out.append((tag_id, name, new, ts))
                table[i] = new
        fault = 0 if valid else 1
        if fault != self.fault.get(i, 0):
            out.append((tag_id, "FAULT", fault, ts))
        self.fault[i] = fault
        return out
