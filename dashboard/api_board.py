"""JSON API: the board's flood state (ISA-18.2: > 10 alarms in 10 min, ends below 5) and the
open alarms grouped by hazard source, within the principal's scope.

An alarm here is an annunciation, as the KPIs count it: a journal row putting an alarm into
UNACK (raised, re-alarmed, escalated, or leaving a shelf or suppression while active).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from psycopg.rows import dict_row

from dashboard.context import POOL
from dashboard.db import AsyncConn
from dashboard.responses import json_response, require_principal
from dashboard.scope import Principal, scope_sql

WINDOW = timedelta(minutes=10)
LOOKBACK = timedelta(hours=3)
FLOOD_ABOVE = 10
FLOOD_BELOW = 5
MAX_EVENTS = 50_000
MAX_GROUPS = 200
ANNUNCIATING = ("raise", "reactivate", "escalate", "unshelve", "unsuppress", "return_to_service")


def flood_state(times: list[datetime], now: datetime) -> tuple[bool, datetime | None, int]:
    """Whether the trailing 10-minute count is in flood at ``now`` (started above 10, not yet
    below 5), since when, and the count now. ``times`` ascending, none after ``now``."""
    events: list[tuple[datetime, int]] = [(t, 1) for t in times]
    events += [(t + WINDOW, -1) for t in times if t + WINDOW <= now]
    events.sort(key=lambda e: (e[0], e[1]))  # at one instant a leaving alarm goes first
    count, since = 0, None
    for at, step in events:
        count += step
        if since is None and count > FLOOD_ABOVE:
            since = at
        elif since is not None and count < FLOOD_BELOW:
            since = None
    return since is not None, since, count


async def _annunciations(conn: AsyncConn, who: Principal, since: datetime, now: datetime) -> list[datetime]:
    scope, params = scope_sql(who)
    cur = await conn.execute(
        "SELECT j.at FROM alarm_journal j JOIN alarms a ON a.id = j.alarm_id"
        " JOIN enterprises e ON e.id = a.enterprise_id"
        f" WHERE j.at > %s AND j.at <= %s AND j.to_state = 'UNACK' AND j.action = ANY(%s) AND {scope}"
        " ORDER BY j.at DESC LIMIT %s",
        [since, now, list(ANNUNCIATING), *params, MAX_EVENTS],
    )
    return sorted(row[0] for row in await cur.fetchall() if isinstance(row[0], datetime))


async def _groups(conn: AsyncConn, who: Principal) -> list[dict[str, Any]]:
    scope, params = scope_sql(who)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT a.hazard_source_id, hs.code AS hazard_source_code, hs.name AS hazard_source_name,"
            " e.id AS enterprise_id, e.name AS enterprise_name, count(*) AS alarms,"
            " count(*) FILTER (WHERE a.priority = 1) AS p1, min(a.priority) AS top_priority,"
            " (array_agg(a.id ORDER BY a.raised_at, a.id))[1] AS first_alarm_id,"
            " min(a.raised_at) AS first_raised_at"
            " FROM alarms a LEFT JOIN hazard_sources hs ON hs.id = a.hazard_source_id"
            " JOIN enterprises e ON e.id = a.enterprise_id"
            f" WHERE a.state IN ('UNACK', 'ACKED', 'RTN_UNACK') AND {scope}"
            " GROUP BY a.hazard_source_id, hs.code, hs.name, e.id, e.name"
            " ORDER BY min(a.priority), min(a.raised_at) LIMIT %s",
            [*params, MAX_GROUPS],
        )
        return await cur.fetchall()


async def board_flood(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/board/flood — {flood, since, last_10min, groups: per hazard source the open
    alarms, 一级 among them and the first alarm (earliest raised)}; the gravest groups first."""
    who = require_principal(request)
    now = datetime.now(UTC)
    async with request.app[POOL].connection() as conn:
        times = await _annunciations(conn, who, now - LOOKBACK, now)
        groups = await _groups(conn, who)
    flood, since, count = flood_state(times, now)
    return json_response(
        {
            "flood": flood,
            "since": since,
            "last_10min": count,
            "above": FLOOD_ABOVE,
            "below": FLOOD_BELOW,
            "groups": groups,
        }
    )
