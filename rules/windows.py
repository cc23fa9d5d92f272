"""Conditions over a time window of a tag's valid readings, for a whole batch at once.

- **ROC** (rate of change): the value moved by at least ``roc_limit`` within ``roc_period``
  (against the earliest valid reading of the period); it resets when the move is back below
  the limit by the tag's deadband.
- **FROZEN**: no step between consecutive valid readings larger than ``frozen_eps`` for
  ``frozen_window`` (a stuck transmitter repeats its value; a live one moves).
- **PREDICT** (预警): a least-squares line over ``predict_window`` of readings (at least
  ``PREDICT_MIN_POINTS``, spanning at least half the window) whose slope is significant
  (|t| ≥ ``PREDICT_T``) reaches the next limit in its direction (H then HH rising, L then LL
  falling) within ``predict_response``. The span rule keeps a few seconds of noise, just after
  a start or a gap, from being extrapolated over minutes. A step is not a trend: the line must
  fit the whole window, so the slope fitted over each half of its readings (by count) must have
  the trend's sign and at least ``PREDICT_HALF_SHARE`` of its steepness. One jump, wherever it
  lies, leaves at least one half flat (a step back to normal after an excursion, a spike); a
  trend that started within the window counts once it runs through most of it.

Readings before the batch come from a per-tag history that keeps just the longest window. All of
it is computed on the batch sorted by (tag, time): window starts by ``searchsorted`` on a
(tag, time) key, sums over windows by differences of prefix sums. The least-squares quantities
are formed as ``n·Σxy − Σx·Σy`` and the like, so that integer inputs give exact results (the
per-reading reference in the tests uses the same formulas).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rules.limits import Runs, T, fill, previous_in_group

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

PREDICT_MIN_POINTS = 5
PREDICT_MIN_SPAN_SHARE = 0.5  # of the window, covered from the oldest to the newest reading in it
PREDICT_T = 3.0
PREDICT_HALF_SHARE = 0.25  # of the whole window's slope, in each half of it (the default; NaN: no test)


@dataclass(slots=True)
class History:
    """Valid readings kept for the windows, sorted by (tag, time)."""

    idx: Ints
    ts: Ints
    val: Floats

    @classmethod
    def empty(cls) -> History:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))

    def copy(self) -> History:
        return History(self.idx.copy(), self.ts.copy(), self.val.copy())


@dataclass(frozen=True, slots=True)
class WindowResult:
    roc_set: Bools  # per new reading
    roc_reset: Bools
    predict: Bools
    predict_limit: Floats  # the limit the trend heads for (NaN when none)
    history: History  # what to keep for the next batch


def evaluate_windows(idx: Ints, ts: Ints, val: Floats, history: History, *, roc_limit: Floats,
                     roc_period_ms: Ints, predict_window_ms: Ints, predict_response_ms: Ints,
                     half_share: Floats, deadband: Floats, h: Floats, hh: Floats, low: Floats, lowlow: Floats,
                     keep_ms: Ints) -> WindowResult:  # fmt: skip
    """Window conditions for new valid readings (sorted by tag and time, newer than the history)."""
    n_new, n_old = idx.size, history.idx.size
    # Merge the two (tag, time)-sorted runs: each new reading is newer than its tag's history, so
    # it goes after that history, behind the new readings of its tag before it.
    pos = np.searchsorted(history.idx, idx, side="right") + np.arange(n_new)
    old = np.ones(n_old + n_new, bool)
    old[pos] = False
    all_idx, all_ts, all_val = _merged(history.idx, idx, pos, old), _merged(history.ts, ts, pos, old), \
        _merged(history.val, val, pos, old)  # fmt: skip
    base = int(all_ts.min()) if all_ts.size else 0
    rel = all_ts - base
    span = (
        int(rel.max(initial=0)) + int(max(roc_period_ms.max(initial=0), predict_window_ms.max(initial=0))) + 2
    )
    key = all_idx * span + rel  # orders as (tag, time)

    # rate of change against the earliest reading of the period
    tags = all_idx[pos]
    roc_start = np.searchsorted(key, key[pos] - roc_period_ms[tags], side="left")
    move = np.abs(all_val[pos] - all_val[roc_start])
    enabled = np.isfinite(roc_limit[tags])
    with np.errstate(invalid="ignore"):
        roc_set = enabled & (move >= roc_limit[tags])
        roc_reset = ~enabled | (move < roc_limit[tags] - deadband[tags])

    # least squares over the prediction window, only where a tag predicts (x in ms from the base)
    predict = np.zeros(n_new, bool)
    target = np.full(n_new, np.nan)
    wants = np.flatnonzero(predict_response_ms[tags] > 0)
    if wants.size:
        # the sums run over the readings of predicting tags only (still in (tag, time) order)
        sel = np.flatnonzero(predict_response_ms[all_idx] > 0)
        p_tags = tags[wants]
        p_pos = np.searchsorted(sel, pos[wants])  # positions within the selection
        x_ms = rel[sel]
        x, y = x_ms.astype(np.float64), all_val[sel]
        sel_key = key[sel]
        # the sums of x and x² in integers where they cannot overflow: exact, and numpy adds
        # integers several times faster than floats
        exact = x_ms.size * float(rel.max(initial=0)) ** 2 < 2.0**62
        cx, cxx = (_prefix(x_ms), _prefix(x_ms * x_ms)) if exact else (_prefix(x), _prefix(x * x))
        cy, cxy, cyy = _prefix(y), _prefix(x * y), _prefix(y * y)
        start = np.searchsorted(sel_key, sel_key[p_pos] - predict_window_ms[p_tags], side="left")
        end = p_pos + 1
        n = (end - start).astype(np.float64)
        sx, sy = (cx[end] - cx[start]).astype(np.float64), cy[end] - cy[start]
        sxx, sxy, syy = (
            (cxx[end] - cxx[start]).astype(np.float64),
            cxy[end] - cxy[start],
            cyy[end] - cyy[start],
        )
        a = n * sxx - sx * sx
        b = n * sxy - sx * sy
        c = n * syy - sy * sy
        mid = start + (end - start) // 2
        halves = [_fit(cx, cxx, cy, cxy, lo, hi) for lo, hi in ((start, mid), (mid, end))]
        with np.errstate(invalid="ignore", divide="ignore"):
            slope = b / a  # per ms
            fitted = (sy + slope * (n * x[p_pos] - sx)) / n
            significant = (
                (n >= PREDICT_MIN_POINTS)
                & (x[p_pos] - x[start] >= PREDICT_MIN_SPAN_SHARE * predict_window_ms[p_tags])
                & (a > 0)
                & (b != 0)
                & (b * b * (n - 2) >= PREDICT_T**2 * (a * c - b * b))
            )
            for a_half, b_half in halves:  # the line holds in both halves: not one jump
                share = half_share[p_tags]
                steep = np.sign(b) * (b_half * a - share * b * a_half) >= 0
                significant &= np.isnan(share) | ((a_half > 0) & steep)
            h_, hh_, l_, ll_ = h[p_tags], hh[p_tags], low[p_tags], lowlow[p_tags]
            rising = np.where(fitted < h_, h_, np.where(fitted < hh_, hh_, np.nan))
            falling = np.where(fitted > l_, l_, np.where(fitted > ll_, ll_, np.nan))
            heads_for = np.where(slope > 0, rising, np.where(slope < 0, falling, np.nan))
            time_to = (heads_for - fitted) / slope
            hit = (
                significant & np.isfinite(heads_for) & (time_to > 0)
                & (time_to <= predict_response_ms[p_tags])
            )  # fmt: skip
        predict[wants] = hit
        target[wants] = np.where(hit, heads_for, np.nan)

    # keep, per tag, the readings inside its longest window back from its newest reading (the
    # last of its run in the sorted arrays)
    runs = Runs.of(all_idx)
    last = runs.last
    cutoff = all_ts[last] - keep_ms[runs.tags]
    keep = all_ts >= np.repeat(cutoff, np.diff(runs.first, append=all_idx.size))
    history = History(all_idx[keep], all_ts[keep], all_val[keep])
    return WindowResult(roc_set, roc_reset, predict, target, history)


def _fit(cx: Floats | Ints, cxx: Floats | Ints, cy: Floats, cxy: Floats, start: Ints,
         end: Ints) -> tuple[Floats, Floats]:  # fmt: skip
    """``n·Σx² − (Σx)²`` and ``n·Σxy − Σx·Σy`` over [start, end) from prefix sums (the slope is
    their ratio)."""
    n = (end - start).astype(np.float64)
    sx: Floats = (cx[end] - cx[start]).astype(np.float64)
    sxx: Floats = (cxx[end] - cxx[start]).astype(np.float64)
    sy, sxy = cy[end] - cy[start], cxy[end] - cxy[start]
    return n * sxx - sx * sx, n * sxy - sx * sy


def _merged(old: npt.NDArray[T], new: npt.NDArray[T], pos: Ints, is_old: Bools) -> npt.NDArray[T]:
    out = np.empty(old.size + new.size, old.dtype)
    out[pos] = new
    out[is_old] = old
    return out


def _prefix(values: npt.NDArray[T]) -> npt.NDArray[T]:
    out = np.zeros(values.size + 1, values.dtype)
    np.cumsum(values, out=out[1:])
    return out


def frozen_levels(val: Floats, ts: Ints, runs: Runs, eps: Floats, window_ms: Ints, seed_value: Floats,
                  seed_move_ts: Ints) -> tuple[Bools, Ints]:  # fmt: skip
    """FROZEN per new valid reading, and since when each reading's value has not moved.

    A reading moves when it differs from the tag's previous valid value by more than ``eps`` (the
    first value ever is a move); the value is frozen once no move happened for ``window_ms``.
    ``eps`` and ``window_ms`` are per tag, the seeds (the tag's last value and move) per run.
    """
    idx = runs.idx
    previous = previous_in_group(val, seed_value, runs)
    with np.errstate(invalid="ignore"):
        moved = ~(np.abs(val - previous) <= eps[idx])  # NaN (no previous value) counts as a move
    move_ts = fill(moved, ts, seed_move_ts, runs)
    window = window_ms[idx]
    frozen = (window > 0) & (ts - move_ts >= window)
    return frozen, move_ts
