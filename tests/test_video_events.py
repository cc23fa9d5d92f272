"""Event lifecycle (new / update / end, minimum duration, cooldown, de-duplication) and the events
wire format, table-driven on a moved clock."""

from __future__ import annotations

import json

import msgpack
import pytest

from hazardwatch import wire
from hazardwatch.errors import WireError
from hazardwatch.ledger.cameras import EventOptions
from video.analytics import Detection
from video.events import EventTracker
from video.geometry import Box

BOX = Box(0.1, 0.6, 0.2, 0.3)
OPTIONS = EventOptions(min_duration_s=1.0, end_after_s=2.0, cooldown_s=5.0, update_s=3.0)


def intrusion(zone: str = "dike", score: float = 0.3) -> Detection:
    return Detection("INTRUSION", zone, score, BOX, {"frames": 3})


def run(
    tracker: EventTracker, timeline: list[tuple[int, list[Detection]]]
) -> list[tuple[int, str, str | None, str]]:
    """(time, kind, zone, phase) of every change, feeding each (ms, detections) in turn."""
    changes: list[tuple[int, str, str | None, str]] = []
    for ts, detections in timeline:
        changes += [(ts, c.kind, c.zone, c.phase) for c in tracker.update(detections, ts)]
    return changes


def test_an_event_opens_after_its_minimum_duration_updates_and_ends() -> None:
    tracker = EventTracker("CAM101", OPTIONS)
    seen = [(t, [intrusion()]) for t in range(0, 7000, 500)]
    timeline = [*seen, *((t, []) for t in range(7000, 10000, 500))]
    assert run(tracker, timeline) == [
        (1000, "INTRUSION", "dike", "new"),  # held 1 s
        (4000, "INTRUSION", "dike", "update"),  # every 3 s while open
        (8500, "INTRUSION", "dike", "end"),  # 2 s after it was last seen, at 6.5 s
    ]


def test_a_blip_shorter_than_the_minimum_duration_is_no_event() -> None:
    tracker = EventTracker("CAM101", OPTIONS)
    assert run(tracker, [(0, [intrusion()]), (500, [intrusion()]), (1000, []), (1500, [intrusion()])]) == []


def test_no_new_event_of_the_same_kind_and_zone_during_the_cooldown() -> None:
    tracker = EventTracker("CAM101", OPTIONS)
    first = [(t, [intrusion()]) for t in range(0, 2000, 500)] + [(t, []) for t in range(2000, 4500, 500)]
    again = [(t, [intrusion()]) for t in range(4500, 12000, 500)]
    changes = run(tracker, first + again)
    assert [c[3] for c in changes] == ["new", "end", "new"]
    ended = changes[1][0]
    assert changes[2][0] == ended + 5000 + 1000  # the cooldown, then the minimum duration again


def test_events_are_deduplicated_per_kind_and_zone() -> None:
    tracker = EventTracker("CAM101", OPTIONS)
    both = [intrusion("dike", 0.2), intrusion("dike", 0.5), intrusion("yard")]
    changes = run(tracker, [(t, both) for t in range(0, 1500, 500)])
    assert changes == [(1000, "INTRUSION", "dike", "new"), (1000, "INTRUSION", "yard", "new")]
    assert sorted(tracker.open_keys) == [("INTRUSION", "dike"), ("INTRUSION", "yard")]


def test_a_changed_tamper_reason_is_an_update_at_once() -> None:
    tracker = EventTracker("CAM101", OPTIONS)

    def tamper(*reasons: str) -> list[Detection]:
        return [Detection("TAMPER", None, 1.0, Box(0, 0, 1, 1), {"reasons": list(reasons)})]

    frames = [(0, tamper("covered")), (1000, tamper("covered")), (1500, tamper("covered", "frozen"))]
    changes = [c for ts, d in frames for c in tracker.update(d, ts)]
    assert [(c.phase, c.detail["reasons"]) for c in changes] == [
        ("new", ["covered"]),
        ("update", ["covered", "frozen"]),
    ]
    assert len({c.event_id for c in changes}) == 1


def test_open_events_end_on_the_clock_when_no_frame_comes() -> None:
    tracker = EventTracker("CAM101", OPTIONS)
    run(tracker, [(t, [intrusion()]) for t in range(0, 1500, 500)])
    assert tracker.tick(2500) == []
    assert [c.phase for c in tracker.tick(3000)] == ["end"]


def edge_event(**changes: object) -> wire.EdgeEvent:
    t0 = 1_796_000_000_000
    event = wire.EdgeEvent("gw01", 7, t0, f"CAM101.FIRE.-.{t0}", "CAM101", "FIRE", "new", t0, t0 + 1000,
                           None, 0.8, True, [0.2, 0.3, 0.1, 0.1],
                           {"flicker": 0.4}, b"\xff\xd8\xff\xe0jpeg", None)  # fmt: skip
    for key, value in changes.items():
        setattr(event, key, value)
    return event


def test_events_round_trip_in_msgpack_and_json() -> None:
    event = edge_event()
    assert wire.decode_event(wire.encode_event(event)) == event
    doc = event.to_dict()
    doc["snap"] = "/9j/4GpwZWc="  # the same JPEG bytes, base64 in JSON
    assert wire.decode_event(json.dumps(doc).encode()) == event


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"v": 2}, "unknown wire version"),
        ({"phase": "start"}, "field 'phase'"),
        ({"kind": "fire"}, "field 'kind'"),
        ({"cam": ""}, "field 'cam'"),
        ({"id": "a b"}, "field 'id'"),
        ({"ts": -1}, "field 'ts'"),
        ({"score": "high"}, "field 'score'"),
        ({"box": [0, 0, 1]}, "field 'box'"),
        ({"detail": [1]}, "field 'detail'"),
        ({"detail": {"x": "y" * 20000}}, "exceeds"),
        ({"snap": b"GIF89a"}, "JPEG"),
        ({"clip": "../../etc/passwd"}, "field 'clip'"),
        ({"suspected": "yes"}, "field 'suspected'"),
    ],
)
def test_malformed_events_are_refused_with_a_reason(change: dict[str, object], reason: str) -> None:
    doc = {**edge_event().to_dict(), **change}
    with pytest.raises(WireError, match=reason):
        wire.decode_event(msgpack.packb(doc, use_bin_type=True))
