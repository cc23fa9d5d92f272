"""Edge video on the platform: events become alarms of their camera, snapshots are stored.

An event's kind is the alarm condition (INTRUSION, RESTRICTED, TAMPER, FIRE, SMOKE, …) of the
camera, tied to the camera's hazard source and equipment, graded and handled like any alarm.
The condition is active while any event of that kind of the camera is open, so two zones'
intrusions make one alarm that clears when both have ended. Camera status (retained, from the
gateway's video process) is kept with its history; a camera that goes offline raises
CAMERA_OFFLINE, and while a camera is tampered or offline its motion alarms (INTRUSION,
RESTRICTED) are suppressed by design: the tamper or the outage is the alarm.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from alarms.policy import DEFAULT, Policy
from alarms.store import apply_transitions, suppress_by_design
from hazardwatch import wire
from hazardwatch.clock import utc_from_ms
from hazardwatch.errors import WireError
from rules.types import Condition, Subject, Transition

logger = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[object, ...]]
MOTION_CONDITIONS = ("INTRUSION", "RESTRICTED")
BLIND = frozenset({"tampered", "offline"})
# conditions the platform raises itself: an edge event may not claim them
RESERVED_CONDITIONS = frozenset({c.value for c in Condition} | {"CAMERA_OFFLINE"})
DEFAULT_SNAPSHOT_DAYS = 180
PRUNE_BATCH = 200


def snapshot_retention_days() -> int:
    """Days snapshots are kept: ``HW_RETAIN_SNAPSHOT_DAYS`` (at least 30), default 180."""
    try:
        return max(30, int(os.environ.get("HW_RETAIN_SNAPSHOT_DAYS", DEFAULT_SNAPSHOT_DAYS)))
    except ValueError:
        return DEFAULT_SNAPSHOT_DAYS


@dataclass(frozen=True, slots=True)
class _Camera:
    id: int
    code: str
    status: str
    enterprise_id: int


def _camera(conn: Conn, enterprise: str, gateway: str, code: str) -> _Camera:
    row = conn.execute(
        "SELECT c.id, c.status, c.enterprise_id, g.code FROM cameras c"
        " JOIN enterprises e ON e.id = c.enterprise_id JOIN gateways g ON g.id = c.gateway_id"
        " WHERE e.code = %s AND c.code = %s AND c.in_ledger",
        (enterprise, code),
    ).fetchone()
    if row is None:
        raise WireError(f"unknown camera {enterprise}/{code}")
    if row[3] != gateway:
        raise WireError(f"camera {enterprise}/{code} is read by gateway {row[3]}, not {gateway}")
    return _Camera(int(str(row[0])), code, str(row[1]), int(str(row[2])))


def record_event(conn: Conn, address: wire.TopicAddress, payload: bytes, policy: Policy = DEFAULT, *,
                 newest_ms: int | None = None) -> int:  # fmt: skip
    """Store one event change and apply its alarm transition; returns the journal rows written.

    Everything is validated before anything is written, so a WireError leaves no trace but
    the dead letter. An event stamped after ``newest_ms`` (ingest's clock plus its tolerance) is
    refused: its alarm would be raised, or cleared, at a time that has not come.
    """
    event = wire.decode_event(payload)
    if newest_ms is not None and max(event.ts_ms, event.start_ms) > newest_ms:
        raise WireError("event time ahead of the platform clock (gateway clock skew)")
    if event.kind in RESERVED_CONDITIONS:
        raise WireError(f"{event.kind} is not an edge event's kind")
    if event.gateway != address.gateway:
        raise WireError(
            f"gateway {event.gateway!r} in the payload differs from the topic's {address.gateway!r}"
        )
    camera = _camera(conn, address.enterprise, address.gateway, event.camera)
    snapshot_id = _store_snapshot(conn, camera, event) if event.snapshot is not None else None
    at = utc_from_ms(event.ts_ms)
    row = conn.execute(
        "INSERT INTO video_events (camera_id, event_id, kind, zone, started_at, last_at, ended_at, score,"
        " suspected, snapshot_id, clip, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (camera_id, event_id) DO UPDATE"
        " SET last_at = greatest(video_events.last_at, EXCLUDED.last_at),"
        " ended_at = coalesce(video_events.ended_at, EXCLUDED.ended_at),"
        " score = greatest(video_events.score, EXCLUDED.score),"
        " snapshot_id = coalesce(video_events.snapshot_id, EXCLUDED.snapshot_id),"
        " clip = coalesce(EXCLUDED.clip, video_events.clip), detail = video_events.detail || EXCLUDED.detail"
        " RETURNING snapshot_id",
        (camera.id, event.event_id, event.kind, event.zone, utc_from_ms(event.start_ms), at,
         at if event.phase == "end" else None, event.score, event.suspected, snapshot_id, event.clip,
         Jsonb(event.detail)),
    ).fetchone()  # fmt: skip
    snapshot_id = None if row is None or row[0] is None else int(str(row[0]))
    still_open = conn.execute(
        "SELECT count(*) FROM video_events WHERE camera_id = %s AND kind = %s AND ended_at IS NULL",
        (camera.id, event.kind),
    ).fetchone()
    level = 1 if still_open is not None and int(str(still_open[0])) > 0 else 0
    detail: dict[str, object] = {"camera": camera.code, "event_id": event.event_id, "phase": event.phase,
                                 "score": event.score, "suspected": event.suspected}  # fmt: skip
    for key, value in (
        ("zone", event.zone),
        ("box", event.box),
        ("snapshot_id", snapshot_id),
        ("clip", event.clip),
    ):
        if value is not None:
            detail[key] = value
    if event.detail:
        detail["edge"] = event.detail
    transition = Transition(camera.id, event.kind, level, event.ts_ms, None, None, Subject.CAMERA, detail)
    journaled = apply_transitions(conn, [transition], policy)
    if level and event.kind in MOTION_CONDITIONS and camera.status in BLIND:
        reason = f"camera {camera.status}: the camera's own alarm stands for it"
        journaled += suppress_by_design(conn, Subject.CAMERA, camera.id, [event.kind], True, reason, policy)
    return journaled


def _store_snapshot(conn: Conn, camera: _Camera, event: wire.EdgeEvent) -> int:
    taken = utc_from_ms(event.ts_ms)
    row = conn.execute(
        "INSERT INTO snapshots (camera_id, enterprise_id, event_id, taken_at, image)"
        " VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (camera_id, event_id, taken_at) DO NOTHING RETURNING id",
        (camera.id, camera.enterprise_id, event.event_id, taken, event.snapshot),
    ).fetchone()
    if row is None:  # a redelivery: the snapshot is stored already
        row = conn.execute(
            "SELECT id FROM snapshots WHERE camera_id = %s AND event_id = %s AND taken_at = %s",
            (camera.id, event.event_id, taken),
        ).fetchone()
        assert row is not None  # noqa: S101 - the conflict says it exists
        return int(str(row[0]))
    conn.execute(
        "DELETE FROM snapshots WHERE id IN (SELECT id FROM snapshots"
        " WHERE taken_at < now() - %s * interval '1 day' ORDER BY taken_at LIMIT %s)",
        (snapshot_retention_days(), PRUNE_BATCH),
    )
    return int(str(row[0]))


def record_cameras(conn: Conn, address: wire.TopicAddress, payload: bytes, now_ms: int,
                   policy: Policy = DEFAULT) -> tuple[int, list[str]]:  # fmt: skip
    """A gateway's camera status map (or its video process's last will: all offline): the journal
    rows written, and the codes it names that are no camera of this gateway in the ledger (their
    status is not kept; the caller dead-letters it, so the evidence stays)."""
    statuses = wire.decode_cameras(payload)
    rows = conn.execute(
        "SELECT c.id, c.code, c.status FROM cameras c JOIN gateways g ON g.id = c.gateway_id"
        " JOIN enterprises e ON e.id = c.enterprise_id WHERE e.code = %s AND g.code = %s AND c.in_ledger",
        (address.enterprise, address.gateway),
    ).fetchall()
    if not rows and conn.execute(
        "SELECT 1 FROM gateways g JOIN enterprises e ON e.id = g.enterprise_id"
        " WHERE e.code = %s AND g.code = %s",
        (address.enterprise, address.gateway),
    ).fetchone() is None:  # fmt: skip
        raise WireError(f"camera status of unknown gateway {address.enterprise}/{address.gateway}")
    journaled = 0
    for camera_id, code, old in ((int(str(r[0])), str(r[1]), str(r[2])) for r in rows):
        new = "offline" if statuses is None else statuses.get(code)
        if new is None or new == old:
            continue
        journaled += _camera_status(conn, camera_id, code, old, new, now_ms, policy)
    known = {str(r[1]) for r in rows}
    return journaled, sorted(set(statuses or ()) - known)


def _camera_status(
    conn: Conn, camera_id: int, code: str, old: str, new: str, now_ms: int, policy: Policy
) -> int:
    at = utc_from_ms(now_ms)
    conn.execute("UPDATE cameras SET status = %s, status_at = %s WHERE id = %s", (new, at, camera_id))
    conn.execute(
        "INSERT INTO camera_status_log (camera_id, at, status) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
        (camera_id, at, new),
    )
    logger.info("camera %s: %s → %s", code, old, new)
    detail: dict[str, object] = {"camera": code, "status": new}
    offline = Transition(
        camera_id, "CAMERA_OFFLINE", int(new == "offline"), now_ms, None, None, Subject.CAMERA, detail
    )
    journaled = apply_transitions(conn, [offline], policy)
    if (new in BLIND) != (old in BLIND):
        reason = f"camera {new}" + (
            ": the camera's own alarm stands for its motion alarms" if new in BLIND else ""
        )
        journaled += suppress_by_design(
            conn, Subject.CAMERA, camera_id, MOTION_CONDITIONS, new in BLIND, reason, policy
        )
    return journaled


# Seconds each camera sent pictures (online or tampered) between %(since)s and %(until)s, from its
# status changes; time before a camera's first report counts as offline. The dashboard shares it.
CAMERA_ONLINE_CTE = """
WITH spans AS (
    SELECT l.camera_id, l.status, greatest(l.at, %(since)s) AS a,
           coalesce(lead(l.at) OVER (PARTITION BY l.camera_id ORDER BY l.at), %(until)s) AS b
    FROM camera_status_log l WHERE l.at < %(until)s
), online AS (
    SELECT camera_id, sum(extract(epoch FROM least(b, %(until)s) - a)) AS seconds FROM spans
    WHERE least(b, %(until)s) > a AND status IN ('online', 'tampered') GROUP BY camera_id
)
"""


@dataclass(frozen=True, slots=True)
class CameraRate:
    key: str  # enterprise/camera
    status: str
    online_s: float
    span_s: float

    @property
    def rate(self) -> float:
        return self.online_s / self.span_s if self.span_s > 0 else 0.0


def camera_online_rates(conn: Conn, since: datetime, until: datetime) -> list[CameraRate]:
    """Each camera of the ledger: the share of the span it sent pictures (在线率)."""
    rows = conn.execute(
        (CAMERA_ONLINE_CTE + "SELECT e.code || '/' || c.code, c.status, coalesce(o.seconds, 0) FROM cameras c"
         " JOIN enterprises e ON e.id = c.enterprise_id LEFT JOIN online o ON o.camera_id = c.id"
         " WHERE c.in_ledger ORDER BY 1").encode(),
        {"since": since, "until": until},
    ).fetchall()  # fmt: skip
    span = (until - since).total_seconds()
    return [CameraRate(str(r[0]), str(r[1]), float(str(r[2])), span) for r in rows]
