"""Read queries of the ledger browser and the enterprise view, every one filtered by scope.

An enterprise's figures: its hazard sources with their GB 18218 grade and live risk colour
(the last one ``alarms.risk`` recorded, else the inherent colour of the grade), today's safety
commitment, open alarms, overdue feedback and the online rate of the last hour; its equipment,
tags with limits and latest values, gateways and (when the ledger has them) cameras.

Risk levels, safety commitments and cameras live in tables of later migrations; a database
without one of them answers without those figures rather than failing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.rows import dict_row

from alarms.commitments import local_day
from alarms.policy import Policy
from dashboard.db import AsyncConn
from dashboard.scope import Principal, scope_sql
from hazardwatch.ledger.grading import grade_name, grade_name_sql

Row = dict[str, Any]

ONLINE_WINDOW = timedelta(hours=1)
OPEN = "a.state IN ('UNACK', 'ACKED', 'RTN_UNACK')"
# feedback owed past the escalation timer of the alarm's priority, as alarms.risk counts it
OVERDUE = (
    "a.feedback_required AND a.closed_at IS NULL AND a.disposition IN ('due', 'returned')"
    " AND a.raised_at <= %(now)s - interval '1 minute'"
    " * CASE a.priority WHEN 1 THEN %(due_1)s::float8 WHEN 2 THEN %(due_2)s::float8"
    " ELSE %(due_3)s::float8 END"
)
# the camera columns a page may show (never a stream address: it may hold credentials)
CAMERA_FIELDS = (
    "id",
    "code",
    "name",
    "equipment_id",
    "hazard_source_id",
    "status",
    "status_at",
    "in_service",
)


async def _all(conn: AsyncConn, sql: str, params: dict[str, object]) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


def _named_scope(who: Principal) -> tuple[str, dict[str, object]]:
    """``scope_sql`` with a named parameter, so it composes with the named ones below."""
    clause, params = scope_sql(who)
    if not params:
        return clause, {}
    return clause.replace("%s", "%(scope)s"), {"scope": params[0]}


def _window(now: datetime) -> tuple[datetime, datetime]:
    """The last whole hour of minutes before ``now``: what the minute rollups hold completely."""
    until = now.astimezone(UTC).replace(second=0, microsecond=0)
    return until - ONLINE_WINDOW, until


def _params(now: datetime, policy: Policy, who: Principal) -> tuple[str, dict[str, object]]:
    scope, params = _named_scope(who)
    since, until = _window(now)
    params.update(
        {
            "now": now,
            **{f"due_{p}": policy.escalation.timers_for(p).feedback_minutes for p in (1, 2, 3)},
            "since": since,
            "until": until,
            "seconds": (until - since).total_seconds(),
            "day": local_day(now, policy),
        }
    )
    return scope, params


def inherent_level(policy: Policy, grade: int | None) -> int:
    """The risk colour (1 红 … 4 蓝) of a GB 18218 grade before any live factor (no grade: none)."""
    points = 0.0 if grade is None else policy.risk.inherent.get(grade, 0.0)  # type: ignore[call-overload]
    return policy.risk.level(points)


OPTIONAL_TABLES = ("risk_levels", "safety_commitments", "cameras")
_NO_RISK = " NULL::smallint AS risk_level, NULL::float8 AS risk_score, NULL::timestamptz AS risk_since,"
_RISK = " r.level AS risk_level, r.score AS risk_score, r.since AS risk_since,"


async def optional_tables(conn: AsyncConn) -> frozenset[str]:
    rows = await _all(
        conn,
        "SELECT name FROM unnest(%(names)s::text[]) AS name WHERE to_regclass(name) IS NOT NULL",
        {"names": list(OPTIONAL_TABLES)},
    )
    return frozenset(str(r["name"]) for r in rows)


def _risk_join(tables: frozenset[str], kind: str, alias: str) -> tuple[str, str]:
    """The risk columns and their join for subjects of ``kind`` under ``alias``."""
    if "risk_levels" not in tables:
        return _NO_RISK, ""
    return _RISK, f" LEFT JOIN risk_levels r ON r.subject_kind = '{kind}' AND r.subject_id = {alias}.id"


def _enterprise_figures(tables: frozenset[str]) -> str:
    risk, join = _risk_join(tables, "enterprise", "e")
    return (
        _ENTERPRISE_COUNTS
        + risk
        + " o.expected AS online_expected, o.received AS online_received FROM enterprises e"
        + join
        + _ONLINE
    )


_ENTERPRISE_COUNTS = (
    " (SELECT count(*) FROM hazard_sources hs WHERE hs.enterprise_id = e.id) AS hazard_sources,"
    " (SELECT min(hs.grade) FROM hazard_sources hs WHERE hs.enterprise_id = e.id) AS grade,"
    " (SELECT count(*) FROM hazard_sources hs WHERE hs.enterprise_id = e.id AND hs.grade IS NOT NULL)"
    " AS major_hazard_sources,"
    f" (SELECT count(*) FROM alarms a WHERE a.enterprise_id = e.id AND {OPEN}) AS open_alarms,"
    f" (SELECT count(*) FROM alarms a WHERE a.enterprise_id = e.id AND {OPEN} AND a.priority = 1)"
    " AS open_p1,"
    f" (SELECT count(*) FROM alarms a WHERE a.enterprise_id = e.id AND {OVERDUE}) AS overdue_feedback,"
)
# as ingest.storage.online_rates: each tag from when it could be read (in the ledger, and read or
# its gateway heard from), at most a minute's worth of polls in each minute
_ONLINE = (
    " LEFT JOIN LATERAL (SELECT sum(x.expected)::bigint AS expected,"
    "   sum(least(coalesce(rc.n, 0), x.expected))::bigint AS received"
    "   FROM tags t JOIN gateways g ON g.id = t.gateway_id"
    "   CROSS JOIN LATERAL (SELECT floor(greatest(extract(epoch FROM %(until)s - greatest(%(since)s,"
    "     t.created_at, coalesce(t.first_read_at, g.first_seen_at))), 0) / t.poll_interval_s) AS expected) x"
    "   LEFT JOIN LATERAL (SELECT sum(least(m.count, ceil(60.0 / t.poll_interval_s))) AS n FROM readings_1m m"
    "     WHERE m.tag_id = t.id AND m.bucket >= %(since)s AND m.bucket < %(until)s) rc ON true"
    "   WHERE t.enterprise_id = e.id AND t.in_service"
    "     AND coalesce(t.first_read_at, g.first_seen_at) IS NOT NULL) o ON true"
)
_ENTERPRISE_COLUMNS = "e.id, e.code, e.name, e.credit_code, e.division, e.address, e.lon, e.lat,"


def _finish_enterprise(row: Row, policy: Policy) -> Row:
    expected, received = row.pop("online_expected"), row.pop("online_received")
    row["online_rate"] = None if not expected else round(int(received or 0) / int(expected), 4)
    row["risk_inherent"] = inherent_level(policy, int(row["grade"])) if row["grade"] is not None else None
    # the gravest grade of its sources; with sources but none of them major: 非重大危险源
    row["grade_name"] = grade_name(row["grade"]) if row["hazard_sources"] else None
    row["risk_computed"] = row["risk_level"] is not None
    if row["risk_level"] is None:
        row["risk_level"] = row["risk_inherent"]
    return row


async def enterprises(conn: AsyncConn, who: Principal, now: datetime, policy: Policy) -> list[Row]:
    """Every enterprise in scope with its figures, by division then code."""
    scope, params = _params(now, policy, who)
    figures = _enterprise_figures(await optional_tables(conn))
    rows = await _all(
        conn,
        f"SELECT {_ENTERPRISE_COLUMNS}{figures} WHERE {scope} ORDER BY e.division, e.code",
        params,
    )
    return [_finish_enterprise(r, policy) for r in rows]


async def enterprise(
    conn: AsyncConn, who: Principal, enterprise_id: int, now: datetime, policy: Policy
) -> Row | None:
    """One enterprise in scope with its hazard sources, equipment, tags, gateways and cameras."""
    scope, params = _params(now, policy, who)
    params["id"] = enterprise_id
    tables = await optional_tables(conn)
    figures = _enterprise_figures(tables)
    rows = await _all(conn, f"SELECT {_ENTERPRISE_COLUMNS}{figures} WHERE e.id = %(id)s AND {scope}", params)
    if not rows:
        return None
    row = _finish_enterprise(rows[0], policy)
    row["hazard_sources"] = await _hazard_sources(conn, params, policy, tables)
    row["equipment"] = await _all(
        conn,
        "SELECT eq.id, eq.code, eq.name, eq.kind, eq.hazard_source_id FROM equipment eq"
        " JOIN hazard_sources hs ON hs.id = eq.hazard_source_id WHERE hs.enterprise_id = %(id)s"
        " ORDER BY hs.code, eq.code",
        params,
    )
    row["tags"] = await _tags(conn, params)
    row["gateways"] = await _all(
        conn,
        "SELECT g.id, g.code, g.name, g.status, g.status_at, g.last_seen_at FROM gateways g"
        " WHERE g.enterprise_id = %(id)s ORDER BY g.code",
        params,
    )
    row["cameras"] = await _cameras(conn, enterprise_id) if "cameras" in tables else []
    return row


async def _hazard_sources(
    conn: AsyncConn, params: dict[str, object], policy: Policy, tables: frozenset[str]
) -> list[Row]:
    risk, join = _risk_join(tables, "hazard_source", "hs")
    commitment = (
        " (SELECT to_jsonb(c) - 'enterprise_id' - 'hazard_source_id' FROM safety_commitments c"
        "   WHERE c.hazard_source_id = hs.id AND c.day = %(day)s ORDER BY c.revision DESC LIMIT 1)"
        if "safety_commitments" in tables
        else " NULL::jsonb"
    )
    rows = await _all(
        conn,
        f"SELECT hs.id, hs.code, hs.name, hs.grade, {grade_name_sql('hs')} AS grade_name,"
        " hs.grade IS NOT NULL AS major, hs.grade_terms, hs.s, hs.r, hs.people_within_500m, hs.principal,"
        f" hs.technical, hs.operational,{risk}"
        f" (SELECT count(*) FROM alarms a WHERE a.hazard_source_id = hs.id AND {OPEN}) AS open_alarms,"
        f" (SELECT count(*) FROM alarms a WHERE a.hazard_source_id = hs.id AND {OPEN} AND a.priority = 1)"
        " AS open_p1,"
        f" (SELECT count(*) FROM alarms a WHERE a.hazard_source_id = hs.id AND {OVERDUE})"
        f" AS overdue_feedback,{commitment} AS commitment FROM hazard_sources hs{join}"
        " WHERE hs.enterprise_id = %(id)s ORDER BY hs.code",
        params,
    )
    for row in rows:
        row["risk_inherent"] = inherent_level(policy, None if row["grade"] is None else int(row["grade"]))
        row["risk_computed"] = row["risk_level"] is not None
        if row["risk_level"] is None:
            row["risk_level"] = row["risk_inherent"]
    return rows


async def _tags(conn: AsyncConn, params: dict[str, object]) -> list[Row]:
    rows = await _all(
        conn,
        "SELECT t.id, t.code, t.name, t.kind, t.unit, t.range_low, t.range_high, t.ll, t.l, t.h, t.hh,"
        " t.deadband, t.poll_interval_s, t.in_service, t.oos_reason, t.oos_by, t.oos_at,"
        " t.hazard_source_id, t.equipment_id, g.code AS gateway_code,"
        " rl.ts AS latest_at, rl.value AS latest_value, rl.quality AS latest_quality,"
        f" (SELECT count(*) FROM alarms a WHERE a.tag_id = t.id AND {OPEN}) AS open_alarms"
        " FROM tags t JOIN gateways g ON g.id = t.gateway_id LEFT JOIN readings_latest rl ON rl.tag_id = t.id"
        " WHERE t.enterprise_id = %(id)s ORDER BY t.code",
        params,
    )
    return rows


async def _cameras(conn: AsyncConn, enterprise_id: int) -> list[Row]:
    """The enterprise's cameras (call only when the cameras table exists)."""
    rows = await _all(
        conn,
        "SELECT to_jsonb(c) AS camera FROM cameras c WHERE c.enterprise_id = %(id)s ORDER BY c.id",
        {"id": enterprise_id},
    )
    return [{k: r["camera"].get(k) for k in CAMERA_FIELDS if k in r["camera"]} for r in rows]
