"""The rule engine: per-tag configuration and state arrays, evaluated one batch at a time.

Limit conditions (HIGH: H/HH, LOW: L/LL) go through two stages per tag. The *raw* level is a
hysteresis latch on the value (set at the limit, reset past it by the deadband). The *alarm*
level follows the raw level once the raw level has held for its delay: the on-delay for a
non-zero level, the off-delay for normal. A raw level that changes before its delay has passed
leaves the alarm level where it was (a fleeting excursion raises nothing). Delays are measured
in source time between readings, so they are checked at each reading of the tag.

Time comes from the data. Readings are evaluated in source-time order per tag; a reading
no newer than the last one evaluated for its tag (a replay of stored data, or late data) is
not evaluated, so a replay neither raises a stale condition again nor clears a live one; of
several readings of one tag with the same time, the first received counts (as in storage).
Tags out of service are not evaluated (their alarms are suppressed by design).

Composite conditions (VOTE of a voting group, SOURCE of a hazard source; ``rules.composite``)
follow the tag conditions' changes in the same call; a tag out of service counts for none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from hazardwatch.quality import VALUED_QUALITIES
from rules.chatter import fault_levels, heard_since, stale_cleared
from rules.composite import CODE, CompositeConfig, CompositeState, TagChanges, evaluate_composites
from rules.limits import (
    Runs,
    delayed,
    held,
    high_levels,
    latch,
    low_levels,
    previous_in_group,
    tag_time_order,
)
from rules.types import Condition, Subject, Transition
from rules.windows import PREDICT_HALF_SHARE, History, evaluate_windows, frozen_levels

# A transmitter reading beyond its range by more than NAMUR NE 43's measuring band
# (3.8–20.5 mA, i.e. -1.25 % … +103.125 % of span) is an instrument fault.
UNDER_RANGE_SHARE = 0.0125
OVER_RANGE_SHARE = 0.03125


# GOOD (0) and UNCERTAIN (1) are the qualities that carry a value.
_MAX_VALUED = max(VALUED_QUALITIES)
assert set(range(_MAX_VALUED + 1)) == VALUED_QUALITIES  # noqa: S101 - the codes stay contiguous


@dataclass(frozen=True, slots=True)
class TagConfig:
    """Per-tag rule settings as arrays, all indexed by the tag's engine index."""

    tag_id: npt.NDArray[np.int64]
    ll: npt.NDArray[np.float64]
    l: npt.NDArray[np.float64]  # noqa: E741 - the industry's name
    h: npt.NDArray[np.float64]
    hh: npt.NDArray[np.float64]
    deadband: npt.NDArray[np.float64]
    range_low: npt.NDArray[np.float64]
    range_high: npt.NDArray[np.float64]
    in_service: npt.NDArray[np.bool_]
    on_delay_ms: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    off_delay_ms: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    roc_limit: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))  # NaN: no ROC
    roc_period_ms: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    frozen_eps: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    frozen_window_ms: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))  # 0: off
    predict_window_ms: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    predict_response_ms: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    stale_ms: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))  # 0: no STALE
    # chatter protection of the other conditions (not given: none): on-/off-delays, and hysteresis
    fault_margin: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))  # back inside the band
    fault_on_delay_ms: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    fault_off_delay_ms: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    roc_deadband: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))  # not given: deadband
    roc_on_delay_ms: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    roc_off_delay_ms: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    frozen_on_delay_ms: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    frozen_off_delay_ms: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    predict_on_delay_ms: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    predict_off_delay_ms: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    # each half of the window must show this share of the trend's slope (not given: PREDICT_HALF_SHARE;
    # NaN: a step counts as a trend, as before the test existed — for baselines)
    predict_half_share: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    stale_on_delay_ms: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    stale_off_delay_ms: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))

    DELAYS = ("on_delay_ms", "off_delay_ms", "fault_on_delay_ms", "fault_off_delay_ms", "roc_on_delay_ms",
              "roc_off_delay_ms", "frozen_on_delay_ms", "frozen_off_delay_ms", "predict_on_delay_ms",
              "predict_off_delay_ms", "stale_on_delay_ms", "stale_off_delay_ms")  # fmt: skip

    def __post_init__(self) -> None:
        n = self.tag_id.size
        for name in (*self.DELAYS, "roc_period_ms", "frozen_window_ms", "predict_window_ms",
                     "predict_response_ms", "stale_ms"):  # fmt: skip
            if getattr(self, name).size != n:  # not given: off
                object.__setattr__(self, name, np.zeros(n, np.int64))
        for name, default in (("roc_limit", np.nan), ("frozen_eps", 0.0), ("fault_margin", 0.0),
                              ("predict_half_share", PREDICT_HALF_SHARE)):  # fmt: skip
            if getattr(self, name).size != n:
                object.__setattr__(self, name, np.full(n, default))
        if self.roc_deadband.size != n:
            object.__setattr__(self, "roc_deadband", self.deadband.copy())

    @property
    def window_ms(self) -> npt.NDArray[np.int64]:
        """How far back each tag's window conditions look (0: none)."""
        roc = np.where(np.isfinite(self.roc_limit), self.roc_period_ms, 0)
        predict = np.where(self.predict_response_ms > 0, self.predict_window_ms, 0)
        return np.maximum(roc, predict)

    @property
    def size(self) -> int:
        return int(self.tag_id.size)


