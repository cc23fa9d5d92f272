"""Limit conditions with deadband over a whole batch, without a Python loop per reading.

Each limit is a hysteresis latch: it sets when the value reaches the limit and resets only
when the value has moved back past the limit by the deadband. Within a batch a latch's
state at each reading is the last set/reset event at or before it in the same tag's
time-ordered readings, or the tag's state before the batch when there was none: a forward
fill within runs (``fill``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
T = TypeVar("T", bound=np.generic)


@dataclass(frozen=True, slots=True)
class Runs:
    """A batch sorted by (tag, time), cut into runs of one tag each."""

    idx: Ints  # each reading's tag
    first: Ints  # the position of each run's first reading
    tags: Ints  # each run's tag

    @classmethod
    def of(cls, idx: Ints) -> Runs:
        if idx.size == 0:
            return cls(idx, np.zeros(0, np.intp), np.zeros(0, np.int64))
        boundary = np.empty(idx.size, dtype=bool)
        boundary[0] = True
        np.not_equal(idx[1:], idx[:-1], out=boundary[1:])
        first = np.flatnonzero(boundary)
        return cls(idx, first, idx[first])

    @property
    def last(self) -> Ints:
        """The position of each run's last reading."""
        return np.append(self.first[1:] - 1, self.idx.size - 1) if self.idx.size else self.first


def fill(marks: Bools, values: npt.NDArray[T], seeds: npt.NDArray[T], runs: Runs) -> npt.NDArray[T]:
    """Each reading's value at the latest marked reading at or before it in its run, or the run's
    seed where no reading of the run up to it is marked: a forward fill within runs.

    Done with a cumulative count of the marks rather than ``np.maximum.accumulate`` of their
    positions, which numpy runs several times slower.
    """
    if marks.size == 0:
        return values[:0].copy()
    seeded = ~marks[runs.first]  # runs that start from their seed
    marks = marks.copy()
    marks[runs.first] = True  # a run never fills from the run before it
    rank = np.cumsum(marks, dtype=np.int32)
    rank -= 1
    picked = values[np.flatnonzero(marks)]
    picked[rank[runs.first[seeded]]] = seeds[seeded]
    return picked[rank]


def latch(set_: Bools, reset: Bools, seed: Bools, runs: Runs) -> Bools:
    """The latch state after each reading (set wins over reset in the same reading); ``seed`` per run."""
    return fill(set_ | reset, set_, seed, runs)


def previous_in_group(current: npt.NDArray[T], seed: npt.NDArray[T], runs: Runs) -> npt.NDArray[T]:
    """Each reading's level before it: the previous reading's, or the run's seed at a run start."""
    prev = np.empty_like(current)
    if current.size == 0:
        return prev
    prev[1:] = current[:-1]
    prev[runs.first] = seed
    return prev


def high_levels(values: Floats, valid: Bools, h: Floats, hh: Floats, deadband: Floats,
                seed: npt.NDArray[np.int8], runs: Runs) -> npt.NDArray[np.int8]:  # fmt: skip
    """0 normal, 1 at or above H, 2 at or above HH, with deadband; invalid readings hold.

    ``h``, ``hh`` and ``deadband`` are per reading, ``seed`` (the raw level before the batch) per run.
    """
    with np.errstate(invalid="ignore"):
        return _two_levels(
            valid & (values >= h), valid & (values < h - deadband),
            valid & (values >= hh), valid & (values < hh - deadband), seed, runs,
        )  # fmt: skip


def low_levels(values: Floats, valid: Bools, low: Floats, lowlow: Floats, deadband: Floats,
               seed: npt.NDArray[np.int8], runs: Runs) -> npt.NDArray[np.int8]:  # fmt: skip
    """0 normal, 1 at or below L, 2 at or below LL; the mirror image of high_levels."""
    with np.errstate(invalid="ignore"):
        return _two_levels(
            valid & (values <= low), valid & (values > low + deadband),
            valid & (values <= lowlow), valid & (values > lowlow + deadband), seed, runs,
        )  # fmt: skip


def _two_levels(one_set: Bools, one_reset: Bools, two_set: Bools, two_reset: Bools,
                seed: npt.NDArray[np.int8], runs: Runs) -> npt.NDArray[np.int8]:  # fmt: skip
    one = latch(one_set, one_reset, seed >= 1, runs).view(np.int8)
    two = latch(two_set, two_reset, seed >= 2, runs).view(np.int8)
    levels: npt.NDArray[np.int8] = np.maximum(one, two * np.int8(2))
    return levels


def delayed(raw: npt.NDArray[np.int8], seed_raw: npt.NDArray[np.int8], seed_since: tuple[Ints, Ints],
            seed_level: npt.NDArray[np.int8], on_delay_ms: Ints, off_delay_ms: Ints, ts: Ints,
            runs: Runs) -> tuple[npt.NDArray[np.int8], tuple[Ints, Ints]]:  # fmt: skip
    """Alarm levels after on/off-delay, and since when each reading's side of each limit has held.

    Each limit (level 1: H or L, level 2: HH or LL) has its own delays: its alarm comes once the
    raw level has been at or beyond it for the on-delay, and goes once it has been short of it
    for the off-delay. A value climbing from H to HH therefore raises H after the on-delay from
    crossing H, not from the last step between H and HH; and HH falling back to H holds HH for
    the off-delay. The delays are per reading, the seeds (the tag's raw level, since when each
    limit's side holds, and the alarm level before the batch) per run.
    """
    if raw.size == 0:
        return raw.copy(), (np.zeros(0, np.int64), np.zeros(0, np.int64))
    level = np.zeros(raw.size, np.int8)
    sinces = []
    for k, seed_k in ((1, seed_since[0]), (2, seed_since[1])):
        on, since = held(raw >= k, seed_raw >= k, seed_k, seed_level >= k, on_delay_ms, off_delay_ms, ts,
                         runs)  # fmt: skip
        level += on.view(np.int8)
        sinces.append(since)
    return level, (sinces[0], sinces[1])


def held(beyond: Bools, seed_beyond: Bools, seed_since: Ints, seed_on: Bools, on_delay_ms: Ints,
         off_delay_ms: Ints, ts: Ints, runs: Runs,
         may_change: Bools | None = None) -> tuple[Bools, Ints]:  # fmt: skip
    """One condition after on/off-delay: on once ``beyond`` has held for the on-delay, off once it has
    not held for the off-delay; and since when each reading's side has held.

    The delays are per reading, the seeds (the side, since when, and the alarm before the batch) per
    run. Where ``may_change`` is false the alarm holds whatever the delays say (a reading another
    alarm already stands for).
    """
    change = beyond != previous_in_group(beyond, seed_beyond, runs)
    since = fill(change, ts, seed_since, runs)
    age = ts - since
    on = beyond & (age >= on_delay_ms)
    off = ~beyond & (age >= off_delay_ms)
    if may_change is not None:
        on &= may_change
        off &= may_change
    return latch(on, off, seed_on, runs), since


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
