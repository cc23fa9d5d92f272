"""Cameras in devices.yaml: stream, zones and masks as relative polygons, detector options.

A camera belongs to a hazard source (and optionally one of its equipment) and is read by one
gateway's ``hazardwatch video`` process. Polygons are lists of ``[x, y]`` points relative to the
frame (0…1, origin top left), so they hold at any resolution the stream is decoded at.
"""

from __future__ import annotations

import re
from datetime import time as dtime
from enum import StrEnum
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
Point = tuple[Annotated[float, Field(ge=0, le=1)], Annotated[float, Field(ge=0, le=1)]]
Polygon = Annotated[list[Point], Field(min_length=3, max_length=64)]
Condition = Annotated[str, Field(pattern=r"^[A-Z][A-Z_]{1,31}$")]
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ZoneKind(StrEnum):
    DANGER = "danger"  # any motion held for k frames is an intrusion
    RESTRICTED = "restricted"  # motion outside the permitted hours is an alarm


def _polygon_area(points: list[Point]) -> float:
    pairs = zip(points, points[1:] + points[:1], strict=True)
    return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in pairs)) / 2


class Zone(_Model):
    id: Code = Field(description="zone id, unique in the camera")
    name: str = Field(min_length=1, max_length=200)
    kind: ZoneKind = Field(ZoneKind.DANGER, description="danger: intrusion; restricted: out of hours")
    polygon: Polygon = Field(description="[[x, y], …] relative to the frame (0…1)")
    frames: int = Field(3, ge=1, le=100, description="consecutive analysed frames with motion (k)")
    min_area_pct: float = Field(
        0.5, gt=0, le=100, description="motion covering this share of the zone counts as presence"
    )
    confirm_person: bool = Field(
        False, description="confirm with OpenCV's HOG person detector inside the motion box"
    )
    permitted_hours: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="restricted zones: local HH:MM-HH:MM windows when motion is permitted",
    )

    @field_validator("permitted_hours")
    @classmethod
    def _hours(cls, windows: list[str]) -> list[str]:
        for window in windows:
            if not _HOURS.match(window):
                raise ValueError(f"permitted hours {window!r} must look like 08:00-18:00")
        return windows

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if _polygon_area(self.polygon) < 1e-4:
            raise ValueError(f"zone {self.id}: the polygon encloses no area")
        if self.permitted_hours and self.kind != ZoneKind.RESTRICTED:
            raise ValueError(f"zone {self.id}: permitted_hours apply to restricted zones only")
        return self

    def windows(self) -> list[tuple[dtime, dtime]]:
        """The permitted windows as (start, end) local times; an end of 24:00 is midnight."""
        result = []
        for window in self.permitted_hours:
            m = _HOURS.match(window)
            assert m is not None  # noqa: S101 - checked by the validator
            h1, m1, h2, m2 = (int(g) for g in m.groups())
            end = dtime(23, 59, 59, 999_999) if h2 == 24 else dtime(h2, m2)
            result.append((dtime(h1, m1), end))
        return result


class TamperOptions(_Model):
    enabled: bool = Field(True, description="watch for covered, defocused, moved and frozen images")
    hold_s: float = Field(3.0, ge=0, le=600, description="a tamper condition must hold this long")
    frozen_s: float = Field(10.0, gt=0, le=3600, description="identical frames for this long: frozen")
    moved_pct: float = Field(
        4.0, gt=0, le=50, description="shift against the commissioning baseline, % of the frame width"
    )
    defocus_ratio: float = Field(
        0.3, gt=0, lt=1, description="sharpness below this share of the baseline's: defocused"
    )


class OnnxOptions(_Model):
    """An extra detector: an ONNX model run with cv2.dnn, whose output is one score per class."""

    model: str = Field(min_length=1, max_length=1024, description="model file on the gateway")
    input_size: tuple[Annotated[int, Field(ge=8, le=2048)], Annotated[int, Field(ge=8, le=2048)]] = Field(
        (224, 224), description="network input [width, height]"
    )
    class_index: int = Field(0, ge=0, le=10_000, description="the output score that alarms")
    threshold: float = Field(0.5, gt=0, le=1, description="score at or above which it alarms")
    condition: Condition = Field("DETECTION", description="alarm condition name, e.g. NO_HELMET")
    scale: float = Field(1 / 255, gt=0, description="pixel scale before the network")
    swap_rb: bool = Field(True, description="feed RGB (true) or BGR (false)")
    every_n: int = Field(5, ge=1, le=1000, description="run on every n-th analysed frame")


class Detectors(_Model):
    intrusion: bool = Field(True, description="danger and restricted zones")
    tamper: TamperOptions = Field(default_factory=TamperOptions)
    fire: bool = Field(True, description="suspected fire: flame colours that flicker and persist")
    smoke: bool = Field(True, description="suspected smoke: grey motion that grows and softens the view")
    onnx: OnnxOptions | None = Field(None, description="optional ONNX detector")


class EventOptions(_Model):
    min_duration_s: float = Field(1.0, ge=0, le=600, description="a detection must last this long")
    end_after_s: float = Field(3.0, ge=0, le=600, description="quiet this long ends an event")
    cooldown_s: float = Field(30.0, ge=0, le=86_400, description="no new event of a kind and zone before")
    update_s: float = Field(10.0, gt=0, le=3600, description="an open event is updated this often")
    clip_pre_s: float = Field(3.0, ge=0, le=30, description="seconds of clip before the event")
    clip_post_s: float = Field(3.0, ge=0, le=30, description="seconds of clip after the event starts")


class Camera(_Model):
    code: Code = Field(description="camera code, unique in the enterprise")
    name: str = Field(min_length=1, max_length=200, description="named after enterprise and place")
    url: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^(rtsp|rtsps|http|https|file)://.+",
        description="rtsp://, http(s):// (MJPEG) or file:// stream; no password in it",
    )
    username: str | None = Field(None, min_length=1, max_length=128, description="stream user")
    password_env: str | None = Field(
        None, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="env variable: password"
    )
    gateway: Code = Field(description="id of the gateway whose video process reads the camera")
    equipment: Code | None = Field(None, description="equipment of the hazard source it watches")
    fps: float = Field(5.0, ge=0.2, le=30, description="frames analysed per second")
    offline_after_s: float = Field(10.0, ge=1, le=3600, description="no frame for this long: offline")
    timezone: str = Field("Asia/Shanghai", description="time zone of permitted hours")
    zones: list[Zone] = Field(default_factory=list, max_length=32)
    masks: list[Polygon] = Field(default_factory=list, max_length=32, description="ignored areas")
    detectors: Detectors = Field(default_factory=Detectors)
    events: EventOptions = Field(default_factory=EventOptions)

    @field_validator("url")
    @classmethod
    def _no_secret(cls, url: str) -> str:
        if re.match(r"^[a-z]+://[^/@]*:[^/@]*@", url):
            raise ValueError("no password in the url: give username and password_env")
        return url

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown time zone {name!r}") from err
        return name

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        seen: set[str] = set()
        for zone in self.zones:
            if zone.id in seen:
                raise ValueError(f"camera {self.code}: duplicate zone id {zone.id!r}")
            seen.add(zone.id)
        if (self.username is None) != (self.password_env is None):
            raise ValueError("give username and password_env together")
        return self

    @property
    def source(self) -> Literal["rtsp", "http", "file"]:
        scheme = self.url.split("://", 1)[0]
        return "file" if scheme == "file" else "rtsp" if scheme.startswith("rtsp") else "http"
