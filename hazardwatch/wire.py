"""Wire format v1: MQTT topics, the columnar reading batch and edge (video) events.

A readings payload is a map, msgpack by default, JSON accepted::

    {"v": 1, "gw": "gw01", "seq": 17, "replay": false, "sent": 1732262400000,
     "tags": ["LT101", ...], "ts": [1732262399500, ...], "val": [42.1, ...], "q": [0, ...]}

``ts`` and ``sent`` are UTC milliseconds. ``val`` is null (or NaN) where the quality
carries no value (see :class:`hazardwatch.quality.Quality`). ``seq`` increases by one per
batch and per gateway, across restarts, so the platform can see gaps.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

import msgpack

from hazardwatch.errors import WireError
from hazardwatch.quality import VALUED_QUALITIES, Quality

VERSION = 1
TOPIC_ROOT = "hw/v1"
MAX_BATCH_READINGS = 100_000
MAX_TAG_LENGTH = 64  # as the ledger's codes
_KNOWN_QUALITIES = frozenset(q.value for q in Quality)


def readings_topic(enterprise: str, gateway: str) -> str:
    return f"{TOPIC_ROOT}/{enterprise}/{gateway}/readings"


def status_topic(enterprise: str, gateway: str) -> str:
    return f"{TOPIC_ROOT}/{enterprise}/{gateway}/status"


def events_topic(enterprise: str, gateway: str) -> str:
    return f"{TOPIC_ROOT}/{enterprise}/{gateway}/events"


def health_topic(enterprise: str, gateway: str) -> str:
    """The gateway's retained heartbeat: buffer, devices, poll latency, clock offset (JSON)."""
    return f"{TOPIC_ROOT}/{enterprise}/{gateway}/health"


def config_topic(enterprise: str, gateway: str) -> str:
    return f"{TOPIC_ROOT}/{enterprise}/{gateway}/config"


def resend_topic(enterprise: str, gateway: str) -> str:
    """The platform asks the gateway here to send batches again that it never received."""
    return f"{TOPIC_ROOT}/{enterprise}/{gateway}/resend"


MAX_RESEND_BATCHES = 1000  # one request names at most this many batches


def resend_payload(first_seq: int, last_seq: int) -> bytes:
    """A resend request: ``{"v": 1, "from": first seq, "to": last seq}`` (JSON, both inclusive)."""
    return json.dumps({"v": VERSION, "from": first_seq, "to": last_seq}).encode()


def decode_resend(payload: bytes) -> tuple[int, int]:
    """The (first, last) sequence numbers of a resend request; WireError when it is not one."""
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as err:
        raise WireError(f"malformed resend request: {err}") from err
    if not isinstance(doc, dict) or doc.get("v") != VERSION:
        raise WireError("a resend request is a JSON object with v = 1")
    first, last = doc.get("from"), doc.get("to")
    if not (isinstance(first, int) and isinstance(last, int) and _is_count(first) and _is_count(last)):
        raise WireError("a resend request needs integer 'from' and 'to'")
    if not 0 < first <= last:
        raise WireError("a resend request needs 0 < from <= to")
    if last - first >= MAX_RESEND_BATCHES:
        raise WireError(f"a resend request names at most {MAX_RESEND_BATCHES} batches")
    return first, last


def alarms_topic(region: str, enterprise: str) -> str:
    return f"{TOPIC_ROOT}/alarms/{region}/{enterprise}"


READINGS_SUBSCRIPTION = f"{TOPIC_ROOT}/+/+/readings"
# The platform's clock tick, {"t": UTC ms}, from which agents measure their clock offset.
CLOCK_TOPIC = f"{TOPIC_ROOT}/clock"


@dataclass(frozen=True, slots=True)
class TopicAddress:
    enterprise: str
    gateway: str
    kind: str


