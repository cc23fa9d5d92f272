"""Capture under its watchdog and the camera processes under theirs, against real peers: a
loopback MJPEG server, a server whose stream hangs, a closed port, a video file, and the
`hazardwatch video` service whose camera process is killed."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from hazardwatch import wire
from hazardwatch.ledger import load_plant
from hazardwatch.settings import MqttAddress
from simulators.camera_scene import Scene
from simulators.camera_stream import CameraStreamServer
from tests.support import free_port, sample_plant_doc, write_plant
from tests.test_e2e import eventually
from tests.video_support import clear_retained
from video.capture import Capture, stream_url
from video.service import VideoService


class HangingCamera:
    """Answers like an MJPEG camera, sends two frames, then holds the connection silently."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._release = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        frame = cv2.imencode(".jpg", Scene("normal", 1, 160, 90).frame(0))[1].tobytes()  # type: ignore[arg-type]
        part = b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (len(frame), frame)
        while not self._release.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(
                    b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=f\r\n\r\n"
                )
                conn.sendall(part * 2)
                self._release.wait(10)

    def close(self) -> None:
        self._release.set()
        self._sock.close()
        self._thread.join(5)


@pytest.fixture
def hanging() -> Iterator[HangingCamera]:
    camera = HangingCamera()
    yield camera
    camera.close()


def poll_for(capture: Capture, seconds: float) -> int:
    frames = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frames += capture.poll() is not None
        time.sleep(0.01)
    return frames


def test_the_watchdog_abandons_a_read_that_hangs_and_reconnects(hanging: HangingCamera) -> None:
    capture = Capture(f"http://127.0.0.1:{hanging.port}/cam.mjpg", stall_s=0.5, timeout_s=3.0)
    try:
        frames = poll_for(capture, 3.0)
    finally:
        capture.close()
    assert frames >= 1
    assert capture.stats.reconnects >= 1
    assert capture.stats.error is not None
    assert "read hangs" in capture.stats.error


def test_a_camera_that_is_not_there_is_retried_with_backoff() -> None:
    capture = Capture(f"http://127.0.0.1:{free_port()}/cam.mjpg", stall_s=1.0, timeout_s=1.0)
    try:
        assert poll_for(capture, 3.5) == 0
    finally:
        capture.close()
    assert capture.stats.connected is False
    assert 2 <= capture.stats.reconnects <= 3  # tries at 0 s, 1 s, 3 s: backoff 1, 2, 4 s
    assert capture.stats.error == "cannot open the stream"


def test_frames_come_from_a_file_at_its_pace_and_only_the_latest_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "scene.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 20.0, (320, 180))
    scene = Scene("intrusion", 3, 320, 180)
    for i in range(40):
        image = scene.frame(i)
        assert image is not None
        writer.write(image)
    writer.release()
    capture = Capture(stream_url(f"file://{path}"), pace_fps=20.0)
    try:
        deadline = time.monotonic() + 10
        while capture.stats.frames < 3 and time.monotonic() < deadline:
            capture.poll()
            time.sleep(0.01)
        time.sleep(0.5)  # the reader goes on at 20 fps: frames not taken meanwhile are dropped
        assert capture.poll() is not None
    finally:
        capture.close()
    assert capture.stats.frames >= 4
    assert capture.stats.dropped >= 5


def test_credentials_go_into_the_url_only_when_opened() -> None:
    assert stream_url("rtsp://10.0.0.5/ch1", "admin", "p@ss:w") == "rtsp://admin:p%40ss%3Aw@10.0.0.5/ch1"
    assert stream_url("file:///data/a.mp4") == "/data/a.mp4"


def test_a_killed_camera_process_is_started_again(tmp_path: Path, mqtt_port: int) -> None:
    server = CameraStreamServer("127.0.0.1", 0, ["CAM101"], width=320, height=180)
    server.start()
    doc = sample_plant_doc()
    for enterprise in doc["enterprises"]:
        for source in enterprise["hazard_sources"]:
            for camera in source.get("cameras", []):
                camera["url"] = server.url("CAM101")
    plant = load_plant(write_plant(doc, tmp_path))
    service = VideoService(plant, MqttAddress("127.0.0.1", mqtt_port), tmp_path / "video",
                           enterprise="E330110001", gateway="gw01")  # fmt: skip
    stop = threading.Event()
    runner = threading.Thread(target=service.run, args=(stop,))
    runner.start()
    try:
        first = eventually(service.pids, 20, "the camera processes")
        os.kill(first[0], signal.SIGKILL)
        assert eventually(lambda: [p for p in service.pids() if p != first[0]], 20, "a restarted process")
        assert service.restarts() == 1
    finally:
        stop.set()
        runner.join(30)
        server.stop()
        clear_retained(mqtt_port, wire.cameras_topic("E330110001", "gw01"))
    assert not runner.is_alive()
