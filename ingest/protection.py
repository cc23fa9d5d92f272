"""Tags' chatter protection between the ledger, the tags table and the rule engine's TagConfig.

The ledger sync stores each tag's effective protection (``Tag.effective_protection``: the tag's
settings, else the defaults for its kind) in the ``tags`` columns below; the tag index reads them
back into the engine's arrays. ``config_arrays`` turns either (database rows or ledger tags) into
the same TagConfig fields, so the engine sees what the sync stored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from hazardwatch.ledger.models import Tag
from hazardwatch.ledger.protection import Protection

# (tags column, TagConfig field, milliseconds?) in the order of ``row``
COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("fault_on_delay_s", "fault_on_delay_ms", True),
    ("fault_off_delay_s", "fault_off_delay_ms", True),
    ("fault_margin", "fault_margin", False),
    ("roc_on_delay_s", "roc_on_delay_ms", True),
    ("roc_off_delay_s", "roc_off_delay_ms", True),
    ("roc_deadband", "roc_deadband", False),
    ("frozen_on_delay_s", "frozen_on_delay_ms", True),
    ("frozen_off_delay_s", "frozen_off_delay_ms", True),
    ("predict_on_delay_s", "predict_on_delay_ms", True),
    ("predict_off_delay_s", "predict_off_delay_ms", True),
    ("stale_on_delay_s", "stale_on_delay_ms", True),
    ("stale_off_delay_s", "stale_off_delay_ms", True),
)
SELECT = ", ".join(f"t.{column}" for column, _, _ in COLUMNS)  # for the tag index's query
UPDATE = (
    "UPDATE tags SET "
    + ", ".join(f"{column} = %s" for column, _, _ in COLUMNS)
    + " WHERE enterprise_id = %s AND code = %s"
)


def row(protection: Protection) -> tuple[float, ...]:
    """The tags columns' values of a tag's effective protection, in ``COLUMNS`` order."""
    p = protection
    return (
        p.fault.on_s, p.fault.off_s, p.fault_margin, p.roc.on_s, p.roc.off_s, p.roc_deadband,
        p.frozen.on_s, p.frozen.off_s, p.predict.on_s, p.predict.off_s, p.stale.on_s, p.stale.off_s,
    )  # fmt: skip


def config_arrays(rows: Sequence[Sequence[object]], deadband: npt.NDArray[np.float64]
                  ) -> dict[str, npt.NDArray[np.float64] | npt.NDArray[np.int64]]:  # fmt: skip
    """TagConfig's protection fields from rows of ``COLUMNS`` values (one row per tag, in the
    config's order); ``deadband`` stands in for a ROC deadband not stored yet."""
    fields: dict[str, npt.NDArray[np.float64] | npt.NDArray[np.int64]] = {}
    for n, (column, name, ms) in enumerate(COLUMNS):
        values = np.array([_float(r[n]) for r in rows], dtype=np.float64)
        if column == "roc_deadband":
            values = np.where(np.isnan(values), deadband, values)
        fields[name] = np.round(np.nan_to_num(values) * 1000).astype(np.int64) if ms else values
    return fields


def tag_rows(tags: Sequence[Tag]) -> list[tuple[float, ...]]:
    """The rows the ledger sync would store for these tags."""
    return [row(tag.effective_protection) for tag in tags]


def _float(value: object) -> float:
    return float(value) if isinstance(value, int | float) else float("nan")
