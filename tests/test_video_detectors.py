"""The optional ONNX detector slot (with a tiny model the test builds itself, nothing downloaded),
the HOG person confirmation, and frames no camera should send."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from simulators.camera_scene import Scene
from tests.video_support import NIGHT_T0_MS, scene_camera
from video.analytics import CameraAnalytics
from video.camera import CameraPipeline
from video.frames import Frame


def redness_model(path: Path, size: int = 32) -> Path:
    """x (1×3×size×size, RGB in 0…1) → mean colour → [σ(10R − 5G − 5B − 2), σ(−10R + 5G + 5B + 2)]."""
    weights = numpy_helper.from_array(np.array([[10, -10], [-5, 5], [-5, 5]], np.float32), "w")
    bias = numpy_helper.from_array(np.array([-2, 2], np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["x"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("Gemm", ["flat", "w", "b"], ["logits"]),
            helper.make_node("Sigmoid", ["logits"], ["y"]),
        ],
        "redness",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def onnx_camera(model: Path, class_index: int = 0) -> CameraAnalytics:
    onnx_options = {"model": str(model), "input_size": [32, 32], "condition": "RED_ALERT", "every_n": 2,
                     "class_index": class_index}  # fmt: skip
    camera = scene_camera(detectors={"tamper": {"enabled": False}, "onnx": onnx_options})
    return CameraAnalytics(camera)


def red_frames(count: int) -> list[np.ndarray]:
    scene = Scene("normal", 5, 320, 180)
    frames = []
    for i in range(count):
        image = scene.frame(i)
        assert image is not None
        if i >= 10:
            image[20:160, 20:300] = (0, 0, 255)  # BGR red over most of the view
        frames.append(image)
    return frames


def test_an_onnx_model_from_configuration_detects_and_its_events_follow(tmp_path: Path) -> None:
    onnx_options = {"model": str(redness_model(tmp_path / "redness.onnx")), "input_size": [32, 32],
                    "condition": "RED_ALERT", "every_n": 2}  # fmt: skip
    camera = scene_camera(detectors={"tamper": {"enabled": False}, "onnx": onnx_options})
    pipeline = CameraPipeline(camera, "gw01")
    events = []
    for i, image in enumerate(red_frames(25)):
        events += pipeline.frame(image, NIGHT_T0_MS + i * 200)
    assert [(e.kind, e.phase) for e in events] == [("RED_ALERT", "new")]
    assert events[0].ts_ms >= NIGHT_T0_MS + 10 * 200 + 1000  # from the red frames on, held 1 s
    assert events[0].score > 0.9
    assert events[0].snapshot is not None


def test_the_model_scores_an_ordinary_view_low(tmp_path: Path) -> None:
    analytics = onnx_camera(redness_model(tmp_path / "redness.onnx"))
    scene = Scene("intrusion", 5, 320, 180)
    for i in range(20):
        image = scene.frame(i)
        assert image is not None
        assert all(d.kind != "RED_ALERT" for d in analytics.analyse(image, NIGHT_T0_MS + i * 200).detections)
    assert analytics.onnx is not None
    assert analytics.onnx.last_score < 0.5


@pytest.mark.parametrize("bad", ["missing", "garbage", "too few scores"])
def test_a_bad_model_disables_the_slot_and_nothing_else(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "model.onnx"
    if bad == "garbage":
        path.write_bytes(b"not an onnx model")
    elif bad == "too few scores":
        redness_model(path)
    analytics = onnx_camera(path, class_index=5 if bad == "too few scores" else 0)
    for i, image in enumerate(red_frames(14)):
        analytics.analyse(image, NIGHT_T0_MS + i * 200)
    assert analytics.onnx is None


def test_the_hog_person_detector_vetoes_a_moving_box_that_is_no_person() -> None:
    camera = scene_camera()
    zones = [z.model_copy(update={"confirm_person": True}) for z in camera.zones]
    analytics = CameraAnalytics(camera.model_copy(update={"zones": zones}))
    scene = Scene("intrusion", 7, 320, 180)
    kinds = set()
    for i in range(30):
        image = scene.frame(i)
        assert image is not None
        kinds |= {d.kind for d in analytics.analyse(image, NIGHT_T0_MS + i * 200).detections}
    assert analytics.zones.person is not None  # the detector ran on the motion boxes
    assert "INTRUSION" not in kinds  # the synthetic walker is a block, not a person


def test_frames_no_camera_should_send_do_not_stop_the_analytics() -> None:
    pipeline = CameraPipeline(scene_camera(), "gw01")
    scene = Scene("normal", 2, 320, 180)
    odd = [
        np.zeros((180, 320, 3), np.uint8),  # black
        np.full((180, 320), 128, np.uint8),  # grey, one channel
        np.zeros((6, 8, 3), np.uint8),  # tiny
        np.full((720, 1280, 3), 255, np.uint8),  # another resolution, white
    ]
    for i in range(40):
        image = odd[i % 4] if i % 5 == 4 else scene.frame(i)
        assert image is not None
        pipeline.frame(image, NIGHT_T0_MS + i * 200)
    assert pipeline.frames == 40


def test_motion_in_a_restricted_zone_within_its_permitted_hours_is_no_alarm() -> None:
    """The night scene's walker crosses the yard at 10:00, inside its 08:00–18:00 window."""
    for t0, expected in ((NIGHT_T0_MS, {"RESTRICTED"}), (NIGHT_T0_MS + 8 * 3_600_000, set())):
        analytics = CameraAnalytics(scene_camera())
        scene = Scene("night", 7, 320, 180)
        kinds: set[str] = set()
        for i in range(30):
            image = scene.frame(i)
            assert image is not None
            kinds |= {d.kind for d in analytics.analyse(image, t0 + i * 200).detections}
        assert kinds == expected


def test_a_still_view_stays_still_for_minutes() -> None:
    """Two minutes of the normal scene at 5 fps: the baseline does not wear away (OpenCV's phase
    correlation windows its inputs in place; after about 35 s the still view read as moved)."""
    camera = scene_camera()
    analytics = CameraAnalytics(camera)
    scene = Scene("normal", 7, 320, 180)
    shifts, reasons = [], set()
    for i in range(600):
        image = scene.frame(i)
        assert image is not None
        reasons |= analytics.tamper.observe(Frame.prepare(image, NIGHT_T0_MS + i * 200))
        shifts.append(analytics.tamper.measures.get("shift_pct", 0.0))
        if i == 5:
            assert analytics.tamper.baseline is not None
            learned = analytics.tamper.baseline.gradient.copy()
    assert reasons == set()
    assert max(shifts) < 1.0
    assert analytics.tamper.baseline is not None
    assert np.array_equal(analytics.tamper.baseline.gradient, learned)
