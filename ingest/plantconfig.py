"""The rule engine's configuration of a devices file's tags, without a database.

Field by field as the ledger sync stores a tag and ``ingest.tagindex`` loads it (chatter
protection through ``ingest.protection``); for simulations, benchmarks and tests that run the
engine on a devices file directly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from hazardwatch.ledger import Plant
from hazardwatch.ledger.models import Tag
from ingest import protection
from rules.engine import TagConfig


def _nan(x: float | None) -> float:
    return math.nan if x is None else x


def tag_config(tags: list[Tag], polls: list[float], ids: list[int]) -> TagConfig:
    """The engine configuration of ledger tags, field by field as the ledger sync stores it and
    ``ingest.tagindex`` loads it (protection through ``ingest.protection``)."""
    lim = [t.effective_limits for t in tags]
    deadband = np.array([t.effective_deadband for t in tags])

    def ms(values: list[float]) -> npt.NDArray[np.int64]:
        return np.round(np.array(values, dtype=np.float64) * 1000).astype(np.int64)

    return TagConfig(
        tag_id=np.array(ids, dtype=np.int64),
        ll=np.array([_nan(x.ll) for x in lim]), l=np.array([_nan(x.l) for x in lim]),
        h=np.array([_nan(x.h) for x in lim]), hh=np.array([_nan(x.hh) for x in lim]), deadband=deadband,
        range_low=np.array([t.range[0] for t in tags]), range_high=np.array([t.range[1] for t in tags]),
        in_service=np.array([t.out_of_service is None for t in tags]),
        on_delay_ms=ms([t.effective_delays_s[0] for t in tags]),
        off_delay_ms=ms([t.effective_delays_s[1] for t in tags]),
        roc_limit=np.array([t.roc.limit if t.roc else math.nan for t in tags]),
        roc_period_ms=ms([t.roc.period_s if t.roc else 0.0 for t in tags]),
        frozen_eps=np.array([t.frozen.epsilon if t.frozen else 0.0 for t in tags]),
        frozen_window_ms=ms([t.frozen.window_s if t.frozen else 0.0 for t in tags]),
        predict_window_ms=ms([t.predict.window_s if t.predict else 0.0 for t in tags]),
        predict_response_ms=ms([t.predict.response_s if t.predict else 0.0 for t in tags]),
        stale_ms=ms([t.effective_stale_after_s(p) for t, p in zip(tags, polls, strict=True)]),
        **protection.config_arrays(protection.tag_rows(tags), deadband),  # type: ignore[arg-type]
    )  # fmt: skip


def poll_interval_s(plant: Plant, tag: Tag) -> float:
    """The poll period of the device that reads the tag (1 s when none is found)."""
    for enterprise in plant.enterprises:
        for gateway in enterprise.gateways:
            for device in gateway.devices:
                if device.id == tag.device_id:
                    return float(device.poll_interval_s)
    return 1.0


def plant_config(plant: Plant, tag_ids: Mapping[tuple[str, str], int]) -> TagConfig:
    """The configuration of the plant's tags that have an id in ``tag_ids`` (by enterprise and code)."""
    chosen = [(e.code, t) for e, _, _, t in plant.iter_tags() if (e.code, t.code) in tag_ids]
    return tag_config([t for _, t in chosen], [poll_interval_s(plant, t) for _, t in chosen],
                      [tag_ids[(e, t.code)] for e, t in chosen])  # fmt: skip
