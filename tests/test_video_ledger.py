"""Cameras in devices.yaml: the schema's checks, each reported at its YAML line."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from hazardwatch.errors import ConfigError
from hazardwatch.ledger import load_plant_text
from hazardwatch.ledger.cameras import Zone
from tests.support import SAMPLE_DEVICES
from video.zones import permitted

CAMERA = "          - code: CAM101\n"


def with_camera_change(old: str, new: str) -> str:
    text = SAMPLE_DEVICES.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    return text.replace(old, new)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_the_sample_plant_has_its_cameras() -> None:
    plant = load_plant_text(SAMPLE_DEVICES.read_text(encoding="utf-8"))
    cameras = {c.code: (s.code, c) for e in plant.enterprises for s, c in e.iter_cameras()}
    assert sorted(cameras) == ["CAM101", "CAM301"]
    source, cam101 = cameras["CAM101"]
    assert (source, cam101.gateway, cam101.equipment, cam101.source) == (
        "HS330110001-01",
        "gw01",
        "T101",
        "http",
    )
    assert [(z.id, z.kind.value) for z in cam101.zones] == [("dike", "danger"), ("yard", "restricted")]


DIKE = "danger, polygon: [[0.05, 0.6], [0.55, 0.6], [0.55, 0.97], [0.05, 0.97]]}"
BAD_DIKE = "danger, polygon: [[0.05, 0.6], [1.55, 0.6], [0.55, 0.97]]}"
URL = "url: http://127.0.0.1:8792/cam/CAM101.mjpg"
GATEWAY = "            gateway: gw01\n            equipment: T101\n"
FPS = "            fps: 5\n"


@pytest.mark.parametrize(
    ("old", "new", "message", "at"),
    [
        (GATEWAY, GATEWAY.replace("gw01", "gw09"), "camera CAM101: no gateway 'gw09'", CAMERA),
        (GATEWAY, GATEWAY.replace("T101", "V201"), "camera CAM101: no equipment 'V201' in HS330110001-01",
         CAMERA),
        (URL, "url: rtsp://admin:secret@10.0.0.5/ch1", "no password in the url", "rtsp://admin"),
        (URL, "url: ftp://10.0.0.5/x", "should match pattern", "ftp://"),
        (DIKE, BAD_DIKE, "less than or equal to 1", "[1.55, 0.6]"),
        ("kind: danger, polygon:", "kind: danger, permitted_hours: ['08:00-18:00'], polygon:",
         "permitted_hours apply to restricted zones only", "kind: danger"),
        ('permitted_hours: ["08:00-18:00"],', 'permitted_hours: ["8-18"],', "must look like 08:00-18:00",
         "8-18"),
        (FPS, FPS + "            timezone: Mars/Olympus\n", "unknown time zone", "Mars/Olympus"),
        ("{id: yard,", "{id: dike,", "duplicate zone id 'dike'", "CAM101"),
    ],
)  # fmt: skip
def test_camera_errors_name_the_camera_and_its_line(old: str, new: str, message: str, at: str) -> None:
    text = with_camera_change(old, new)
    with pytest.raises(ConfigError, match=message) as info:
        load_plant_text(text, "devices.yaml")
    lines = [f"devices.yaml:{i}:" for i, line in enumerate(text.splitlines(), 1) if at.strip() in line]
    assert any(where in str(info.value) for where in lines), (str(info.value), lines)


@pytest.mark.parametrize(
    ("hours", "local", "allowed"),
    [
        (["08:00-18:00"], "07:59", False),
        (["08:00-18:00"], "08:00", True),
        (["08:00-18:00"], "18:01", False),
        (["22:00-06:00"], "23:30", True),  # across midnight
        (["22:00-06:00"], "05:59", True),
        (["22:00-06:00"], "12:00", False),
        (["08:00-12:00", "13:00-24:00"], "12:30", False),
        (["08:00-12:00", "13:00-24:00"], "23:59", True),
        ([], "12:00", False),  # a restricted zone with no window is never entered
    ],
)
def test_permitted_hours_in_the_camera_time_zone(hours: list[str], local: str, allowed: bool) -> None:
    zone = Zone(
        id="yard", name="装卸区", kind="restricted", polygon=[(0, 0), (1, 0), (1, 1)], permitted_hours=hours
    )
    tz = ZoneInfo("Asia/Shanghai")
    hour, minute = (int(p) for p in local.split(":"))
    ts_ms = int(datetime(2026, 12, 1, hour, minute, tzinfo=tz).astimezone(UTC).timestamp() * 1000)
    assert permitted(zone, ts_ms, tz) is allowed
