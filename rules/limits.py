"""Limit conditions with deadband over a whole batch, without a Python loop per reading.

Each limit is a hysteresis latch: it sets when the value reaches the limit and resets only
when the value has moved back past the limit by the deadband. Within a batch a latch's
state at each reading is the last set/reset event at or before it in the same tag's
time-ordered readings, or the tag's state before the batch when there was none: a forward
fill, computed with ``np.maximum.accumulate`` over event positions.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


def group_starts(idx: Ints) -> Ints:
    """For each position of a tag-sorted batch, the position where its tag's run starts."""
    n = idx.size
    boundary = np.ones(n, dtype=bool)
    boundary[1:] = idx[1:] != idx[:-1]
    starts = np.where(boundary, np.arange(n), 0)
    return np.maximum.accumulate(starts) if n else starts


def latch(set_: Bools, reset: Bools, seed: Bools, starts: Ints, idx: Ints) -> Bools:
    """The latch state after each reading (set wins over reset in the same reading)."""
    n = set_.size
    if n == 0:
        return np.zeros(0, dtype=bool)
    defined = set_ | reset
    pos = np.where(defined, np.arange(n), -1)
    last = np.maximum.accumulate(pos)
    inside = last >= starts
    return np.where(inside, set_[np.maximum(last, 0)], seed[idx])


def previous_in_group(current: npt.NDArray[np.int8], seed: npt.NDArray[np.int8], starts: Ints, idx: Ints
                      ) -> npt.NDArray[np.int8]:  # fmt: skip
    """Each reading's level before it: the previous reading's, or the seed at a run start."""
    prev = np.empty_like(current)
    if current.size == 0:
        return prev
    prev[1:] = current[:-1]
    first = starts == np.arange(current.size)
    prev[first] = seed[idx[first]]
    return prev


def high_levels(values: Floats, valid: Bools, h: Floats, hh: Floats, deadband: Floats,
                seed: npt.NDArray[np.int8], starts: Ints, idx: Ints) -> npt.NDArray[np.int8]:  # fmt: skip
    """0 normal, 1 at or above H, 2 at or above HH, with deadband; invalid readings hold."""
    with np.errstate(invalid="ignore"):
        h_set = valid & (values >= h[idx])
        h_reset = valid & (values < h[idx] - deadband[idx])
        hh_set = valid & (values >= hh[idx])
        hh_reset = valid & (values < hh[idx] - deadband[idx])
    h_on = latch(h_set, h_reset & ~h_set, seed >= 1, starts, idx)
    hh_on = latch(hh_set, hh_reset & ~hh_set, seed >= 2, starts, idx)
    return np.where(hh_on, 2, np.where(h_on, 1, 0)).astype(np.int8)


def low_levels(values: Floats, valid: Bools, low: Floats, lowlow: Floats, deadband: Floats,
               seed: npt.NDArray[np.int8], starts: Ints, idx: Ints) -> npt.NDArray[np.int8]:  # fmt: skip
    """0 normal, 1 at or below L, 2 at or below LL; the mirror image of high_levels."""
    return high_levels(-values, valid, -low, -lowlow, deadband, seed, starts, idx)


def delayed(raw: npt.NDArray[np.int8], seed_raw: npt.NDArray[np.int8], seed_since: Ints,
            seed_level: npt.NDArray[np.int8], on_delay_ms: Ints, off_delay_ms: Ints, ts: Ints, starts: Ints,
            idx: Ints) -> tuple[npt.NDArray[np.int8], Ints]:  # fmt: skip
    """Alarm levels after on/off-delay, and since when each reading's raw level has held.

    A reading is an event when its raw level has held for that level's delay (on-delay above
    normal, off-delay at normal); the alarm level is the raw level of the last event, or the
    tag's level before the batch when there was none.
    """
    n = raw.size
    if n == 0:
        return raw.copy(), np.zeros(0, np.int64)
    positions = np.arange(n)
    change = raw != previous_in_group(raw, seed_raw, starts, idx)
    last_change = np.maximum.accumulate(np.where(change, positions, -1))
    since = np.where(last_change >= starts, ts[np.maximum(last_change, 0)], seed_since[idx])
    delay = np.where(raw > 0, on_delay_ms[idx], off_delay_ms[idx])
    event = ts - since >= delay
    last_event = np.maximum.accumulate(np.where(event, positions, -1))
    level = np.where(last_event >= starts, raw[np.maximum(last_event, 0)], seed_level[idx])
    return level.astype(np.int8), since


def tag_time_order(idx: npt.NDArray[np.int64], ts: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
    """The stable order by (tag, time): one sort of a combined key (much cheaper than a two-key
    lexsort, and linear on input already in order), or lexsort where the key would overflow."""
    if idx.size == 0:
        return np.zeros(0, np.intp)
    low = int(ts.min())
    span = int(ts.max()) - low + 1
    if int(idx.max()) * span + span >= 2**62 or int(idx.min()) < 0:
        return np.lexsort((ts, idx))
    return np.argsort(idx * span + (ts - low), kind="stable")
