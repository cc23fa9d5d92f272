"""Gateways whose clock runs ahead of the platform's: one CLOCK_AHEAD alarm per gateway (owner: ingest).

Rules evaluate on source times, and a tag evaluates only readings newer than the last one it
evaluated; a reading stamped in the future would let it miss every real reading until then, and
could clear a live alarm with a value that is not the plant's. So ingest believes a source time
only up to a small tolerance ahead of its own clock (``Limits.max_future_s``, a few seconds).
Readings further ahead are dead-lettered, move no rule state, and their gateway gets one
CLOCK_AHEAD alarm (三级, kind data; value: the largest lead seen, in seconds; limit: the
tolerance; detail: the tags), instead of one per reading. It clears once the gateway has sent no
such reading for ``CLEAR_AFTER_S``, checked at each of its batches and at the clock tick.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import psycopg

from rules.types import Condition, Subject, Transition

Conn = psycopg.Connection[tuple[object, ...]]
CLEAR_AFTER_S = 60.0
MAX_DETAIL_TAGS = 20


@dataclass(slots=True)
class ClockWatch:
    tolerance_s: float
    alarmed: dict[int, int] = field(default_factory=dict)  # gateway id → our time it last ran ahead

    @classmethod
    def load(cls, conn: Conn, gateway_ids: Sequence[int], tolerance_s: float, now_ms: int) -> ClockWatch:
        """The gateways with an open CLOCK_AHEAD alarm count as ahead now (a restart waits out the
        full ``CLEAR_AFTER_S`` before clearing, rather than clearing what it has not watched)."""
        rows = conn.execute(
            "SELECT subject_id FROM alarms WHERE subject_kind = 'gateway' AND condition = %s"
            " AND state <> 'NORMAL' AND active AND subject_id = ANY(%s)",
            (Condition.CLOCK_AHEAD.value, list(gateway_ids)),
        ).fetchall()
        return cls(tolerance_s, {int(str(r[0])): now_ms for r in rows})

    def copy(self) -> ClockWatch:
        return ClockWatch(self.tolerance_s, dict(self.alarmed))

    def ahead(self, gateway_id: int, now_ms: int, lead_ms: int, tags: Iterable[str]) -> list[Transition]:
        """A batch of the gateway held readings ``lead_ms`` ahead of ``now_ms`` (beyond tolerance)."""
        raised = gateway_id not in self.alarmed
        self.alarmed[gateway_id] = now_ms
        if not raised:
            return []
        names = sorted(set(tags))
        detail: dict[str, object] = {"lead_s": round(lead_ms / 1000, 1), "tags": names[:MAX_DETAIL_TAGS]}
        return [Transition(gateway_id, Condition.CLOCK_AHEAD, 1, now_ms, round(lead_ms / 1000, 1),
                           self.tolerance_s, subject=Subject.GATEWAY, detail=detail)]  # fmt: skip

    def due(self, now_ms: int, gateway_ids: Iterable[int] | None = None) -> list[Transition]:
        """Clear the alarms of gateways (all, or these) that sent nothing ahead for ``CLEAR_AFTER_S``."""
        wanted = set(self.alarmed) if gateway_ids is None else set(gateway_ids) & set(self.alarmed)
        calm = [g for g in sorted(wanted) if now_ms - self.alarmed[g] >= CLEAR_AFTER_S * 1000]
        for gateway_id in calm:
            del self.alarmed[gateway_id]
        return [
            Transition(g, Condition.CLOCK_AHEAD, 0, now_ms, None, self.tolerance_s, subject=Subject.GATEWAY)
            for g in calm
        ]
