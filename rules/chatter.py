"""Chatter protection of the conditions other than the limits, over a whole batch at once.

- **FAULT** is a latch with hysteresis: a reading without a value (bad quality, or a value
  beyond NAMUR NE 43's band) sets it; only a valid value back inside the band by the tag's
  ``fault_margin`` resets it, so a transmitter dithering at the band's edge stays in fault.
  The alarm then follows the latch after the FAULT on-/off-delay (``rules.limits.held``).
- **STALE** is raised by the clock (``RuleEngine.tick``); readings clear it once they have come
  for the STALE off-delay without a silence between them (a gap longer than the stale period).

ROC, FROZEN and PREDICT follow their raw levels (``rules.windows``) through ``held`` in the engine.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rules.limits import Runs, fill, held, latch, previous_in_group

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


def fault_levels(valid: Bools, inside: Bools, covered: Bools | None, seed_raw: Bools, seed_since: Ints,
                 seed_on: Bools, on_delay_ms: Ints, off_delay_ms: Ints, ts: Ints,
                 runs: Runs) -> tuple[Bools, Bools, Ints]:  # fmt: skip
    """FAULT after hysteresis and delays; its raw latch and since when that holds, per reading.

    ``valid``: the reading has a value inside the band; ``inside``: inside it by the margin.
    ``covered`` readings (another alarm stands for them) move neither the latch nor the alarm.
    """
    set_, reset = ~valid, inside.copy()
    if covered is not None:
        set_ &= ~covered
        reset &= ~covered
    raw = latch(set_, reset, seed_raw, runs)
    on, since = held(raw, seed_raw, seed_since, seed_on, on_delay_ms, off_delay_ms, ts, runs,
                     None if covered is None else ~covered)  # fmt: skip
    return on, raw, since


def heard_since(ts: Ints, seed_last_ts: Ints, seed_heard: Ints, stale_ms: Ints, runs: Runs) -> Ints:
    """Per reading, since when its tag has been heard without a silence longer than ``stale_ms``
    (per reading; 0: never silent) between two readings; the seeds (the tag's last reading and
    since when it was heard) per run."""
    previous = previous_in_group(ts, seed_last_ts, runs)
    silence = (stale_ms > 0) & (previous < ts - stale_ms)  # no overflow from the "never" sentinel
    return fill(silence, ts, seed_heard, runs)


def stale_cleared(stale: Bools, heard: Ints, off_delay_ms: Ints, ts: Ints, runs: Runs) -> tuple[Ints, Ints]:
    """The runs (positions in ``runs.tags``) whose tag was STALE (``stale`` per run) and is heard for
    its off-delay within the batch, and the time of the reading that clears each."""
    if not stale.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    lengths = np.diff(runs.first, append=runs.idx.size)
    run_of = np.repeat(np.arange(runs.first.size), lengths)
    ready = np.flatnonzero(stale[run_of] & (ts - heard >= off_delay_ms))
    cleared, first = np.unique(run_of[ready], return_index=True)
    return cleared.astype(np.int64), ts[ready[first]]
