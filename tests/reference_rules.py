"""A plain per-reading reference of the rule engine's semantics, for tests and benchmarks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hazardwatch.quality import Quality
from rules.composite import TAG_CONDITIONS, CompositeConfig
from rules.engine import LONG_AGO, OVER_RANGE_SHARE, UNDER_RANGE_SHARE, TagConfig
from rules.windows import PREDICT_MIN_POINTS, PREDICT_MIN_SPAN_SHARE, PREDICT_T


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
    beyond: dict[tuple[str, int, int], bool] = field(default_factory=dict)  # …at or beyond limit k…
    since: dict[tuple[str, int, int], int] = field(default_factory=dict)  # …and since when
    window: dict[tuple[str, int], int] = field(default_factory=dict)  # ROC, FROZEN, PREDICT levels
    history: dict[int, list[tuple[int, float]]] = field(default_factory=dict)  # valid (ts, value)
    last_value: dict[int, float] = field(default_factory=dict)
    last_move: dict[int, int] = field(default_factory=dict)
    stale: dict[int, int] = field(default_factory=dict)
    watched_from: dict[int, int] = field(default_factory=dict)
    heard: dict[int, int] = field(default_factory=dict)  # since when heard without a silence
    flag: dict[tuple[str, int], bool] = field(default_factory=dict)  # FAULT, ROC, FROZEN, PREDICT raw…
    flag_since: dict[tuple[str, int], int] = field(default_factory=dict)  # …and since when it holds

    def _hold(self, name: str, i: int, ts: int, raw: bool, level: int) -> int:
        """The alarm level after this reading: on once ``raw`` has held for the condition's
        on-delay, off once it has not for its off-delay."""
        key = (name, i)
        if raw != self.flag.get(key, False):
            self.flag[key] = raw
            self.flag_since[key] = ts
        age = ts - self.flag_since.get(key, LONG_AGO)
        prefix = name.lower()
        if raw and age >= int(getattr(self.cfg, f"{prefix}_on_delay_ms")[i]):
            return 1
        if not raw and age >= int(getattr(self.cfg, f"{prefix}_off_delay_ms")[i]):
            return 0
        return level

    def tick(self, now: int) -> list[tuple[int, str, int, int]]:
        cfg, out = self.cfg, []
        for i in range(cfg.size):
            if not cfg.in_service[i] or cfg.stale_ms[i] <= 0:
                continue
            self.watched_from.setdefault(i, now)
            heard = max(self.last.get(i, LONG_AGO), self.watched_from[i])
            if not self.stale.get(i) and now - heard > cfg.stale_ms[i] + cfg.stale_on_delay_ms[i]:
                self.stale[i] = 1
                out.append((int(cfg.tag_id[i]), "STALE", 1, now))
        return out

    def _windows(self, i: int, ts: int, value: float) -> list[tuple[int, str, int, int]]:
        cfg = self.cfg
        keep = max(int(cfg.roc_period_ms[i]) if math.isfinite(float(cfg.roc_limit[i])) else 0,
                   int(cfg.predict_window_ms[i]) if int(cfg.predict_response_ms[i]) > 0 else 0)  # fmt: skip
        points = [(t, v) for t, v in self.history.get(i, []) if t >= ts - keep]
        points.append((ts, value))
        self.history[i] = points
        levels = {}
        limit, period = float(cfg.roc_limit[i]), int(cfg.roc_period_ms[i])
        roc = self.flag.get(("ROC", i), False)
        if math.isfinite(limit):
            move = abs(value - next(v for t, v in points if t >= ts - period))
            if move >= limit:
                roc = True
            elif move < limit - float(cfg.roc_deadband[i]):
                roc = False
        else:
            roc = False
        previous = self.last_value.get(i)
        if previous is None or not abs(value - previous) <= float(cfg.frozen_eps[i]):
            self.last_move[i] = ts
        self.last_value[i] = value
        window = int(cfg.frozen_window_ms[i])
        raw = {
            "ROC": roc,
            "FROZEN": window > 0 and ts - self.last_move[i] >= window,
            "PREDICT": self._predicts(
                i, ts, [(t, v) for t, v in points if t >= ts - int(cfg.predict_window_ms[i])]
            ),
        }
        for name, flag in raw.items():
            levels[name] = self._hold(name, i, ts, flag, self.window.get((name, i), 0))
        out = []
        for name, level in levels.items():
            if level != self.window.get((name, i), 0):
                out.append((int(cfg.tag_id[i]), name, level, ts))
            self.window[(name, i)] = level
        return out

    def _predicts(self, i: int, ts: int, points: list[tuple[int, float]]) -> bool:
        """The least-squares trend reaches the next limit within the response time (same formulas)."""
        cfg = self.cfg
        response = int(cfg.predict_response_ms[i])
        n = float(len(points))
        if response <= 0 or n < PREDICT_MIN_POINTS:
            return False
        window = int(cfg.predict_window_ms[i])
        if points[-1][0] - points[0][0] < PREDICT_MIN_SPAN_SHARE * window:
            return False
        sx = float(sum(t for t, _ in points))
        sy = sum(v for _, v in points)
        sxx = float(sum(t * t for t, _ in points))
        sxy = sum(t * v for t, v in points)
        syy = sum(v * v for _, v in points)
        a, b, c = n * sxx - sx * sx, n * sxy - sx * sy, n * syy - sy * sy
        if a <= 0 or b == 0 or b * b * (n - 2) < PREDICT_T**2 * (a * c - b * b):
            return False
        mid = len(points) // 2
        for half in (points[:mid], points[mid:]):  # a step is not a trend: the line holds in each half
            m = float(len(half))
            hx, hy = float(sum(t for t, _ in half)), sum(v for _, v in half)
            a_half = m * float(sum(t * t for t, _ in half)) - hx * hx
            b_half = m * sum(t * v for t, v in half) - hx * hy
            share = float(cfg.predict_half_share[i])
            if not (
                math.isnan(share)
                or (a_half > 0 and math.copysign(1.0, b) * (b_half * a - share * b * a_half) >= 0)
            ):
                return False
        slope = b / a
        fitted = (sy + slope * (n * ts - sx)) / n
        if slope > 0:
            ahead = [x for x in (float(cfg.h[i]), float(cfg.hh[i])) if math.isfinite(x) and fitted < x]
        else:
            ahead = [x for x in (float(cfg.l[i]), float(cfg.ll[i])) if math.isfinite(x) and fitted > x]
        if not ahead:
            return False
        target = ahead[0]
        time_to = (target - fitted) / slope
        return 0 < time_to <= response

    def _delay(self, name: str, i: int, ts: int, raw: int, level: int) -> int:
        """The alarm level after this reading: per limit k (1: H or L, 2: HH or LL) on once the raw
        level has been at or beyond k for the on-delay, off once short of k for the off-delay."""
        self.raw[(name, i)] = raw
        new = 0
        for k in (1, 2):
            key = (name, i, k)
            beyond = raw >= k
            if beyond != self.beyond.get(key, False):
                self.beyond[key] = beyond
                self.since[key] = ts
            held = ts - self.since.get(key, LONG_AGO)
            on = level >= k
            if beyond and held >= self.cfg.on_delay_ms[i]:
                on = True
            elif not beyond and held >= self.cfg.off_delay_ms[i]:
                on = False
            new += on
        return new

    def step(self, i: int, ts: int, value: float, quality: int) -> list[tuple[int, str, int, int]]:
        cfg = self.cfg
        if not cfg.in_service[i] or ts <= self.last.get(i, -(2**62)):
            return []
        previous = self.last.get(i)
        self.last[i] = ts
        if cfg.stale_ms[i] > 0 and (previous is None or previous < ts - int(cfg.stale_ms[i])):
            self.heard[i] = ts  # heard again after a silence
        heard_again = []
        if self.stale.get(i) and ts - self.heard.get(i, LONG_AGO) >= cfg.stale_off_delay_ms[i]:
            self.stale[i] = 0
            heard_again.append((int(cfg.tag_id[i]), "STALE", 0, ts))
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
                new = self._delay(name, i, ts, raw, table.get(i, 0))
                if new != table.get(i, 0):
                    out.append((tag_id, name, new, ts))
                    table[i] = new
        else:
            for name, table in (("HIGH", self.high), ("LOW", self.low)):  # a held raw level may mature
                held = self.raw.get((name, i), 0)
                new = self._delay(name, i, ts, held, table.get(i, 0))
                if new != table.get(i, 0):
                    out.append((tag_id, name, new, ts))
                    table[i] = new
        if valid:
            out += self._windows(i, ts, value)
        raw = self.flag.get(("FAULT", i), False)
        margin = float(cfg.fault_margin[i])
        if not valid:
            raw = True
        elif lo - UNDER_RANGE_SHARE * span + margin <= value <= hi + OVER_RANGE_SHARE * span - margin:
            raw = False  # back inside the band by the margin
        fault = self._hold("FAULT", i, ts, raw, self.fault.get(i, 0))
        if fault != self.fault.get(i, 0):
            out.append((tag_id, "FAULT", fault, ts))
        self.fault[i] = fault
        return heard_again + out


@dataclass
class CompositeReference:
    """VOTE and SOURCE from a batch's tag transitions, one source time after another, plainly."""

    cfg: CompositeConfig
    tag_ids: list[int]
    levels: dict[tuple[int, str], int] = field(default_factory=dict)  # (tag index, condition) → level
    vote: dict[int, int] = field(default_factory=dict)
    source: dict[int, int] = field(default_factory=dict)
    changed_at: dict[tuple[str, int], int] = field(default_factory=dict)

    def step(self, changes: list[tuple[int, str, int, int]]) -> list[tuple[str, int, str, int, int]]:
        """``changes``: the batch's (tag id, condition, level, time); returns composite transitions
        as (subject, subject id, condition, level, time)."""
        cfg, out = self.cfg, []
        index = {tag_id: i for i, tag_id in enumerate(self.tag_ids)}
        for ts in sorted({t for _, _, _, t in changes}):
            for tag_id, condition, level, t in changes:
                if t == ts:
                    self.levels[(index[tag_id], condition)] = level
            for g in range(cfg.groups):
                voted = "LOW" if cfg.vote_low[g] else "HIGH"
                members = [int(t) for m, t in zip(cfg.member_group, cfg.member_tag, strict=True) if m == g]
                at = [self.levels.get((m, voted), 0) for m in members]
                k = int(cfg.vote_k[g])
                level = 2 if sum(a >= 2 for a in at) >= k else (1 if sum(a >= 1 for a in at) >= k else 0)
                out += self._change("vote_group", g, int(cfg.vote_id[g]), "VOTE", level, ts, self.vote)
            for s in range(cfg.sources):
                names = [str(c) for c, on in zip(TAG_CONDITIONS, cfg.source_conditions[s], strict=True) if on]
                tags = [i for i in range(len(self.tag_ids)) if cfg.source_of(len(self.tag_ids))[i] == s]
                active = sum(any(self.levels.get((i, c), 0) > 0 for c in names) for i in tags)
                minimum = int(cfg.source_min_tags[s])
                level = int(minimum > 0 and active >= minimum)
                out += self._change(
                    "hazard_source", s, int(cfg.source_id[s]), "SOURCE", level, ts, self.source
                )
        return out

    def _change(self, subject: str, key: int, subject_id: int, condition: str, level: int, ts: int,
                table: dict[int, int]) -> list[tuple[str, int, str, int, int]]:  # fmt: skip
        if level == table.get(key, 0):
            return []
        table[key] = level
        at = max(ts, self.changed_at.get((subject, key), ts))  # never before the previous change
        self.changed_at[(subject, key)] = at
        return [(subject, subject_id, condition, level, at)]
