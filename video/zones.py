"""Danger zones (intrusion) and restricted areas (motion outside the permitted hours)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from hazardwatch.ledger.cameras import Zone, ZoneKind
from video.frames import Frame
from video.geometry import Box, Mask, polygon_mask
from video.motion import Motion
from video.person import PersonConfirmer


@dataclass(frozen=True, slots=True)
class ZoneHit:
    kind: str  # INTRUSION or RESTRICTED
    zone: str
    score: float  # share of the zone moving, 0…1
    box: Box
    detail: dict[str, object]


def permitted(zone: Zone, ts_ms: int, tz: ZoneInfo) -> bool:
    """Whether motion in a restricted zone is permitted at this time (inside a window)."""
    local = datetime.fromtimestamp(ts_ms / 1000, tz).time()
    for start, end in zone.windows():
        if (start <= local <= end) if start <= end else (local >= start or local <= end):
            return True
    return False


@dataclass
class ZoneWatch:
    zones: list[Zone]
    tz: ZoneInfo
    person: PersonConfirmer | None = None
    _masks: dict[str, Mask] = field(default_factory=dict)
    _runs: dict[str, int] = field(default_factory=dict)
    _size: tuple[int, int] = (0, 0)

    def observe(self, frame: Frame, motion: Motion) -> list[ZoneHit]:
        size = frame.tiny_size
        if size != self._size:
            self._masks = {z.id: polygon_mask([z.polygon], size) for z in self.zones}
            self._size = size
        hits = []
        for zone in self.zones:
            hit = self._zone(zone, frame, motion)
            if hit is not None:
                hits.append(hit)
        return hits

    def _zone(self, zone: Zone, frame: Frame, motion: Motion) -> ZoneHit | None:
        mask = self._masks[zone.id]
        inside = int(np.count_nonzero(mask))
        coverage = int(np.count_nonzero((motion.mask > 0) & (mask > 0))) / max(1, inside)
        if coverage * 100 < zone.min_area_pct:
            self._runs[zone.id] = 0
            return None
        run = self._runs[zone.id] = self._runs.get(zone.id, 0) + 1
        if run < zone.frames:
            return None
        if zone.kind == ZoneKind.RESTRICTED and permitted(zone, frame.ts_ms, self.tz):
            return None
        box = _box_in(motion, mask, frame.tiny_size)
        if zone.confirm_person:
            if self.person is None:
                self.person = PersonConfirmer()
            if not self.person.confirm(frame.full, box):
                return None
        kind = "INTRUSION" if zone.kind == ZoneKind.DANGER else "RESTRICTED"
        detail: dict[str, object] = {"zone_name": zone.name, "frames": run}
        if zone.confirm_person:
            detail["person"] = True
        return ZoneHit(kind, zone.id, round(min(1.0, coverage), 3), box, detail)


def _box_in(motion: Motion, mask: Mask, size: tuple[int, int]) -> Box:
    """The union of the motion boxes that overlap the zone."""
    chosen: Box | None = None
    for box in motion.boxes:
        x, y, w, h = box.pixels(size)
        if np.count_nonzero(mask[y : y + max(1, h), x : x + max(1, w)]):
            chosen = box if chosen is None else chosen.union(box)
    return chosen if chosen is not None else Box(0, 0, 1, 1)
