"""The command line of the video side: `hazardwatch video --help`, `hazardwatch simulate --camera-scene`."""

from __future__ import annotations

from pathlib import Path

import pytest

from hazardwatch.cli import main
from hazardwatch.errors import ConfigError
from hazardwatch.ledger import load_plant
from hazardwatch.settings import MqttAddress
from simulators.camera_stream import CameraStreamServer, request_scene
from tests.support import free_port, sample_plant_doc, write_plant
from video.service import VideoService


def plant_with_cameras_at(port: int, directory: Path) -> Path:
    doc = sample_plant_doc()
    for enterprise in doc["enterprises"]:
        for source in enterprise["hazard_sources"]:
            for camera in source.get("cameras", []):
                camera["url"] = f"http://127.0.0.1:{port}/cam/{camera['code']}.mjpg"
    return write_plant(doc, directory)


def test_video_help_names_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["video", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--devices", "--mqtt-url", "--enterprise", "--gateway", "--group-size", "--state-dir"):
        assert option in out


def test_camera_scenes_are_switched_on_the_running_simulator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = CameraStreamServer("127.0.0.1", 0, ["CAM101", "CAM301"], width=160, height=90)
    server.start()
    try:
        devices = plant_with_cameras_at(server.port, tmp_path)
        assert (
            main(["simulate", "--devices", str(devices), "--camera-scene", "intrusion", "--camera", "CAM101"])
            == 0
        )
        assert "cameras CAM101 now play intrusion" in capsys.readouterr().out
        assert request_scene(load_plant(devices), "fire") == ["CAM101", "CAM301"]
        with pytest.raises(ValueError, match="CAM101"):
            request_scene(load_plant(devices), "volcano")
    finally:
        server.stop()
    assert (
        main(["simulate", "--devices", str(devices), "--camera-scene", "normal"]) == 2
    )  # nothing listens now
    assert "no camera simulator answers" in capsys.readouterr().err


def test_video_without_cameras_says_so(tmp_path: Path) -> None:
    doc = sample_plant_doc()
    for enterprise in doc["enterprises"]:
        for source in enterprise["hazard_sources"]:
            source.pop("cameras", None)
    plant = load_plant(write_plant(doc, tmp_path))
    service = VideoService(plant, MqttAddress("127.0.0.1", free_port()), tmp_path)
    with pytest.raises(ConfigError, match="no camera in the devices file"):
        service.cameras()