I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def fault_band(range_low: F64, range_high: F64) -> tuple[F64, F64]:
    """Per tag, the values beyond which a reading is an instrument fault (NaN where no range is set),
    clipped to the finite floats: an infinite value is never a reading."""
    span = range_high - range_low
    biggest = np.finfo(np.float64).max
    low: F64 = np.clip(range_low - UNDER_RANGE_SHARE * span, -biggest, biggest)
    high: F64 = np.clip(range_high + OVER_RANGE_SHARE * span, -biggest, biggest)
    return low, high


LONG_AGO = -(2**62)  # a raw level held "since forever": any delay has passed


@dataclass(slots=True)
class EngineState:
    high: npt.NDArray[np.int8]  # alarm levels (after the delays)
    low: npt.NDArray[np.int8]
    fault: npt.NDArray[np.int8]
    last_ts: npt.NDArray[np.int64]
    high_raw: npt.NDArray[np.int8]  # raw levels (before the delays)…
    high_since: npt.NDArray[np.int64]  # …since when the raw level is on its side of H (of L)…
    high_since2: npt.NDArray[np.int64]  # …and on its side of HH (of LL)
    low_raw: npt.NDArray[np.int8]
    low_since: npt.NDArray[np.int64]
    low_since2: npt.NDArray[np.int64]
    roc: npt.NDArray[np.int8]
    frozen: npt.NDArray[np.int8]
    predict: npt.NDArray[np.int8]
    last_value: npt.NDArray[np.float64]  # the latest valid value…
    last_move: npt.NDArray[np.int64]  # …and when the value last moved (frozen detection)
    stale: npt.NDArray[np.int8]
    watched_from: npt.NDArray[np.int64]  # the clock tick from which silence counts (LONG_AGO: not yet)
    history: History  # valid readings inside each tag's window
    # before the on-/off-delays of FAULT, ROC, FROZEN and PREDICT: each condition's raw level and
    # since when it holds; STALE: since when the tag has been heard without a silence
    fault_raw: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))
    fault_since: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    roc_raw: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))
    roc_since: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    frozen_raw: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))
    frozen_since: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    predict_raw: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))
    predict_since: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    heard_since: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    composite: CompositeState = field(default_factory=lambda: CompositeState.empty(0, 0))

    _ARRAYS = ("high", "low", "fault", "last_ts", "high_raw", "high_since", "high_since2", "low_raw",
               "low_since", "low_since2", "roc", "frozen", "predict", "last_value", "last_move", "stale",
               "watched_from", "fault_raw", "fault_since", "roc_raw", "roc_since", "frozen_raw",
               "frozen_since", "predict_raw", "predict_since", "heard_since")  # fmt: skip

    @classmethod
    def empty(cls, n: int) -> EngineState:
        return cls(
            high=np.zeros(n, np.int8),
            low=np.zeros(n, np.int8),
            fault=np.zeros(n, np.int8),
            last_ts=np.full(n, np.iinfo(np.int64).min, np.int64),
            high_raw=np.zeros(n, np.int8),
            high_since=np.full(n, LONG_AGO, np.int64),
            high_since2=np.full(n, LONG_AGO, np.int64),
            low_raw=np.zeros(n, np.int8),
            low_since=np.full(n, LONG_AGO, np.int64),
            low_since2=np.full(n, LONG_AGO, np.int64),
            roc=np.zeros(n, np.int8),
            frozen=np.zeros(n, np.int8),
            predict=np.zeros(n, np.int8),
            last_value=np.full(n, np.nan),
            last_move=np.full(n, LONG_AGO, np.int64),
            stale=np.zeros(n, np.int8),
            watched_from=np.full(n, LONG_AGO, np.int64),
            history=History.empty(),
            fault_raw=np.zeros(n, bool),
            fault_since=np.full(n, LONG_AGO, np.int64),
            roc_raw=np.zeros(n, bool),
            roc_since=np.full(n, LONG_AGO, np.int64),
            frozen_raw=np.zeros(n, bool),
            frozen_since=np.full(n, LONG_AGO, np.int64),
            predict_raw=np.zeros(n, bool),
            predict_since=np.full(n, LONG_AGO, np.int64),
            heard_since=np.full(n, LONG_AGO, np.int64),
        )

    def copy(self) -> EngineState:
        arrays = {name: getattr(self, name).copy() for name in self._ARRAYS}
        return EngineState(**arrays, history=self.history.copy(), composite=self.composite.copy())

    def carry(self, i: int, into: EngineState, j: int) -> None:
        """Copy tag ``i``'s state into tag ``j`` of another state (after a reload of the ledger).

        The window history is not carried: windows fill again from the next readings.
        """
        for name in self._ARRAYS:
            getattr(into, name)[j] = getattr(self, name)[i]


