"""Tag codes → ids and the rule configuration, loaded from the ledger tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import psycopg

from ingest import protection
from ingest.composites import load_composites
from rules.composite import CompositeConfig
from rules.engine import TagConfig

Conn = psycopg.Connection[tuple[object, ...]]

_QUERY = f"""
SELECT t.id, e.code, t.code, t.ll, t.l, t.h, t.hh, t.deadband, t.range_low, t.range_high,
       t.in_service, g.id, g.code, t.updated_at, t.on_delay_s, t.off_delay_s, t.roc_limit, t.roc_period_s,
       t.frozen_window_s, t.frozen_eps, t.predict_window_s, t.predict_response_s, t.stale_after_s, t.device,
       {protection.SELECT}
FROM tags t JOIN enterprises e ON e.id = t.enterprise_id JOIN gateways g ON g.id = t.gateway_id
WHERE %(all)s OR e.id = ANY(%(owned)s)
ORDER BY t.id
"""
_PROTECTION_FROM = 24  # where the protection columns start in a row


def _float(value: object) -> float:
    return float(value) if isinstance(value, int | float) else float("nan")


def _per_enterprise(by_code: dict[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    grouped: dict[str, dict[str, int]] = {}
    for (enterprise, code), i in by_code.items():
        grouped.setdefault(enterprise, {})[code] = i
    return grouped


def _ms(rows: list[tuple[object, ...]], column: int) -> np.ndarray:
    """A column of seconds as whole milliseconds."""
    return np.array([round(_float(r[column]) * 1000) for r in rows], dtype=np.int64)


@dataclass(frozen=True, slots=True)
class TagIndex:
    """Engine index by (enterprise code, tag code); gateway ids by (enterprise, gateway code)."""

    by_code: dict[tuple[str, str], int]
    by_enterprise: dict[str, dict[str, int]]  # the same, per enterprise: tag code → engine index
    gateways: dict[tuple[str, str], int]
    config: TagConfig
    version: str
    composites: CompositeConfig = field(default_factory=CompositeConfig)  # voting groups, source warnings
    gateway_of_tag: dict[int, int] = field(default_factory=dict)  # tag id → the id of the gateway reading it
    devices: list[tuple[int, str]] = field(default_factory=list)  # (gateway id, device id) of each device
    device_of: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # per tag: its device, or -1

    @classmethod
    def load(cls, conn: Conn, enterprises: Sequence[str] = ()) -> TagIndex:
        """The index of the given enterprises' tags (a worker's own; all of them when empty)."""
        owned = [
            int(str(r[0]))
            for r in conn.execute("SELECT id FROM enterprises WHERE code = ANY(%s)", (list(enterprises),))
        ]
        scope = {"all": not enterprises, "owned": owned}
        rows = conn.execute(_QUERY, scope).fetchall()
        by_code = {(str(r[1]), str(r[2])): i for i, r in enumerate(rows)}
        gateway_rows = conn.execute(
            "SELECT e.code, g.code, g.id FROM gateways g JOIN enterprises e ON e.id = g.enterprise_id"
            " WHERE %(all)s OR e.id = ANY(%(owned)s)",
            scope,
        ).fetchall()
        version_row = conn.execute(_VERSION).fetchone()
        deadband = np.array([_float(r[7]) for r in rows], dtype=np.float64)
        config = TagConfig(
            tag_id=np.array([r[0] for r in rows], dtype=np.int64),
            ll=np.array([_float(r[3]) for r in rows], dtype=np.float64),
            l=np.array([_float(r[4]) for r in rows], dtype=np.float64),
            h=np.array([_float(r[5]) for r in rows], dtype=np.float64),
            hh=np.array([_float(r[6]) for r in rows], dtype=np.float64),
            deadband=deadband,
            range_low=np.array([_float(r[8]) for r in rows], dtype=np.float64),
            range_high=np.array([_float(r[9]) for r in rows], dtype=np.float64),
            in_service=np.array([bool(r[10]) for r in rows], dtype=bool),
            on_delay_ms=np.array([round(_float(r[14]) * 1000) for r in rows], dtype=np.int64),
            off_delay_ms=np.array([round(_float(r[15]) * 1000) for r in rows], dtype=np.int64),
            roc_limit=np.array([_float(r[16]) for r in rows], dtype=np.float64),
            roc_period_ms=_ms(rows, 17),
            frozen_window_ms=_ms(rows, 18),
            frozen_eps=np.array([_float(r[19]) for r in rows], dtype=np.float64),
            predict_window_ms=_ms(rows, 20),
            predict_response_ms=_ms(rows, 21),
            stale_ms=_ms(rows, 22),
            **protection.config_arrays([r[_PROTECTION_FROM:] for r in rows], deadband),  # type: ignore[arg-type]
        )
        devices = sorted({(int(str(r[11])), str(r[23])) for r in rows if r[23] is not None})
        device_number = {device: i for i, device in enumerate(devices)}
        device_of = np.array(
            [device_number.get((int(str(r[11])), str(r[23])), -1) for r in rows], dtype=np.int64
        )
        return cls(
            by_code=by_code,
            devices=devices,
            device_of=device_of,
            by_enterprise=_per_enterprise(by_code),
            gateways={(str(r[0]), str(r[1])): int(str(r[2])) for r in gateway_rows},
            config=config,
            version=str(version_row),
            gateway_of_tag={int(str(r[0])): int(str(r[11])) for r in rows},
            composites=load_composites(
                conn, {int(str(r[0])): i for i, r in enumerate(rows)}, None if not enterprises else owned
            ),
        )

    @staticmethod
    def current_version(conn: Conn) -> str:
        return str(conn.execute(_VERSION).fetchone())


_VERSION = (
    "SELECT max(updated_at)::text, count(*), (SELECT max(updated_at)::text FROM vote_groups),"
    " (SELECT max(updated_at)::text FROM hazard_sources) FROM tags"
)
