"""Helpers of the video tests: the scene camera, the expected detections, the results table."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hazardwatch import wire
from hazardwatch.ledger.cameras import Camera
from simulators.camera_scene import DANGER_ZONE, NEGATIVE, OVERLAY_MASK, RESTRICTED_ZONE, SCENES

# 2026-12-01 02:00 in Asia/Shanghai: night, outside the yard's permitted hours
NIGHT_T0_MS = 1_796_061_600_000
TAMPER_SCENES = {"covered", "defocused", "moved", "frozen", "offline"}
EXPECTED: dict[str, set[str]] = {
    "normal": set(),
    "intrusion": {"INTRUSION"},
    "night": {"RESTRICTED"},
    "covered": {"TAMPER:covered"},
    "defocused": {"TAMPER:defocused"},
    "moved": {"TAMPER:moved"},
    "frozen": {"TAMPER:frozen"},
    "offline": {"OFFLINE"},
    "fire": {"FIRE"},
    "smoke": {"SMOKE"},
    **{name: set() for name in NEGATIVE},
}
assert set(EXPECTED) == set(SCENES)


def scene_camera(fps: float = 5.0, *, hold_s: float = 1.0, frozen_s: float = 3.0, min_duration_s: float = 1.0,
                 offline_after_s: float = 2.0, url: str = "http://127.0.0.1:1/cam/CAM901.mjpg",
                 **extra: Any) -> Camera:  # fmt: skip
    doc: dict[str, Any] = {
        "code": "CAM901",
        "name": "球罐区东侧枪机",
        "url": url,
        "gateway": "gw01",
        "fps": fps,
        "offline_after_s": offline_after_s,
        "zones": [
            {"id": "dike", "name": "防火堤内", "kind": "danger", "polygon": DANGER_ZONE},
            {
                "id": "yard",
                "name": "装卸区",
                "kind": "restricted",
                "polygon": RESTRICTED_ZONE,
                "permitted_hours": ["08:00-18:00"],
            },
        ],
        "masks": [OVERLAY_MASK],
        "detectors": {"tamper": {"hold_s": hold_s, "frozen_s": frozen_s}},
        "events": {
            "min_duration_s": min_duration_s,
            "end_after_s": 1.0,
            "clip_pre_s": 1.0,
            "clip_post_s": 1.0,
        },
    }
    doc.update(extra)
    return Camera.model_validate(doc)


@dataclass
class SceneResult:
    scene: str
    labels: set[str] = field(default_factory=set)
    events: list[wire.EdgeEvent] = field(default_factory=list)
    frames: int = 0

    def add(self, events: Iterable[wire.EdgeEvent]) -> None:
        for event in events:
            self.events.append(event)
            if event.phase == "end":
                continue
            if event.kind == "TAMPER":
                self.labels.update(f"TAMPER:{r}" for r in event.detail.get("reasons", []))
            else:
                self.labels.add(event.kind)

    @property
    def missed(self) -> set[str]:
        return EXPECTED[self.scene] - self.labels

    @property
    def false_alarms(self) -> set[str]:
        return self.labels - EXPECTED[self.scene]


def table(title: str, results: list[SceneResult]) -> str:
    lines = [
        title,
        f"  {'scene':<14} {'frames':>6}  {'expected':<18} {'detected':<28} {'missed':<16} false alarms",
    ]
    for r in results:
        lines.append(
            f"  {r.scene:<14} {r.frames:>6}  {','.join(sorted(EXPECTED[r.scene])) or '-':<18} "
            f"{','.join(sorted(r.labels)) or '-':<28} {','.join(sorted(r.missed)) or '-':<16} "
            f"{','.join(sorted(r.false_alarms)) or '-'}"
        )
    return "\n".join(lines)


def failures(results: list[SceneResult]) -> list[str]:
    """Missed tampers, false alarms in the negative controls, and any other miss or false alarm."""
    problems = []
    for r in results:
        if r.missed & {f"TAMPER:{s}" for s in TAMPER_SCENES} | (r.missed & {"OFFLINE"}):
            problems.append(f"{r.scene}: missed tamper {sorted(r.missed)}")
        elif r.missed:
            problems.append(f"{r.scene}: missed {sorted(r.missed)}")
        if r.false_alarms:
            kind = "negative control" if r.scene in NEGATIVE else "scene"
            problems.append(f"{r.scene}: false alarm in {kind}: {sorted(r.false_alarms)}")
    return problems


def clear_retained(port: int, *topics: str) -> None:
    """Remove retained messages a test left on the session's broker (an empty retained payload)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-clear-{time.monotonic_ns()}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic in topics:
            client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()
