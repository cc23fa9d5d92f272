"""Video analytics on synthetic scenes with a fixed seed: as arrays and through a loopback MJPEG stream.

Each run prints its table of detections and false alarms per scene, and fails on a missed
tamper, a false alarm in a negative control (IR switch, static orange object, lighting drift,
rain) or any other miss.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from simulators.camera_scene import SCENES, Scene
from simulators.camera_stream import CameraStreamServer
from tests.video_support import NIGHT_T0_MS, SceneResult, failures, scene_camera, table
from video.camera import CameraPipeline
from video.capture import Capture

ARRAY_FRAMES = 50  # 10 s at 5 fps
STREAM_SECONDS = 5.0


def run_arrays(name: str, state_dir: Path, seed: int = 7) -> SceneResult:
    camera = scene_camera()
    pipeline = CameraPipeline(camera, "gw01", state_dir)
    scene = Scene(name, seed, width=320, height=180, fps=camera.fps)
    result = SceneResult(name)
    for i in range(ARRAY_FRAMES):
        ts = NIGHT_T0_MS + i * 200
        image = scene.frame(i)
        if image is None:
            result.add(pipeline.silence(ts))
        else:
            result.frames += 1
            result.add(pipeline.frame(image, ts))
        if pipeline.status.status == "offline" and pipeline.frames:
            result.labels.add("OFFLINE")
    return result


@pytest.mark.parametrize("seed", [7, 13])
def test_scenes_as_arrays(tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: int) -> None:
    results = [run_arrays(name, tmp_path / name, seed) for name in SCENES]
    with capsys.disabled():
        print("\n" + table(f"video scenes as arrays (320×180, 5 fps, seed {seed})", results))
    assert failures(results) == []
    for r in results:
        news = [e for e in r.events if e.phase == "new"]
        assert all(e.snapshot is not None and e.snapshot[:2] == b"\xff\xd8" for e in news), r.scene
        assert all(e.clip is not None for e in news), r.scene
        ended = [e for e in r.events if e.phase == "end"]
        assert all(e.clip is not None for e in ended)
        assert {e.event_id for e in ended} <= {e.event_id for e in news}
    clips = list((tmp_path / "intrusion" / "clips" / "CAM901").glob("*.avi"))
    assert clips
    assert all(c.stat().st_size > 1000 for c in clips)


def run_stream(names: list[str], state_dir: Path, fps: float) -> list[SceneResult]:
    """The scenes at once, each a camera of one loopback MJPEG server, read through OpenCV's FFmpeg."""
    server = CameraStreamServer("127.0.0.1", 0, names, seed=7, width=320, height=180, fps=fps)
    for name in names:
        server.set_scene(name, name)
    server.start()
    camera = scene_camera(fps, hold_s=0.5, frozen_s=1.0, min_duration_s=0.3, offline_after_s=1.0)
    runs = {}
    for name in names:
        pipeline = CameraPipeline(
            camera.model_copy(update={"url": server.url(name)}), "gw01", state_dir / name
        )
        runs[name] = (Capture(server.url(name), stall_s=2.0, timeout_s=2.0), pipeline, SceneResult(name))
    # The frames' receive times, moved onto the night so the yard's permitted hours (08:00-18:00
    # Asia/Shanghai) do not depend on the time of day the test runs at
    shift_ms = NIGHT_T0_MS - time.time_ns() // 1_000_000
    try:
        deadline = time.monotonic() + STREAM_SECONDS
        while time.monotonic() < deadline:
            for capture, pipeline, result in runs.values():
                got = capture.poll()
                if got is None:
                    result.add(pipeline.silence(time.time_ns() // 1_000_000 + shift_ms))
                else:
                    result.frames += 1
                    result.add(pipeline.frame(got[0], got[1] + shift_ms))
                if pipeline.status.status == "offline" and pipeline.frames:
                    result.labels.add("OFFLINE")
            time.sleep(0.005)
    finally:
        for capture, _, _ in runs.values():
            capture.close()
        server.stop()
    if "offline" in runs:
        assert runs["offline"][0].stats.reconnects >= 1  # the stream closed; the capture kept trying
    return [r for _, _, r in runs.values()]


def test_scenes_through_mjpeg_stream(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fps = 10.0
    half = len(SCENES) // 2
    results = run_stream(list(SCENES[:half]), tmp_path, fps) + run_stream(list(SCENES[half:]), tmp_path, fps)
    with capsys.disabled():
        print("\n" + table(f"video scenes through MJPEG on loopback (320×180, {fps:g} fps, seed 7)", results))
    assert failures(results) == []