def parse_topic(topic: str) -> TopicAddress:
    """Split ``hw/v1/{enterprise}/{gateway}/{kind}``; raise WireError otherwise."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != TOPIC_ROOT or not all(parts[2:]):
        raise WireError(f"topic {topic!r} is not hw/v1/<enterprise>/<gateway>/<kind>")
    return TopicAddress(parts[2], parts[3], parts[4])


@dataclass(slots=True)
class ReadingBatch:
    """One gateway's batch of readings, columnar."""

    gateway: str
    seq: int
    sent_ms: int
    tags: list[str] = field(default_factory=list)
    ts_ms: list[int] = field(default_factory=list)
    values: list[float | None] = field(default_factory=list)
    quality: list[int] = field(default_factory=list)
    replay: bool = False

    def __len__(self) -> int:
        return len(self.tags)

    def append(self, tag: str, ts_ms: int, value: float | None, quality: Quality) -> None:
        self.tags.append(tag)
        self.ts_ms.append(ts_ms)
        self.values.append(value if quality.has_value else None)
        self.quality.append(int(quality))

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "gw": self.gateway,
            "seq": self.seq,
            "replay": self.replay,
            "sent": self.sent_ms,
            "tags": self.tags,
            "ts": self.ts_ms,
            "val": self.values,
            "q": self.quality,
        }


def encode(batch: ReadingBatch) -> bytes:
    """Encode a batch as msgpack (the default on the wire)."""
    packed: bytes = msgpack.packb(batch.to_dict(), use_bin_type=True)
    return packed


def clock_payload(now_ms: int | None = None) -> bytes:
    """The platform's clock tick: ``{"t": UTC ms}``."""
    t = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    return json.dumps({"t": t}).encode()


def mark_replay(payload: bytes) -> bytes:
    """The same msgpack batch flagged as a replay (sent from the backlog after an outage)."""
    doc = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    doc["replay"] = True
    packed: bytes = msgpack.packb(doc, use_bin_type=True)
    return packed


def encode_json(batch: ReadingBatch) -> bytes:
    return json.dumps(batch.to_dict(), allow_nan=False, separators=(",", ":")).encode()


def _load(payload: bytes) -> Any:
    if not payload:
        raise WireError("empty payload")
    if payload[:1] in (b"{", b" ", b"\n", b"\t", b"\r"):
        try:
            return json.loads(payload)
        except (ValueError, RecursionError) as err:  # JSONDecodeError, bad UTF-8, huge integers, deep nesting
            raise WireError(f"malformed JSON: {type(err).__name__}: {str(err)[:200]}") from err
    try:
        return msgpack.unpackb(payload, raw=False, strict_map_key=True, max_array_len=MAX_BATCH_READINGS)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as err:
        raise WireError(f"malformed msgpack: {err}") from err


MAX_DOCUMENT_DEPTH = 32
MAX_DOCUMENT_NODES = 20_000
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last time a datetime holds


def load_json_document(payload: bytes, what: str, max_bytes: int) -> Any:
    """A JSON document (status and health are JSON, for any MQTT tool to read), checked whole."""
    if len(payload) > max_bytes:
        raise WireError(f"{what} payload of {len(payload)} bytes exceeds {max_bytes}")
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as err:  # bad JSON or UTF-8, huge integers, deep nesting
        raise WireError(f"malformed {what} payload: {type(err).__name__}: {str(err)[:200]}") from err
    check_document(doc, what)
    return doc


def check_document(doc: Any, what: str) -> None:
    """Raise WireError unless ``doc`` is plain data PostgreSQL can hold as JSON: maps with string
    keys, lists, text without NUL or lone surrogates, finite numbers (integers within 64 bits),
    booleans and null, at most ``MAX_DOCUMENT_DEPTH`` deep and ``MAX_DOCUMENT_NODES`` values."""
    stack: list[tuple[Any, int]] = [(doc, 0)]
    nodes = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_DOCUMENT_NODES:
            raise WireError(f"{what} holds more than {MAX_DOCUMENT_NODES} values")
        if depth > MAX_DOCUMENT_DEPTH:
            raise WireError(f"{what} nests deeper than {MAX_DOCUMENT_DEPTH}")
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise WireError(f"{what} has a key that is not text")
                _check_text(key, what)
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            _check_text(value, what)
        elif value is None or isinstance(value, bool):
            continue
        elif isinstance(value, int):
            if abs(value) > MAX_INT64:
                raise WireError(f"{what} holds an integer beyond 64 bits")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise WireError(f"{what} holds a number that is not finite")
        else:
            raise WireError(f"{what} holds a {type(value).__name__}, not a JSON value")


