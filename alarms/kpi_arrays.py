"""The pure core of the alarm KPIs: numbers from arrays of alarm times (µs), no I/O.

Definitions are in :mod:`alarms.kpi`; times are integer microseconds so that window edges are
exact (an alarm leaves the trailing 10-minute window exactly 600 000 000 µs after it came).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
US = 1_000_000
TEN_MIN_US = 600 * US
DAY_US = 86_400 * US
FLOOD_ABOVE = 10  # a flood starts when the 10-minute count exceeds this…
FLOOD_BELOW = 5  # …and ends when it falls below this
CHATTER_ALARMS = 3
CHATTER_WINDOW_US = 60 * US
FLEETING_US = 10 * US
FLEETING_QUIET_US = 60 * US


@dataclass(frozen=True, slots=True)
class Distribution:
    """Seconds: how many were measured, nearest-rank p50/p90 and the maximum; pending = not yet done."""

    count: int
    p50: float | None
    p90: float | None
    max: float | None
    pending: int


NOTHING_YET = Distribution(0, None, None, None, 0)


def nearest_rank(sorted_values: npt.NDArray[np.float64], pct: float) -> float:
    """The nearest-rank percentile of ascending values: the ⌈pct/100 · n⌉-th smallest."""
    rank = max(1, math.ceil(pct / 100.0 * sorted_values.size))
    return float(sorted_values[rank - 1])


def distribution(seconds: npt.NDArray[np.float64], pending: int) -> Distribution:
    if seconds.size == 0:
        return Distribution(0, None, None, None, pending)
    values = np.sort(seconds)
    return Distribution(
        int(values.size), nearest_rank(values, 50), nearest_rank(values, 90), float(values[-1]), pending
    )


def bucket_counts(times_us: I64, start_us: int, end_us: int, width_us: int) -> I64:
    """Alarms per bucket of ``width_us``, buckets aligned to the start (the last may be partial)."""
    buckets = max(1, -(-(end_us - start_us) // width_us))
    return np.bincount((times_us - start_us) // width_us, minlength=buckets).astype(np.int64)


def trailing_counts(times_us: I64, points_us: I64) -> I64:
    """c(t): alarms in (t − 10 min, t] at each point (``times_us`` ascending)."""
    inside = np.searchsorted(times_us, points_us, side="right")
    left = np.searchsorted(times_us, points_us - TEN_MIN_US, side="right")
    return (inside - left).astype(np.int64)


def flood_episodes(times_us: I64, end_us: int) -> list[tuple[int, int, int, int, bool]]:
    """(start, end, alarms, peak count, ongoing) of each flood; ``times_us`` ascending."""
    if times_us.size == 0:
        return []
    points = np.unique(np.concatenate([times_us, times_us + TEN_MIN_US]))
    points = points[points < end_us]
    counts = trailing_counts(times_us, points)
    mark = np.where(counts > FLOOD_ABOVE, 1, np.where(counts < FLOOD_BELOW, 0, -1))
    last = np.maximum.accumulate(np.where(mark >= 0, np.arange(mark.size), -1))
    state = np.where(last >= 0, mark[np.maximum(last, 0)], 0)
    edges = np.diff(np.concatenate([[0], state, [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    episodes = []
    for i, j in zip(starts.tolist(), stops.tolist(), strict=True):
        ongoing = j >= points.size
        begin, finish = int(points[i]), end_us if ongoing else int(points[j])
        inside = int(np.searchsorted(times_us, finish, "left") - np.searchsorted(times_us, begin, "left"))
        episodes.append((begin, finish, inside, int(counts[i:j].max()), ongoing))
    return episodes


def chattering_sources(source: I64, times_us: I64) -> I64:
    """Sources with ``CHATTER_ALARMS`` alarms within ``CHATTER_WINDOW_US``."""
    order = np.lexsort((times_us, source))
    s, t = source[order], times_us[order]
    k = CHATTER_ALARMS - 1
    hit = (s[k:] == s[:-k]) & (t[k:] - t[:-k] <= CHATTER_WINDOW_US) if s.size > k else np.zeros(0, bool)
    return np.unique(s[:-k][hit]) if hit.size else np.zeros(0, np.int64)


def fleeting_count(source: I64, times_us: I64, cleared_us: I64) -> int:
    """Alarms cleared within ``FLEETING_US`` whose source has no other alarm within the quiet time.

    ``cleared_us`` is −1 where the condition had not cleared by the end.
    """
    order = np.lexsort((times_us, source))
    s, t, c = source[order], times_us[order], cleared_us[order]
    gap_before = np.full(s.size, np.iinfo(np.int64).max)
    gap_after = np.full(s.size, np.iinfo(np.int64).max)
    same = s[1:] == s[:-1]
    gaps = t[1:] - t[:-1]
    gap_before[1:] = np.where(same, gaps, gap_before[1:])
    gap_after[:-1] = np.where(same, gaps, gap_after[:-1])
    quick = (c >= 0) & (c - t < FLEETING_US)
    alone = (gap_before > FLEETING_QUIET_US) & (gap_after > FLEETING_QUIET_US)
    return int(np.count_nonzero(quick & alone))
