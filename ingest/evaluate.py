"""One evaluation step: what live ingest and the backtest both run over readings and clock ticks.

Live ingest (``ingest.pipeline``) runs :func:`readings_step` on each step's accepted readings and
:func:`tick_step` on each clock tick; ``rules backtest`` (``ingest.backtest``) runs the same two over
stored readings and the ticks it replays, so a rule set is judged by exactly the code that will
run it. Neither touches the database: the caller applies the transitions and refreshes.

A step is, in order: the devices that do not answer (``DeviceComm.observe``: which BAD_COMM
readings a device-down alarm covers, and DEVICE_COMM on their gateways), no tag's last evaluated
time ahead of the clock (``RuleEngine.rewind``), and the rules over the readings with those
covered. A tick is STALE of silent tags (not raised for tags whose gateway is offline: its
GATEWAY_OFFLINE alarm says why) and DEVICE_COMM of devices down for their on-delay.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ingest.devices import DeviceComm, Refresh
from ingest.gateways import without_consequential_stale
from rules.engine import RuleEngine
from rules.types import Transition


@dataclass(slots=True)
class Outcome:
    """The condition transitions of a step or tick, and the active DEVICE_COMM alarms to refresh."""

    transitions: list[Transition] = field(default_factory=list)
    refreshes: list[Refresh] = field(default_factory=list)


def readings_step(
    engine: RuleEngine,
    devices: DeviceComm,
    idx: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    quality: npt.NDArray[np.int16],
    now_ms: int,
) -> Outcome:
    """Evaluate one step's readings (engine indexes ``idx``) at the clock's ``now_ms``."""
    covered, device_changes, refreshes = devices.observe(idx, ts, quality)
    engine.rewind(now_ms)
    return Outcome([*engine.evaluate(idx, ts, values, quality, covered), *device_changes], refreshes)


def tick_step(
    engine: RuleEngine,
    devices: DeviceComm,
    now_ms: int,
    gateway_of_tag: dict[int, int],
    gateways_down: set[int],
) -> Outcome:
    """The clock's turn at ``now_ms``: STALE (not raised under an offline gateway) and DEVICE_COMM."""
    stale = without_consequential_stale(engine.tick(now_ms), gateway_of_tag, gateways_down)
    device_changes, refreshes = devices.tick(now_ms)
    return Outcome([*stale, *device_changes], refreshes)


def carry_state(old: RuleEngine, new: RuleEngine) -> None:
    """Keep each tag's condition state across a reload of the ledger (a new engine, new settings)."""
    for i, tag_id in enumerate(old.config.tag_id):
        j = new.index_of(int(tag_id))
        if j is None:
            continue
        old.state.carry(i, new.state, j)
    new.carry_composites(old)