def _check_text(text: str, what: str) -> None:
    if "\x00" in text:
        raise WireError(f"{what} holds text with a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise WireError(f"{what} holds text that is not valid Unicode (a lone surrogate)") from err


def _column(doc: dict[str, Any], key: str, n: int | None) -> list[Any]:
    column = doc.get(key)
    if not isinstance(column, list):
        raise WireError(f"field {key!r} must be an array")
    if n is not None and len(column) != n:
        raise WireError(f"field {key!r} has {len(column)} items, expected {n}")
    return column


MAX_INT64 = 2**63 - 1


def _is_count(value: object) -> bool:
    """A non-negative integer that fits the database's bigint (not a bool, not a float)."""
    return type(value) is int and 0 <= value <= MAX_INT64


def _int_field(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or not _is_count(value):
        raise WireError(f"field {key!r} must be a non-negative 64-bit integer")
    return value


def _time_field(doc: dict[str, Any], key: str) -> int:
    """UTC milliseconds of a time a datetime can hold (years 1970 to 9999)."""
    value = _int_field(doc, key)
    if value > MAX_TIME_MS:
        raise WireError(f"field {key!r} is a time beyond the year 9999")
    return value


def decode(payload: bytes) -> ReadingBatch:
    """Decode and structurally validate a readings payload (msgpack or JSON).

    Raises WireError with a reason fit for the dead-letter store. Per-reading checks that
    need the ledger (unknown tags, non-finite values) are the consumer's job.
    """
    doc = _load(payload)
    if not isinstance(doc, dict):
        raise WireError("payload is not a map")
    version = doc.get("v")
    if type(version) is not int or version != VERSION:
        raise WireError(f"unknown wire version {repr(version)[:40]}")
    gateway = doc.get("gw")
    if not isinstance(gateway, str) or not gateway:
        raise WireError("field 'gw' must be a non-empty string")
    tags = _column(doc, "tags", None)
    n = len(tags)
    if n > MAX_BATCH_READINGS:
        raise WireError(f"batch of {n} readings exceeds {MAX_BATCH_READINGS}")
    ts = _column(doc, "ts", n)
    values = _column(doc, "val", n)
    quality = _column(doc, "q", n)
    if not all(isinstance(t, str) and 0 < len(t) <= MAX_TAG_LENGTH and t.isprintable() for t in tags):
        raise WireError(f"field 'tags' must hold printable strings of 1 to {MAX_TAG_LENGTH} characters")
    if not all(_is_count(t) and t <= MAX_TIME_MS for t in ts):
        raise WireError("field 'ts' must hold non-negative integer milliseconds up to the year 9999")
    if not all(type(q) is int and q in _KNOWN_QUALITIES for q in quality):
        raise WireError("field 'q' must hold known quality codes")
    clean_values: list[float | None] = []
    for value, q in zip(values, quality, strict=True):
        if value is None:
            clean_values.append(None)
        elif type(value) is float or (type(value) is int and abs(value) <= 2**53):
            # a quality that carries no value (BAD_COMM, ...) stores none, whatever number came with it
            clean_values.append(float(value) if q in VALUED_QUALITIES else None)
        else:
            raise WireError("field 'val' must hold numbers or null (integers up to 2^53)")
    replay = doc.get("replay", False)
    if not isinstance(replay, bool):
        raise WireError("field 'replay' must be a boolean")
    return ReadingBatch(
        gateway=gateway,
        seq=_int_field(doc, "seq"),
        sent_ms=_time_field(doc, "sent"),
        tags=list(tags),
        ts_ms=list(ts),
        values=clean_values,
        quality=list(quality),
        replay=replay,
    )


def is_finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def status_payload(online: bool, extra: dict[str, Any] | None = None) -> bytes:
    """The retained gateway status message (JSON, so any MQTT tool can read it)."""
    body: dict[str, Any] = {"v": VERSION, "status": "online" if online else "offline"}
    if extra:
        body.update(extra)
    return json.dumps(body, separators=(",", ":")).encode()


# -- edge events (video) and camera status ------------------------------------------------------
# An events payload (msgpack; JSON accepted, with the snapshot as base64) is one event change:
#   {"v": 1, "gw": "gw01", "seq": 3, "sent": ms, "id": "CAM101.INTRUSION.dike.1732262400000",
#    "cam": "CAM101", "kind": "INTRUSION", "phase": "new", "start": ms, "ts": ms, "zone": "dike",
#    "score": 0.4, "suspected": false, "box": [x, y, w, h], "detail": {...}, "snap": <JPEG>, "clip": name}
# A camera status payload (JSON, retained on .../cameras) maps each camera of the gateway's video
# process to online / offline / tampered; its MQTT last will is {"v": 1, "status": "offline"}.
EVENT_PHASES = ("new", "update", "end")
CAMERA_STATES = ("online", "offline", "tampered")
MAX_EVENT_BYTES = 4 * 1024 * 1024
MAX_DETAIL_CHARS = 16 * 1024
_CONDITION = re.compile(r"^[A-Z][A-Z_]{1,31}$")
_EVENT_ID = re.compile(r"^[\w.\-]{1,200}$")


def cameras_topic(enterprise: str, gateway: str) -> str:
    return f"{TOPIC_ROOT}/{enterprise}/{gateway}/cameras"


@dataclass(slots=True)
class EdgeEvent:
    """One change (new, update, end) of an edge event of a camera."""

    gateway: str
    seq: int
    sent_ms: int
    event_id: str
    camera: str
    kind: str  # the alarm condition: INTRUSION, RESTRICTED, TAMPER, FIRE, SMOKE, …
    phase: str
    start_ms: int
    ts_ms: int
    zone: str | None = None
    score: float = 0.0
    suspected: bool = False
    box: list[float] | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    snapshot: bytes | None = None  # JPEG
    clip: str | None = None  # the clip's file name on the gateway

    def to_dict(self) -> dict[str, Any]:
        return {"v": VERSION, "gw": self.gateway, "seq": self.seq, "sent": self.sent_ms, "id": self.event_id,
                "cam": self.camera, "kind": self.kind, "phase": self.phase, "start": self.start_ms,
                "ts": self.ts_ms, "zone": self.zone, "score": self.score, "suspected": self.suspected,
                "box": self.box, "detail": self.detail, "snap": self.snapshot, "clip": self.clip}  # fmt: skip


def encode_event(event: EdgeEvent) -> bytes:
    packed: bytes = msgpack.packb(event.to_dict(), use_bin_type=True)
    return packed


def _text(doc: dict[str, Any], key: str, pattern: re.Pattern[str], optional: bool = False) -> str | None:
    value = doc.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not pattern.match(value):
        raise WireError(f"field {key!r} must match {pattern.pattern}")
    return value


def _snapshot(value: object) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):  # JSON carries it as base64
        try:
            value = base64.b64decode(value, validate=True)
        except ValueError as err:
            raise WireError("field 'snap' is not base64") from err
    if not isinstance(value, bytes) or value[:2] != b"\xff\xd8":
        raise WireError("field 'snap' must be a JPEG image")
    return value


def decode_event(payload: bytes) -> EdgeEvent:
    """Decode and validate an events payload; raise WireError with the dead-letter reason."""
    if len(payload) > MAX_EVENT_BYTES:
        raise WireError(f"event of {len(payload)} bytes exceeds {MAX_EVENT_BYTES}")
    doc = _load(payload)
    if not isinstance(doc, dict):
        raise WireError("payload is not a map")
    if type(doc.get("v")) is not int or doc.get("v") != VERSION:
        raise WireError(f"unknown wire version {repr(doc.get('v'))[:40]}")
    phase = doc.get("phase")
    if phase not in EVENT_PHASES:
        raise WireError(f"field 'phase' must be one of {', '.join(EVENT_PHASES)}")
    score = doc.get("score", 0.0)
    if type(score) not in (int, float) or not math.isfinite(score):
        raise WireError("field 'score' must be a finite number")
    box = doc.get("box")
    if box is not None and not (
        isinstance(box, list) and len(box) == 4 and all(type(v) in (int, float) and 0 <= v <= 1 for v in box)
    ):
        raise WireError("field 'box' must be [x, y, w, h] relative to the frame")
    detail = doc.get("detail") or {}
    if not isinstance(detail, dict):
        raise WireError("field 'detail' must be a map")
    check_document(detail, "field 'detail'")  # bytes, NaN, NUL, keys not strings, too deep
    if len(json.dumps(detail)) > MAX_DETAIL_CHARS:
        raise WireError(f"field 'detail' exceeds {MAX_DETAIL_CHARS} characters as JSON")
    clip = doc.get("clip")
    if clip is not None and (not isinstance(clip, str) or not _EVENT_ID.match(clip)):
        raise WireError("field 'clip' must be a file name")
    if not isinstance(doc.get("suspected", False), bool):
        raise WireError("field 'suspected' must be a boolean")
    code = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
    return EdgeEvent(
        gateway=str(_text(doc, "gw", code)),
        seq=_int_field(doc, "seq"),
        sent_ms=_time_field(doc, "sent"),
        event_id=str(_text(doc, "id", _EVENT_ID)),
        camera=str(_text(doc, "cam", code)),
        kind=str(_text(doc, "kind", _CONDITION)),
        phase=str(phase),
        start_ms=_time_field(doc, "start"),
        ts_ms=_time_field(doc, "ts"),
        zone=_text(doc, "zone", code, optional=True),
        score=float(score),
        suspected=bool(doc.get("suspected", False)),
        box=[float(v) for v in box] if box is not None else None,
        detail=detail,
        snapshot=_snapshot(doc.get("snap")),
        clip=clip,
    )


def cameras_payload(gateway: str, cameras: dict[str, dict[str, Any]], sent_ms: int) -> bytes:
    """The retained camera status of a gateway's video process: {code: {"status": …, …}}."""
    body = {"v": VERSION, "gw": gateway, "sent": sent_ms, "cameras": cameras}
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def cameras_will(gateway: str) -> bytes:
    """The video process's last will: all its cameras are offline."""
    return json.dumps({"v": VERSION, "gw": gateway, "status": "offline"}, separators=(",", ":")).encode()


def decode_cameras(payload: bytes) -> dict[str, str] | None:
    """Camera code → status from a camera status payload; None for the last will (all offline)."""
    if len(payload) > MAX_EVENT_BYTES:
        raise WireError(f"camera status payload of {len(payload)} bytes exceeds {MAX_EVENT_BYTES}")
    doc = _load(payload)
    check_document(doc, "camera status")
    if not isinstance(doc, dict) or doc.get("v") != VERSION:
        raise WireError("camera status must be a map with v = 1")
    if doc.get("status") == "offline" and "cameras" not in doc:
        return None
    cameras = doc.get("cameras")
    if not isinstance(cameras, dict):
        raise WireError("field 'cameras' must be a map")
    result: dict[str, str] = {}
    for code, state in cameras.items():
        status = state.get("status") if isinstance(state, dict) else None
        if not isinstance(code, str) or status not in CAMERA_STATES:
            raise WireError(f"camera {str(code)[:64]!r}: status must be one of {', '.join(CAMERA_STATES)}")
        result[code] = str(status)
    return result
