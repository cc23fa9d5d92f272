"""Event lifecycle per camera, kind and zone: new → update … → end.

A detection must last ``min_duration_s`` before an event opens (``new``); an open event is
re-reported every ``update_s`` and whenever its detail changes (``update``); it ends after
``end_after_s`` without the detection (``end``). After an end, the same kind and zone opens no
new event for ``cooldown_s``. One key has at most one open event: that is the de-duplication.
Event ids are derived from camera, kind, zone and start, so a redelivery is recognizable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from hazardwatch.ledger.cameras import EventOptions
from video.analytics import SUSPECTED, Detection
from video.geometry import Box

Phase = Literal["new", "update", "end"]
Key = tuple[str, str | None]


@dataclass(frozen=True, slots=True)
class EventChange:
    event_id: str
    camera: str
    kind: str
    zone: str | None
    phase: Phase
    start_ms: int
    ts_ms: int
    score: float
    box: Box
    detail: dict[str, object]

    @property
    def suspected(self) -> bool:
        return self.kind in SUSPECTED


@dataclass
class _Open:
    event_id: str
    start_ms: int
    last_seen_ms: int
    last_report_ms: int
    peak: float
    box: Box
    detail: dict[str, object]


def _signature(detail: dict[str, object]) -> object:
    """The part of a detail whose change is worth an update (the tamper reasons)."""
    return detail.get("reasons")


@dataclass
class EventTracker:
    camera: str
    options: EventOptions = field(default_factory=EventOptions)
    _pending: dict[Key, int] = field(default_factory=dict)
    _open: dict[Key, _Open] = field(default_factory=dict)
    _cooldown: dict[Key, int] = field(default_factory=dict)

    def update(self, detections: Iterable[Detection], ts_ms: int) -> list[EventChange]:
        """Feed one analysed frame's detections; returns the event changes it causes."""
        seen: dict[Key, Detection] = {}
        for detection in detections:
            best = seen.get(detection.key)
            if best is None or detection.score > best.score:
                seen[detection.key] = detection
        changes = [c for key, d in seen.items() if (c := self._present(key, d, ts_ms)) is not None]
        for key in [k for k in self._pending if k not in seen]:
            del self._pending[key]
        changes.extend(self.tick(ts_ms, present=seen.keys()))
        return changes

    def tick(self, now_ms: int, present: Iterable[Key] = ()) -> list[EventChange]:
        """End the open events not seen for ``end_after_s`` (also called when no frame comes)."""
        keep = set(present)
        quiet_ms = int(self.options.end_after_s * 1000)
        changes = []
        for key, event in list(self._open.items()):
            if key in keep or now_ms - event.last_seen_ms < quiet_ms:
                continue
            del self._open[key]
            self._cooldown[key] = now_ms + int(self.options.cooldown_s * 1000)
            changes.append(self._change(key, event, "end", now_ms, event.peak, event.box, event.detail))
        return changes

    @property
    def open_keys(self) -> list[Key]:
        return list(self._open)

    def _present(self, key: Key, d: Detection, ts: int) -> EventChange | None:
        event = self._open.get(key)
        if event is not None:
            event.last_seen_ms = ts
            event.peak = max(event.peak, d.score)
            changed = _signature(d.detail) != _signature(event.detail)
            if not changed and ts - event.last_report_ms < self.options.update_s * 1000:
                return None
            event.last_report_ms, event.box, event.detail = ts, d.box, d.detail
            return self._change(key, event, "update", ts, d.score, d.box, d.detail)
        if ts < self._cooldown.get(key, 0):
            return None
        since = self._pending.setdefault(key, ts)
        if ts - since < self.options.min_duration_s * 1000:
            return None
        del self._pending[key]
        zone = key[1] or "-"
        event = _Open(f"{self.camera}.{key[0]}.{zone}.{since}", since, ts, ts, d.score, d.box, d.detail)
        self._open[key] = event
        return self._change(key, event, "new", ts, d.score, d.box, d.detail)

    def _change(self, key: Key, event: _Open, phase: Phase, ts: int, score: float, box: Box,
                detail: dict[str, object]) -> EventChange:  # fmt: skip
        return EventChange(
            event.event_id, self.camera, key[0], key[1], phase, event.start_ms, ts, score, box, dict(detail)
        )
