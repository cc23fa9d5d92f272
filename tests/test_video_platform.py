"""Video events on the platform, against a real PostgreSQL: alarms of cameras, snapshots, status,
suppression by design while a camera is tampered or offline, dead letters, the snapshot API."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import cv2
import msgpack
import numpy as np
import psycopg
import pytest

from hazardwatch import wire
from hazardwatch.ledger import Plant
from ingest.pipeline import Message, Pipeline
from tests.test_dashboard_api import logged_in, running, seed

HOME = "E330110001"
EVENTS = wire.events_topic(HOME, "gw01")
CAMERAS = wire.cameras_topic(HOME, "gw01")


def jpeg() -> bytes:
    image = np.full((90, 160, 3), 120, np.uint8)
    cv2.rectangle(image, (20, 30), (60, 80), (0, 0, 255), -1)
    return bytes(cv2.imencode(".jpg", image)[1].tobytes())


def event_message(kind: str, phase: str, *, zone: str | None = "dike", start: int, ts: int, seq: int = 1,
                  snapshot: bytes | None = None, camera: str = "CAM101") -> Message:  # fmt: skip
    event = wire.EdgeEvent("gw01", seq, ts, f"{camera}.{kind}.{zone or '-'}.{start}", camera, kind, phase,
                           start, ts, zone, 0.4, kind in ("FIRE", "SMOKE"), [0.1, 0.6, 0.2, 0.3],
                           {"zone_name": "球罐防火堤内"}, snapshot)  # fmt: skip
    return Message(EVENTS, wire.encode_event(event))


def status_message(**cameras: str) -> Message:
    body = {code: {"status": status} for code, status in cameras.items()}
    return Message(CAMERAS, wire.cameras_payload("gw01", body, int(time.time() * 1000)))


def query(url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql.encode(), params).fetchall()


def camera_alarms(url: str) -> dict[str, tuple[Any, ...]]:
    rows = query(
        url,
        "SELECT a.condition, a.state, a.active, a.priority, a.kind, a.detail, h.code FROM alarms a"
        " JOIN hazard_sources h ON h.id = a.hazard_source_id WHERE a.subject_kind = 'camera' ORDER BY a.id",
    )
    return {str(r[0]): r[1:] for r in rows}


@pytest.fixture
def pipeline(database_url: str, sample_plant: Plant) -> Iterator[Pipeline]:
    seed(database_url, sample_plant)
    p = Pipeline(database_url)
    yield p
    p.close()


def test_the_ledger_sync_brings_the_cameras(pipeline: Pipeline, database_url: str) -> None:
    rows = query(
        database_url,
        "SELECT e.code, c.code, h.code, q.code, g.code, c.status FROM cameras c JOIN enterprises e"
        " ON e.id = c.enterprise_id JOIN hazard_sources h ON h.id = c.hazard_source_id"
        " JOIN equipment q ON q.id = c.equipment_id JOIN gateways g ON g.id = c.gateway_id ORDER BY c.code",
    )
    assert rows == [
        ("E330110001", "CAM101", "HS330110001-01", "T101", "gw01", "unknown"),
        ("E330281002", "CAM301", "HS330281002-01", "A301", "gw01", "unknown"),
    ]


def test_an_intrusion_is_an_alarm_of_the_camera_with_its_snapshot(
    pipeline: Pipeline, database_url: str
) -> None:
    now = int(time.time() * 1000)
    image = jpeg()
    new = event_message("INTRUSION", "new", start=now - 1000, ts=now, snapshot=image)
    pipeline.process([status_message(CAM101="online"), new])
    pipeline.process([new])  # a redelivery changes nothing
    alarms = camera_alarms(database_url)
    state, active, priority, kind, detail, source = alarms["INTRUSION"]
    assert (state, active, priority, kind, source) == ("UNACK", True, 2, "video", "HS330110001-01")
    assert detail["zone"] == "dike"
    assert detail["camera"] == "CAM101"
    stored = query(database_url, "SELECT id, image FROM snapshots")
    assert len(stored) == 1
    assert detail["snapshot_id"] == stored[0][0]
    assert bytes(stored[0][1]) == image
    journal = query(database_url, "SELECT action FROM alarm_journal ORDER BY id")
    assert [r[0] for r in journal] == ["raise"]
    pipeline.process([event_message("INTRUSION", "end", start=now - 1000, ts=now + 5000)])
    state, active, *_ = camera_alarms(database_url)["INTRUSION"]
    assert (state, active) == ("RTN_UNACK", False)
    assert query(database_url, "SELECT ended_at IS NOT NULL, snapshot_id FROM video_events") == [
        (True, stored[0][0])
    ]


def test_one_alarm_per_camera_and_condition_active_while_any_zone_is(
    pipeline: Pipeline, database_url: str
) -> None:
    now = int(time.time() * 1000)
    pipeline.process([event_message("RESTRICTED", "new", zone="yard", start=now, ts=now, snapshot=jpeg())])
    pipeline.process([event_message("RESTRICTED", "new", zone="door", start=now, ts=now + 100)])
    pipeline.process([event_message("RESTRICTED", "end", zone="yard", start=now, ts=now + 2000)])
    assert camera_alarms(database_url)["RESTRICTED"][:2] == ("UNACK", True)
    pipeline.process([event_message("RESTRICTED", "end", zone="door", start=now, ts=now + 3000)])
    assert camera_alarms(database_url)["RESTRICTED"][:2] == ("RTN_UNACK", False)


def test_suspected_fire_is_first_grade(pipeline: Pipeline, database_url: str) -> None:
    now = int(time.time() * 1000)
    pipeline.process([event_message("FIRE", "new", zone=None, start=now, ts=now, snapshot=jpeg())])
    state, active, priority, _kind, detail, _ = camera_alarms(database_url)["FIRE"]
    assert (state, active, priority, detail["suspected"]) == ("UNACK", True, 1, True)


def test_intrusions_of_a_tampered_or_offline_camera_are_suppressed_by_design(
    pipeline: Pipeline, database_url: str
) -> None:
    now = int(time.time() * 1000)
    pipeline.process([status_message(CAM101="online")])
    pipeline.process([event_message("INTRUSION", "new", start=now, ts=now, snapshot=jpeg())])
    tamper = event_message("TAMPER", "new", zone=None, start=now + 1000, ts=now + 1000, snapshot=jpeg())
    pipeline.process([tamper, status_message(CAM101="tampered")])
    alarms = camera_alarms(database_url)
    assert alarms["TAMPER"][:2] == ("UNACK", True)  # the tamper itself is the alarm
    assert alarms["INTRUSION"][:2] == ("SUPPRESSED", True)
    pipeline.process([event_message("INTRUSION", "new", zone="yard", start=now + 2000, ts=now + 2000)])
    assert camera_alarms(database_url)["INTRUSION"][:2] == ("SUPPRESSED", True)
    pipeline.process([status_message(CAM101="online")])
    assert camera_alarms(database_url)["INTRUSION"][:2] == ("UNACK", True)  # re-annunciated, still active
    # the video process dies: its last will takes every camera of the gateway offline
    pipeline.process([Message(CAMERAS, wire.cameras_will("gw01"))])
    alarms = camera_alarms(database_url)
    assert alarms["CAMERA_OFFLINE"][:4] == ("UNACK", True, 3, "offline")
    assert alarms["INTRUSION"][:2] == ("SUPPRESSED", True)
    assert query(database_url, "SELECT status FROM cameras WHERE code = 'CAM101'") == [("offline",)]
    pipeline.process([status_message(CAM101="online")])
    assert camera_alarms(database_url)["CAMERA_OFFLINE"][:2] == ("RTN_UNACK", False)
    log = query(database_url, "SELECT l.status FROM camera_status_log l ORDER BY l.at")
    assert [r[0] for r in log] == ["online", "tampered", "online", "offline", "online"]


def test_a_cleared_intrusion_awaiting_acknowledgement_stays_on_the_board_through_a_tamper(
    pipeline: Pipeline, database_url: str
) -> None:
    """Suppression holds back what is active; an intrusion that ended unacknowledged waits for its
    acknowledgement (it used to be suppressed, then closed when the camera came back, unseen)."""
    now = int(time.time() * 1000)
    pipeline.process([status_message(CAM101="online")])
    pipeline.process([event_message("INTRUSION", "new", start=now, ts=now, snapshot=jpeg())])
    pipeline.process([event_message("INTRUSION", "end", start=now, ts=now + 3000)])
    pipeline.process([status_message(CAM101="tampered")])
    assert camera_alarms(database_url)["INTRUSION"][:2] == ("RTN_UNACK", False)
    pipeline.process([status_message(CAM101="online")])
    assert camera_alarms(database_url)["INTRUSION"][:2] == ("RTN_UNACK", False)


def test_malformed_events_go_to_dead_letters(pipeline: Pipeline, database_url: str) -> None:
    now = int(time.time() * 1000)
    good = msgpack.unpackb(event_message("INTRUSION", "new", start=now, ts=now).payload)

    def variant(**changes: Any) -> Message:
        return Message(EVENTS, msgpack.packb({**good, **changes}))

    messages = [
        Message(EVENTS, b"\xc1garbage"),
        variant(v=2),
        variant(cam="CAM999"),
        variant(cam="CAM301"),  # another enterprise's camera
        variant(kind="intrusion"),
        variant(kind="HIGH"),  # a tag's condition
        variant(phase="begin"),
        variant(snap=b"not a jpeg"),
        variant(score=float("nan")),
        variant(detail={"x": float("nan")}),
        variant(box=[0.1, 0.2, 3.0, 0.1]),
        variant(gw="gw02"),
        Message(CAMERAS, json.dumps({"v": 1, "cameras": {"CAM101": {"status": "exploded"}}}).encode()),
        Message(wire.cameras_topic(HOME, "gw09"), wire.cameras_will("gw09")),
    ]
    result = pipeline.process(messages)
    assert result.dead_letters == len(messages)
    reasons = [str(r[0]) for r in query(database_url, "SELECT reason FROM dead_letters ORDER BY id")]
    for expected in ("malformed msgpack", "unknown wire version", "unknown camera E330110001/CAM999",
                     "unknown camera E330110001/CAM301", "field 'kind'", "HIGH is not an edge event's kind",
                     "field 'phase'", "JPEG",
                     "field 'score'", "field 'detail'", "field 'box'", "differs from the topic",
                     "status must be one of", "unknown gateway"):  # fmt: skip
        assert any(expected in r for r in reasons), (expected, reasons)
    assert camera_alarms(database_url) == {}


async def test_the_snapshot_api_is_scope_checked(pipeline: Pipeline, database_url: str) -> None:
    now = int(time.time() * 1000)
    image = jpeg()
    pipeline.process([status_message(CAM101="online"), event_message("INTRUSION", "new", start=now, ts=now,
                                                                      snapshot=image)])  # fmt: skip
    snapshot_id = query(database_url, "SELECT id FROM snapshots")[0][0]
    async with running(database_url) as (server, _app):
        async with logged_in(server, "county") as county:  # 余杭区 duty officer: the enterprise's county
            async with county.session.get(f"/api/v1/snapshots/{snapshot_id}") as response:
                assert response.status == 200
                assert response.content_type == "image/jpeg"
                assert await response.read() == image
            status, body = await county.get("/api/v1/cameras")
            assert status == 200
            assert [(c["code"], c["status"]) for c in body["cameras"]] == [("CAM101", "online")]
            assert 0 <= body["cameras"][0]["online_rate"] <= 1
            status, alarms = await county.get("/api/v1/alarms")
            assert status == 200
            video = [a for a in alarms["alarms"] if a["condition"] == "INTRUSION"]
            assert len(video) == 1
        async with logged_in(server, "qiye2") as other:  # another enterprise
            async with other.session.get(f"/api/v1/snapshots/{snapshot_id}") as response:
                assert response.status == 404
            status, body = await other.get("/api/v1/cameras")
            assert [c["code"] for c in body["cameras"]] == ["CAM301"]
            async with other.session.get(f"/api/v1/snapshots/{snapshot_id + 1000}") as response:
                assert response.status == 404


def test_snapshots_past_their_retention_are_removed(pipeline: Pipeline, database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO snapshots (camera_id, enterprise_id, event_id, taken_at, image)"
            " SELECT id, enterprise_id, 'old', now() - interval '200 days', %s"
            " FROM cameras WHERE code = 'CAM101'",
            (jpeg(),),
        )
    now = int(time.time() * 1000)
    pipeline.process([event_message("INTRUSION", "new", start=now, ts=now, snapshot=jpeg())])
    assert [r[0] for r in query(database_url, "SELECT event_id FROM snapshots")] == [
        f"CAM101.INTRUSION.dike.{now}"
    ]


async def test_the_camera_online_rate_is_the_time_it_sent_pictures(
    pipeline: Pipeline, database_url: str
) -> None:
    with psycopg.connect(database_url) as conn:
        for hours_ago, camera_status in ((12, "online"), (9, "tampered"), (6, "offline")):
            conn.execute(
                "INSERT INTO camera_status_log (camera_id, at, status)"
                " SELECT id, now() - %s * interval '1 hour', %s FROM cameras WHERE code = 'CAM101'",
                (hours_ago, camera_status),
            )
    async with running(database_url) as (server, _app), logged_in(server, "county") as officer:
        status, body = await officer.get("/api/v1/cameras?hours=24")
    assert status == 200
    assert body["cameras"][0]["code"] == "CAM101"
    assert body["cameras"][0]["online_rate"] == pytest.approx(0.25, abs=0.002)  # 6 of 24 hours


def test_hazardwatch_online_by_camera(
    pipeline: Pipeline, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from hazardwatch.cli import main

    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO camera_status_log (camera_id, at, status)"
            " SELECT id, now() - interval '12 hours', 'online' FROM cameras WHERE code = 'CAM301'"
        )
    assert main(["online", "--by", "camera", "--hours", "24", "--database-url", database_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("camera online rate over the 24 h")
    rates = {line.split()[0]: float(line.split()[1]) for line in lines[1:]}
    assert rates["E330110001/CAM101"] == 0.0
    assert rates["E330281002/CAM301"] == pytest.approx(50.0, abs=0.3)
