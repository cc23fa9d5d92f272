"""Video analytics cost per frame at 640×360 and the cameras at 5 fps one core sustains, with
decoding measured apart from analysis.

Frames come from the seeded synthetic scenes (a mix: quiet, intrusion, fire, smoke, rain), JPEG
encoded as an MJPEG camera sends them. OpenCV runs single-threaded (cv2.setNumThreads(1)), as in
the camera processes, so the figures are one core's.

    .venv/bin/python -m bench.video_bench [--frames 120] [--width 640] [--height 360] [--fps 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from hazardwatch.ledger.cameras import Camera
from simulators.camera_scene import DANGER_ZONE, OVERLAY_MASK, RESTRICTED_ZONE, Scene
from video.analytics import CameraAnalytics
from video.firesmoke import FireSmokeDetector
from video.frames import Frame
from video.geometry import Box
from video.motion import MotionDetector
from video.person import PersonConfirmer
from video.tamper import TamperDetector

MIX = ("normal", "intrusion", "fire", "smoke", "rain")


def camera() -> Camera:
    return Camera.model_validate({
        "code": "CAM101", "name": "bench", "url": "http://127.0.0.1:1/cam/CAM101.mjpg", "gateway": "gw01",
        "zones": [{"id": "dike", "name": "d", "polygon": DANGER_ZONE},
                  {"id": "yard", "name": "y", "kind": "restricted", "polygon": RESTRICTED_ZONE}],
        "masks": [OVERLAY_MASK],
    })  # fmt: skip


def frames_of(count: int, width: int, height: int) -> list[np.ndarray]:
    frames = []
    per = max(1, count // len(MIX))
    for name in MIX:
        scene = Scene(name, 11, width, height)
        for i in range(per):
            image = scene.frame(i)
            if image is not None:
                frames.append(image)
    return frames


def per_frame_ms(fn: Callable[[int], object], count: int) -> list[float]:
    times = []
    for i in range(count):
        start = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - start) * 1000)
    return times


def row(label: str, times: list[float]) -> tuple[str, float, float, float]:
    return label, statistics.fmean(times), statistics.median(times), float(np.percentile(times, 95))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=float, default=5.0, help="analysed frames per second per camera")
    parser.add_argument("--sent-fps", type=float, default=25.0, help="frames per second a camera sends")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    frames = frames_of(args.frames, args.width, args.height)
    n = len(frames)
    jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes() for f in frames]
    rows = []
    decode = per_frame_ms(lambda i: cv2.imdecode(np.frombuffer(jpegs[i], np.uint8), cv2.IMREAD_COLOR), n)
    rows.append(row("decode JPEG (cv2.imdecode)", decode))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.avi"
        writer = cv2.VideoWriter(
            str(path), cv2.VideoWriter.fourcc(*"MJPG"), args.fps, (args.width, args.height)
        )
        for f in frames:
            writer.write(f)
        writer.release()
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        rows.append(row("decode MJPEG stream (FFmpeg)", per_frame_ms(lambda _i: capture.read(), n)))
        capture.release()
    analytics = CameraAnalytics(camera())
    t0 = 1_796_061_600_000
    total = per_frame_ms(lambda i: analytics.analyse(frames[i], t0 + i * 200), n)
    prepared = [Frame.prepare(f, t0 + i * 200) for i, f in enumerate(frames)]
    motion, tamper, firesmoke = MotionDetector(), TamperDetector(), FireSmokeDetector()
    moved = [motion.detect(f) for f in prepared]
    motion.reset()
    stages = {
        "  prepare (downscale, grey)": lambda i: Frame.prepare(frames[i], 0),
        "  motion (running average)": lambda i: motion.detect(prepared[i]),
        "  tamper (4 checks)": lambda i: tamper.observe(prepared[i]),
        "  fire and smoke": lambda i: firesmoke.observe(prepared[i], moved[i], motion.background),
    }
    rows.append(row("analytics, all detectors", total))
    rows += [row(label, per_frame_ms(fn, n)) for label, fn in stages.items()]
    person = PersonConfirmer()
    box = Box(0.1, 0.55, 0.06, 0.35)
    rows.append(
        row("HOG person confirmation (one box)", per_frame_ms(lambda i: person.confirm(frames[i], box), 20))
    )
    print(f"video analytics, {n} frames {args.width}×{args.height} (scenes {', '.join(MIX)}), one thread")
    print(f"  {'stage':<36} {'mean ms':>8} {'median':>8} {'p95':>8}")
    for label, mean, median, p95 in rows:
        print(f"  {label:<36} {mean:8.2f} {median:8.2f} {p95:8.2f}")
    analyse_ms, decode_ms = statistics.fmean(total), statistics.fmean(decode)
    print(f"cameras analysed at {args.fps:g} fps that one core sustains:")
    print(f"  analytics alone:                        {1000 / (args.fps * analyse_ms):5.0f}")
    for sent in (args.fps, args.sent_fps):
        per_camera = args.fps * analyse_ms + sent * decode_ms  # the reader decodes every frame sent
        print(f"  with decoding, the camera sending {sent:>2g} fps: {1000 / per_camera:5.0f}")


if __name__ == "__main__":
    main()
