"""JSON API of the video side: an event's snapshot (JPEG) and the cameras with their online rate.

Both are scope-filtered like the alarms: a snapshot outside the user's scope is a 404, as is
one removed by retention.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web
from psycopg.rows import dict_row

from dashboard.context import POOL
from dashboard.responses import int_param, json_response, not_found, require_principal
from dashboard.scope import scope_sql
from ingest.video import CAMERA_ONLINE_CTE

MAX_HOURS = 24 * 31

_CAMERAS_SQL = (
    CAMERA_ONLINE_CTE
    + """
SELECT c.id, c.code, c.name, c.status, c.status_at, e.code AS enterprise_code,
       hs.code AS hazard_source_code, coalesce(o.seconds, 0) / %(span)s AS online_rate
FROM cameras c JOIN enterprises e ON e.id = c.enterprise_id
JOIN hazard_sources hs ON hs.id = c.hazard_source_id
LEFT JOIN online o ON o.camera_id = c.id
WHERE c.in_ledger AND {scope} ORDER BY e.code, c.code
"""
)


async def snapshot(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/snapshots/{id} — the JPEG; 404 when missing, expired or out of scope."""
    who = require_principal(request)
    snapshot_id = int_param(request.match_info["snapshot_id"], "snapshot id", high=2**63 - 1)
    scope, params = scope_sql(who)
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(
            "SELECT s.image, s.content_type FROM snapshots s JOIN enterprises e ON e.id = s.enterprise_id"
            f" WHERE s.id = %s AND {scope}",
            [snapshot_id, *params],
        )
        row = await cur.fetchone()
    if row is None:
        not_found("snapshot")
    image, content_type = row
    if not isinstance(image, bytes | memoryview):
        not_found("snapshot")
    return web.Response(
        body=bytes(image),
        content_type=str(content_type),
        headers={"Cache-Control": "private, max-age=86400"},
    )


async def cameras(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/cameras?hours=24 — cameras in scope: status and online rate over the span."""
    who = require_principal(request)
    hours = int_param(request.query.get("hours", "24"), "hours", low=1, high=MAX_HOURS)
    now = datetime.now(UTC)
    scope, params = scope_sql(who)
    named: dict[str, object] = {"since": now - timedelta(hours=hours), "until": now, "span": hours * 3600.0}
    named.update({f"scope{i}": value for i, value in enumerate(params)})
    for i in range(len(params)):  # scope_sql's positional %s, bound by name here
        scope = scope.replace("%s", f"%(scope{i})s", 1)
    async with request.app[POOL].connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_CAMERAS_SQL.format(scope=scope).encode(), named)
        rows = await cur.fetchall()
    for row in rows:
        row["online_rate"] = round(float(row["online_rate"]), 4)
    return json_response({"cameras": rows, "hours": hours})
