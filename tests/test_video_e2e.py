"""End to end: a synthetic camera of the sample plant raises an intrusion alarm that a duty
officer sees on the board, with its snapshot — through the camera processes of `hazardwatch
video`, a real Mosquitto, the ingest consumer and a real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hazardwatch import wire
from hazardwatch.ledger import load_plant
from hazardwatch.settings import MqttAddress
from ingest.consumer import Consumer, subscriptions
from ingest.pipeline import Pipeline
from simulators.camera_stream import CameraStreamServer
from tests.support import sample_plant_doc, write_plant
from tests.test_dashboard_api import logged_in, running, seed
from tests.video_support import clear_retained
from video.service import VideoService

pytestmark = pytest.mark.e2e
CAMERA_TOPICS = [wire.cameras_topic("E330110001", "gw01"), wire.cameras_topic("E330281002", "gw01")]
INTRUSION_SQL = (
    "SELECT a.id, a.state, a.detail->>'snapshot_id', c.code, c.status FROM alarms a"
    " JOIN cameras c ON c.id = a.subject_id WHERE a.subject_kind = 'camera' AND a.condition = 'INTRUSION'"
)


@pytest.fixture
def camera_stream() -> Iterator[CameraStreamServer]:
    server = CameraStreamServer(
        "127.0.0.1", 0, ["CAM101", "CAM301"], scene="intrusion", width=640, height=360
    )
    server.start()
    yield server
    server.stop()


def _wait_for(url: str, sql: str, timeout: float) -> list[tuple[Any, ...]]:
    deadline = time.monotonic() + timeout
    while True:
        with psycopg.connect(url) as conn:
            rows = conn.execute(sql.encode()).fetchall()
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


async def test_a_synthetic_camera_raises_an_intrusion_alarm_with_its_snapshot(
    tmp_path: Path, database_url: str, mqtt_port: int, camera_stream: CameraStreamServer
) -> None:
    doc = sample_plant_doc()
    for enterprise in doc["enterprises"]:
        for source in enterprise["hazard_sources"]:
            for camera in source.get("cameras", []):
                camera["url"] = camera_stream.url(camera["code"])
    plant = load_plant(write_plant(doc, tmp_path))
    seed(database_url, plant)
    address = MqttAddress("127.0.0.1", mqtt_port)
    consumer = Consumer(Pipeline(database_url), address, client_id=f"test-video-ingest-{time.monotonic_ns()}",
                        topics=subscriptions(["E330110001"]))  # fmt: skip
    service = VideoService(plant, address, tmp_path / "video", enterprise="E330110001", gateway="gw01")
    stop_ingest, stop_video = threading.Event(), threading.Event()
    ingest = threading.Thread(target=consumer.run, args=(stop_ingest,))
    video = threading.Thread(target=service.run, args=(stop_video,))
    clear_retained(mqtt_port, *CAMERA_TOPICS)  # no stale camera status from an earlier test
    ingest.start()
    try:
        assert consumer.subscribed.wait(10)
        video.start()
        rows = _wait_for(database_url, INTRUSION_SQL, timeout=60)
        assert rows, "no intrusion alarm"
        alarm_id, state, snapshot_id, code, status = rows[0]
        assert (state, code, status) == ("UNACK", "CAM101", "online")
        assert snapshot_id is not None
        async with running(database_url) as (server, _app), logged_in(server, "county") as officer:
            status_code, board = await officer.get("/api/v1/alarms")
            assert status_code == 200
            mine = [a for a in board["alarms"] if a["id"] == alarm_id]
            assert len(mine) == 1
            assert mine[0]["condition"] == "INTRUSION"
            async with officer.session.get(f"/api/v1/snapshots/{snapshot_id}") as response:
                assert response.status == 200
                assert (await response.read())[:2] == b"\xff\xd8"
        stop_video.set()
        video.join(30)
        # an orderly stop says the cameras are offline (retained), as the last will would: the
        # camera's offline alarm stands for it, its intrusion alarm is suppressed by design
        sql = (
            "SELECT a.state FROM alarms a WHERE a.subject_kind = 'camera' AND a.condition = 'CAMERA_OFFLINE'"
            " AND a.state = 'UNACK'"
        )
        assert _wait_for(database_url, sql, 10) == [("UNACK",)]
        assert _wait_for(database_url, INTRUSION_SQL, 1)[0][1] == "SUPPRESSED"
    finally:
        stop_video.set()
        if video.is_alive():
            video.join(30)
        stop_ingest.set()
        ingest.join(10)
        clear_retained(mqtt_port, *CAMERA_TOPICS)
    clips = list((tmp_path / "video" / "E330110001" / "gw01" / "clips" / "CAM101").glob("*.avi"))
    assert clips, "no clip of the event on the gateway"
