"""Read queries of the regulatory loop — feedback, suppressions, tags out of service, hidden
dangers — each filtered by the principal's scope (feedback through its alarm, checked first)."""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row

from dashboard.db import AsyncConn
from dashboard.scope import Principal, scope_sql

Row = dict[str, Any]

FEEDBACK_COLUMNS = (
    "id, alarm_id, reason, measures, attachment_name, attachment_type,"
    " octet_length(attachment) AS attachment_size, filed_by, filed_at, review, reviewed_by, reviewed_at,"
    " review_comment"
)
SUPPRESSION_SELECT = (
    "SELECT s.id, s.hazard_source_id, hs.code AS hazard_source_code, hs.name AS hazard_source_name,"
    " s.equipment_id, eq.code AS equipment_code, s.reason_kind, s.reason, s.declared_by, s.declared_at,"
    " s.starts_at, s.ends_at, s.applied_at, s.ended_at, s.ended_by,"
    " (s.ended_at IS NULL AND s.starts_at <= now() AND now() < s.ends_at) AS in_force,"
    " (SELECT count(*) FROM alarms a WHERE a.suppression_id = s.id AND a.state = 'SUPPRESSED') AS suppressed,"
    " e.id AS enterprise_id, e.code AS enterprise_code, e.name AS enterprise_name, e.division"
    " FROM suppressions s JOIN hazard_sources hs ON hs.id = s.hazard_source_id"
    " LEFT JOIN equipment eq ON eq.id = s.equipment_id JOIN enterprises e ON e.id = s.enterprise_id"
)
SUPPRESSION_STATES = {
    "current": "s.ended_at IS NULL AND s.ends_at > now()",  # in force or still to come
    "all": "true",
}
DANGER_SELECT = (
    "SELECT d.id, d.alarm_id, d.hazard_source_id, hs.code AS hazard_source_code,"
    " hs.name AS hazard_source_name, d.description, d.deadline, d.status, d.opened_by, d.opened_at,"
    " d.rectification, d.rectified_by, d.rectified_at, d.closed_by, d.closed_at,"
    " (d.status <> 'closed' AND d.deadline < now()) AS overdue,"
    " e.id AS enterprise_id, e.code AS enterprise_code, e.name AS enterprise_name, e.division"
    " FROM hidden_dangers d LEFT JOIN hazard_sources hs ON hs.id = d.hazard_source_id"
    " JOIN enterprises e ON e.id = d.enterprise_id"
)
DANGER_STATES = {
    "unclosed": "d.status <> 'closed'",
    "open": "d.status = 'open'",
    "rectified": "d.status = 'rectified'",
    "closed": "d.status = 'closed'",
    "all": "true",
}


async def _all(conn: AsyncConn, sql: str, params: list[object]) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


async def _one(conn: AsyncConn, sql: str, params: list[object]) -> Row | None:
    rows = await _all(conn, sql, params)
    return rows[0] if rows else None


async def feedback_list(conn: AsyncConn, alarm_id: int) -> list[Row]:
    """The feedback filed on an alarm (already checked in scope), oldest first, without the bytes."""
    rows = await _all(
        conn, f"SELECT {FEEDBACK_COLUMNS} FROM alarm_feedback WHERE alarm_id = %s ORDER BY id", [alarm_id]
    )
    for row in rows:
        has = row["attachment_name"] is not None
        row["attachment_url"] = f"/api/v1/alarms/{alarm_id}/feedback/{row['id']}/attachment" if has else None
    return rows


async def attachment(conn: AsyncConn, alarm_id: int, feedback_id: int) -> Row | None:
    """Name, type and bytes of one feedback's attachment (its alarm already checked in scope)."""
    return await _one(
        conn,
        "SELECT attachment_name, attachment_type, attachment FROM alarm_feedback"
        " WHERE id = %s AND alarm_id = %s AND attachment IS NOT NULL",
        [feedback_id, alarm_id],
    )


async def hazard_source_in_scope(conn: AsyncConn, who: Principal, source_id: int) -> bool:
    scope, params = scope_sql(who)
    row = await _one(
        conn,
        "SELECT 1 AS found FROM hazard_sources hs JOIN enterprises e ON e.id = hs.enterprise_id"
        f" WHERE hs.id = %s AND {scope}",
        [source_id, *params],
    )
    return row is not None


async def equipment_id_of(conn: AsyncConn, source_id: int, code: str) -> int | None:
    row = await _one(
        conn, "SELECT id FROM equipment WHERE hazard_source_id = %s AND code = %s", [source_id, code]
    )
    return None if row is None else int(row["id"])


async def suppressions(conn: AsyncConn, who: Principal, state: str) -> list[Row]:
    scope, params = scope_sql(who)
    return await _all(
        conn,
        f"{SUPPRESSION_SELECT} WHERE {scope} AND {SUPPRESSION_STATES[state]}"
        " ORDER BY s.starts_at DESC, s.id DESC",
        params,
    )


async def suppression(conn: AsyncConn, who: Principal, suppression_id: int) -> Row | None:
    scope, params = scope_sql(who)
    return await _one(conn, f"{SUPPRESSION_SELECT} WHERE s.id = %s AND {scope}", [suppression_id, *params])


async def tag_service(conn: AsyncConn, who: Principal, tag_id: int) -> Row | None:
    """A tag's service status (reason, person, time) if the tag is in scope."""
    scope, params = scope_sql(who)
    return await _one(
        conn,
        "SELECT t.id, t.code, t.name, t.in_service, t.oos_reason, t.oos_by, t.oos_at,"
        " e.id AS enterprise_id, e.code AS enterprise_code"
        f" FROM tags t JOIN enterprises e ON e.id = t.enterprise_id WHERE t.id = %s AND {scope}",
        [tag_id, *params],
    )


async def hidden_dangers(
    conn: AsyncConn, who: Principal, state: str, limit: int, offset: int
) -> tuple[list[Row], int]:
    """Hidden dangers in scope, the nearest deadline first, and how many there are in all."""
    scope, params = scope_sql(who)
    where = f" WHERE {scope} AND {DANGER_STATES[state]}"
    rows = await _all(
        conn, f"{DANGER_SELECT}{where} ORDER BY d.deadline, d.id LIMIT %s OFFSET %s", [*params, limit, offset]
    )
    total = await _one(
        conn,
        "SELECT count(*) AS n FROM hidden_dangers d JOIN enterprises e ON e.id = d.enterprise_id" + where,
        params,
    )
    return rows, int(total["n"]) if total else 0


async def hidden_danger(conn: AsyncConn, who: Principal, danger_id: int) -> Row | None:
    scope, params = scope_sql(who)
    return await _one(conn, f"{DANGER_SELECT} WHERE d.id = %s AND {scope}", [danger_id, *params])


async def escalation_timer(conn: AsyncConn, alarm_id: int) -> Row | None:
    """The alarm's escalation timer (call only for an alarm already checked in scope)."""
    return await _one(
        conn,
        "SELECT stage, priority, since, steps, next_at FROM alarm_escalations WHERE alarm_id = %s",
        [alarm_id],
    )