class RuleEngine:
    def __init__(self, config: TagConfig, composites: CompositeConfig | None = None) -> None:
        self.config = config
        self.composites = composites or CompositeConfig()
        self.state = EngineState.empty(config.size)
        self.state.composite = CompositeState.empty(self.composites.groups, self.composites.sources)
        self._index_of = {int(t): i for i, t in enumerate(config.tag_id)}
        # per tag: the band outside which a reading is an instrument fault, the window conditions' reach
        # (inside the finite floats: an infinite value is never a reading)
        self._fault_low, self._fault_high = fault_band(config.range_low, config.range_high)
        # …and the band a value must be back inside for the fault to reset (FAULT's hysteresis)
        self._inside_low = self._fault_low + config.fault_margin
        self._inside_high = self._fault_high - config.fault_margin
        self._window_ms = config.window_ms
        self._changed: list[tuple[int, I64, I64, I8, I8]] = []  # the batch's tag changes (composites)

    def index_of(self, tag_id: int) -> int | None:
        return self._index_of.get(tag_id)

    def seed(self, tag_id: int, condition: Condition, level: int) -> None:
        """Restore an active condition (from the open alarms) after a restart."""
        i = self._index_of.get(tag_id)
        if i is None:
            return
        st = self.state
        st.composite.pending = True
        if condition == Condition.HIGH:
            st.high[i] = st.high_raw[i] = level
            st.high_since[i] = st.high_since2[i] = LONG_AGO
        elif condition == Condition.LOW:
            st.low[i] = st.low_raw[i] = level
            st.low_since[i] = st.low_since2[i] = LONG_AGO
        elif condition == Condition.STALE:
            st.stale[i] = level
        else:  # the alarm's raw level held "since forever": a return to normal runs its off-delay
            name = condition.lower()
            getattr(st, name)[i] = level
            getattr(st, f"{name}_raw")[i] = level > 0
            getattr(st, f"{name}_since")[i] = LONG_AGO

    def seed_composite(self, subject: Subject, subject_id: int, level: int) -> None:
        """Restore an active composite (a voting group's VOTE, a hazard source's SOURCE) after a restart."""
        cfg, st = self.composites, self.state.composite
        ids, levels = (cfg.vote_id, st.vote) if subject == Subject.VOTE_GROUP else (cfg.source_id, st.source)
        levels[ids == subject_id] = level
        st.pending = True

    def carry_composites(self, old: RuleEngine) -> None:
        """Keep the composites' levels across a reload of the ledger (by voting group and hazard source)."""
        for ids, levels, times, old_ids, old_levels, old_times in (
            (self.composites.vote_id, self.state.composite.vote, self.state.composite.vote_ts,
             old.composites.vote_id, old.state.composite.vote, old.state.composite.vote_ts),
            (self.composites.source_id, self.state.composite.source, self.state.composite.source_ts,
             old.composites.source_id, old.state.composite.source, old.state.composite.source_ts),
        ):  # fmt: skip
            _, mine, theirs = np.intersect1d(ids, old_ids, return_indices=True)
            levels[mine], times[mine] = old_levels[theirs], old_times[theirs]
        self.state.composite.pending = True

    def warm_up(self, idx: I64, ts: I64, values: F64, quality: npt.NDArray[np.int16]) -> None:
        """Rebuild what only history knows — raw levels and since when they hold (pending delays),
        last values, window histories — from readings already evaluated before a restart.

        Their transitions were applied when they were stored, so they are dropped, and the alarm
        levels are zeroed: ``seed`` then sets them from the open alarms, the truth after a restart.
        """
        self.evaluate(idx, ts, values, quality)
        st = self.state
        for levels in (st.high, st.low, st.fault, st.roc, st.frozen, st.predict, st.stale, st.composite.vote,
                       st.composite.source):  # fmt: skip
            levels[:] = 0
        st.composite.pending = True

    @property
    def warm_up_ms(self) -> int:
        """How much history ``warm_up`` wants: the longest delay or window of any tag."""
        cfg = self.config
        reaches = (cfg.window_ms, cfg.frozen_window_ms, *(getattr(cfg, name) for name in cfg.DELAYS))
        longest = max((int(a.max(initial=0)) for a in reaches), default=0)
        return longest

    def tick(self, now_ms: int) -> list[Transition]:
        """The clock's turn: STALE for in-service tags silent for longer than their ``stale_ms`` and
        their STALE on-delay.

        Silence counts from a tag's last reading, or from the first tick for a tag not heard from
        since the engine started (a restart gives every tag its full period). Readings clear it once
        they have come for the STALE off-delay without a silence (a gap over ``stale_ms``) between them.
        """
        cfg, st = self.config, self.state
        watched = cfg.in_service & (cfg.stale_ms > 0)
        st.watched_from[watched & (st.watched_from == LONG_AGO)] = now_ms
        heard = np.maximum(st.last_ts, st.watched_from)
        silent = np.flatnonzero(
            watched & (st.stale == 0) & (now_ms - heard > cfg.stale_ms + cfg.stale_on_delay_ms)
        )
        if silent.size == 0:
            return []
        st.stale[silent] = 1
        return [
            Transition(int(cfg.tag_id[i]), Condition.STALE, 1, now_ms, None, None) for i in silent.tolist()
        ]

    def rewind(self, now_ms: int) -> None:
        """No tag's last evaluated time lies ahead of ``now_ms`` (the platform's clock).

        Readings are evaluated only when newer than the last one evaluated for their tag, so a time
        ahead of the clock (a reading accepted within ingest's tolerance, a gateway clock that then
        stepped back) would leave the tag deaf to real readings until the clock caught up; brought
        back to now, the tag hears the next real reading.
        """
        np.minimum(self.state.last_ts, now_ms, out=self.state.last_ts)

    def evaluate(
        self,
        idx: npt.NDArray[np.int64],
        ts: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        quality: npt.NDArray[np.int16],
        covered: npt.NDArray[np.bool_] | None = None,
    ) -> list[Transition]:
        """Evaluate one batch (any order, any mix of tags); returns transitions in time order.

        ``covered`` marks readings whose lack of a value another alarm already stands for (a
        device that does not answer: one alarm for the device, not a FAULT per tag); at those
        the tag's FAULT level holds, so it neither rises nor clears.
        """
        cfg, st = self.config, self.state
        order = tag_time_order(idx, ts)
        idx, ts, values, quality = idx[order], ts[order], values[order], quality[order]
        keep = cfg.in_service[idx] & (ts > st.last_ts[idx])
        keep[1:] &= (idx[1:] != idx[:-1]) | (ts[1:] != ts[:-1])  # one reading per (tag, time): the first
        idx, ts, values, quality = idx[keep], ts[keep], values[keep], quality[keep]
        covered = None if covered is None else covered[order][keep]
        if idx.size == 0:
            return []
        self._changed = []
        runs = Runs.of(idx)
        tags = runs.tags
        valid = (
            (quality <= _MAX_VALUED) & (values >= self._fault_low[idx]) & (values <= self._fault_high[idx])
        )
        with np.errstate(invalid="ignore"):
            inside = valid & (values >= self._inside_low[idx]) & (values <= self._inside_high[idx])
        fault_on, fault_raw, fault_since = fault_levels(
            valid, inside, covered if covered is not None and covered.any() else None, st.fault_raw[tags],
            st.fault_since[tags], st.fault[tags] >= 1, cfg.fault_on_delay_ms[idx],
            cfg.fault_off_delay_ms[idx], ts, runs,
        )  # fmt: skip
        fault = fault_on.view(np.int8)
        h, hh, low_, lowlow, deadband = (cfg.h[idx], cfg.hh[idx], cfg.l[idx], cfg.ll[idx], cfg.deadband[idx])
        on_delay, off_delay = cfg.on_delay_ms[idx], cfg.off_delay_ms[idx]
        high_raw = high_levels(values, valid, h, hh, deadband, st.high_raw[tags], runs)
        low_raw = low_levels(values, valid, low_, lowlow, deadband, st.low_raw[tags], runs)
        high, high_since = delayed(high_raw, st.high_raw[tags], (st.high_since[tags], st.high_since2[tags]),
                                   st.high[tags], on_delay, off_delay, ts, runs)  # fmt: skip
        low, low_since = delayed(low_raw, st.low_raw[tags], (st.low_since[tags], st.low_since2[tags]),
                                 st.low[tags], on_delay, off_delay, ts, runs)  # fmt: skip

        high_limit = np.where(high == 2, hh, np.where(high == 1, h, np.nan))
        low_limit = np.where(low == 2, lowlow, np.where(low == 1, low_, np.nan))
        transitions: list[Transition] = []
        for condition, levels, seed, limits in (
            (Condition.HIGH, high, st.high, high_limit),
            (Condition.LOW, low, st.low, low_limit),
            (Condition.FAULT, fault, st.fault, None),
        ):
            transitions += self._changes(condition, levels, seed, limits, runs, ts, values)
        transitions += self._window_transitions(idx[valid], ts[valid], values[valid])
        last = runs.last
        st.high[tags] = high[last]
        st.low[tags] = low[last]
        st.high_raw[tags] = high_raw[last]
        st.high_since[tags], st.high_since2[tags] = high_since[0][last], high_since[1][last]
        st.low_raw[tags] = low_raw[last]
        st.low_since[tags], st.low_since2[tags] = low_since[0][last], low_since[1][last]
        st.fault[tags], st.fault_raw[tags] = fault[last], fault_raw[last]
        st.fault_since[tags] = fault_since[last]
        heard = heard_since(ts, st.last_ts[tags], st.heard_since[tags], cfg.stale_ms[idx], runs)
        st.last_ts[tags], st.heard_since[tags] = ts[last], heard[last]
        # a silent tag's silence ends once it has been heard for its off-delay
        heard_again, at = stale_cleared(st.stale[tags] == 1, heard, cfg.stale_off_delay_ms[idx], ts, runs)
        transitions += [
            Transition(int(cfg.tag_id[i]), Condition.STALE, 0, int(t), None, None)
            for i, t in zip(tags[heard_again].tolist(), at.tolist(), strict=True)
        ]
        st.stale[tags[heard_again]] = 0
        transitions += self._composite_transitions(int(ts.max()))
        transitions.sort(key=lambda t: t.ts_ms)
        return transitions

    def _composite_transitions(self, newest_ts: int) -> list[Transition]:
        """VOTE and SOURCE from the tags' levels after the batch and the batch's tag changes."""
        cfg, st = self.composites, self.state
        if not (cfg.groups or cfg.sources) or not (self._changed or st.composite.pending):
            return []  # no tag changed: nothing a composite follows changed either
        parts = self._changed or [(0, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8),
                                   np.zeros(0, np.int8))]  # fmt: skip
        changes = TagChanges(
            tag=np.concatenate([p[1] for p in parts]),
            code=np.concatenate([np.full(p[1].size, p[0], np.int64) for p in parts]),
            ts=np.concatenate([p[2] for p in parts]),
            before=np.concatenate([p[3] for p in parts]),
            after=np.concatenate([p[4] for p in parts]),
        )
        self._changed = []
        levels = np.stack([st.high, st.low, st.fault, st.roc, st.frozen, st.predict], axis=1)
        levels[~self.config.in_service] = 0  # a tag out of service votes for nothing
        return [
            Transition(
                c.subject_id,
                c.condition,
                c.level,
                c.ts_ms,
                float(c.count),
                float(c.threshold),
                subject=c.subject,
            )
            for c in evaluate_composites(cfg, st.composite, levels, changes, newest_ts)
        ]

    def _window_transitions(self, idx: I64, ts: I64, values: F64) -> list[Transition]:
        """ROC, FROZEN and PREDICT over the batch's valid readings (sorted by tag and time).

        Only the tags that have these conditions configured are looked at.
        """
        cfg, st = self.config, self.state
        transitions: list[Transition] = []
        windowed = self._window_ms[idx] > 0
        if windowed.any():
            w_idx, w_ts, w_values = idx[windowed], ts[windowed], values[windowed]
            runs = Runs.of(w_idx)
            w = evaluate_windows(
                w_idx, w_ts, w_values, st.history, roc_limit=cfg.roc_limit, roc_period_ms=cfg.roc_period_ms,
                predict_window_ms=cfg.predict_window_ms, predict_response_ms=cfg.predict_response_ms,
                half_share=cfg.predict_half_share,
                deadband=cfg.roc_deadband, h=cfg.h, hh=cfg.hh, low=cfg.l, lowlow=cfg.ll,
                keep_ms=self._window_ms,
            )  # fmt: skip
            t = runs.tags
            roc_raw = latch(w.roc_set, w.roc_reset, st.roc_raw[t], runs)
            roc_on, roc_since = held(
                roc_raw, st.roc_raw[t], st.roc_since[t], st.roc[t] >= 1, cfg.roc_on_delay_ms[w_idx],
                cfg.roc_off_delay_ms[w_idx], w_ts, runs,
            )  # fmt: skip
            predict_on, predict_since = held(
                w.predict, st.predict_raw[t], st.predict_since[t], st.predict[t] >= 1,
                cfg.predict_on_delay_ms[w_idx], cfg.predict_off_delay_ms[w_idx], w_ts, runs,
            )  # fmt: skip
            roc, predict = roc_on.view(np.int8), predict_on.view(np.int8)
            roc_limit = np.where(roc == 1, cfg.roc_limit[w_idx], np.nan)
            transitions += self._changes(Condition.ROC, roc, st.roc, roc_limit, runs, w_ts, w_values)
            transitions += self._changes(
                Condition.PREDICT, predict, st.predict, w.predict_limit, runs, w_ts, w_values
            )
            last = runs.last
            st.roc[t], st.roc_raw[t], st.roc_since[t] = roc[last], roc_raw[last], roc_since[last]
            st.predict[t], st.predict_raw[t], st.predict_since[t] = (
                predict[last], w.predict[last], predict_since[last],
            )  # fmt: skip
            st.history = w.history
        watched = cfg.frozen_window_ms[idx] > 0
        if watched.any():
            f_idx, f_ts, f_values = idx[watched], ts[watched], values[watched]
            runs = Runs.of(f_idx)
            frozen_on, move_ts = frozen_levels(f_values, f_ts, runs, cfg.frozen_eps, cfg.frozen_window_ms,
                                               st.last_value[runs.tags], st.last_move[runs.tags])  # fmt: skip
            t = runs.tags
            frozen_alarm, frozen_since = held(
                frozen_on, st.frozen_raw[t], st.frozen_since[t], st.frozen[t] >= 1,
                cfg.frozen_on_delay_ms[f_idx], cfg.frozen_off_delay_ms[f_idx], f_ts, runs,
            )  # fmt: skip
            frozen = frozen_alarm.view(np.int8)
            transitions += self._changes(Condition.FROZEN, frozen, st.frozen, None, runs, f_ts, f_values)
            last = runs.last
            st.frozen[t], st.last_value[t], st.last_move[t] = frozen[last], f_values[last], move_ts[last]
            st.frozen_raw[t], st.frozen_since[t] = frozen_on[last], frozen_since[last]
        return transitions

    def _changes(self, condition: Condition, levels: I8, seed: I8, limits: F64 | None, runs: Runs, ts: I64,
                 values: F64) -> list[Transition]:  # fmt: skip
        """Transitions where a condition's level differs from the tag's level before that reading."""
        idx = runs.idx
        before = previous_in_group(levels, seed[runs.tags], runs)
        changed = np.flatnonzero(levels != before)
        if not changed.size:
            return []
        if condition in CODE:
            self._changed.append(
                (CODE[condition], idx[changed], ts[changed], before[changed], levels[changed])
            )
        chosen = None if limits is None else limits[changed]
        return self._transitions(
            condition, idx[changed], levels[changed], ts[changed], values[changed], chosen
        )

    def _transitions(
        self,
        condition: Condition,
        idx: npt.NDArray[np.int64],
        levels: npt.NDArray[np.int8],
        ts: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        limits: npt.NDArray[np.float64] | None,
    ) -> list[Transition]:
        """Transition objects for the changed readings, with the limit each level refers to."""
        if limits is None:
            limits = np.full(idx.size, np.nan)
        return [
            Transition(
                tag_id,
                condition,
                level,
                ts_ms,
                None if value != value else value,
                None if limit != limit else limit,
            )
            for tag_id, level, ts_ms, value, limit in zip(
                self.config.tag_id[idx].tolist(),
                levels.tolist(),
                ts.tolist(),
                np.where(np.isfinite(values), values, np.nan).tolist(),
                limits.tolist(),
                strict=True,
            )
        ]
