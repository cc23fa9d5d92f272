"""Read queries of the dashboard, every one filtered by the principal's scope."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.rows import dict_row

from alarms.subjects import subject_sql
from dashboard.db import AsyncConn
from dashboard.scope import Principal, scope_sql
from hazardwatch.ledger.grading import grade_name_sql
from ingest.storage import resolution_for, trend_query

Row = dict[str, Any]

_MASK_COMMENT = (
    "(SELECT nullif(j.comment, '') FROM alarm_journal j WHERE j.alarm_id = a.id AND j.to_state = a.state"
    " ORDER BY j.id DESC LIMIT 1)"
)
ALARM_COLUMNS = (
    "a.id, a.tag_id, a.subject_kind, a.subject_id, a.condition, a.kind, a.level, a.peak_level, a.priority,"
    " a.state,"
    " a.active, a.raised_at, a.value, a.limit_value, a.cleared_at, a.acked_at, a.acked_by, a.closed_at,"
    " a.updated_at, a.detail, a.shelved_until, a.shelved_by, a.shelve_reason, a.suppression_id,"
    " a.feedback_required, a.disposition,"
    # why a masked alarm is off the board: the shelve reason, the declared suppression's reason,
    # the tag's out-of-service reason, else the comment of the change that masked it
    " CASE a.state WHEN 'SHELVED' THEN a.shelve_reason"
    "   WHEN 'SUPPRESSED' THEN coalesce((SELECT s.reason FROM suppressions s WHERE s.id = a.suppression_id),"
    f"     {_MASK_COMMENT})"
    f"   WHEN 'OUT_OF_SERVICE' THEN coalesce(nullif(t.oos_reason, ''), {_MASK_COMMENT}) END AS mask_reason,"
    " t.code AS tag_code, t.name AS tag_name, t.kind AS tag_kind, t.unit, t.range_low, t.range_high,"
    " t.ll, t.l, t.h, t.hh, eq.code AS equipment_code, eq.name AS equipment_name,"
    " hs.id AS hazard_source_id, hs.code AS hazard_source_code, hs.name AS hazard_source_name,"
    f" hs.grade AS hazard_grade, {grade_name_sql('hs')} AS hazard_grade_name,"
    " e.id AS enterprise_id, e.code AS enterprise_code,"
    " e.name AS enterprise_name, e.division,"
    # what the alarm is about, whatever its kind: a tag, a camera, a voting group, a hazard source
    # or a gateway (code and name)
    f" {subject_sql('code')} AS subject_code, {subject_sql('name')} AS subject_name"
)
# an alarm's subject is a tag, a camera, a hazard source or a gateway: the ledger joins are outer
ALARM_FROM = (
    " FROM alarms a LEFT JOIN tags t ON t.id = a.tag_id LEFT JOIN equipment eq ON eq.id = a.equipment_id"
    " LEFT JOIN hazard_sources hs ON hs.id = a.hazard_source_id JOIN enterprises e ON e.id = a.enterprise_id"
)
ORDER = " ORDER BY a.priority, a.raised_at DESC, a.id DESC"
STATES = {
    "open": "a.state IN ('UNACK', 'ACKED', 'RTN_UNACK')",  # on the board
    "masked": "a.state IN ('SHELVED', 'SUPPRESSED', 'OUT_OF_SERVICE')",
    "unclosed": "a.closed_at IS NULL",  # the regulatory loop is not finished
    "all": "true",
}
MAX_SPAN = timedelta(days=31)
MAX_RAW_POINTS = 20_000
_OFFSET_AS_SPACE = re.compile(r" (\d{2}(?::?\d{2})?)$")


def condition_code(condition: str, level: int) -> str:
    """HH / H / L / LL for limits; the condition itself (FAULT, ROC, FROZEN, PREDICT, STALE) otherwise."""
    if condition == "HIGH":
        return "HH" if level >= 2 else "H"
    if condition == "LOW":
        return "LL" if level >= 2 else "L"
    return condition


def _alarm(row: Row) -> Row:
    row["condition_code"] = condition_code(str(row["condition"]), peak_level(row))
    return row


def peak_level(row: Row) -> int:
    """The highest level the alarm reached: its record (value, limit, label) is of that level."""
    return max(int(row["level"]), int(row.get("peak_level") or 0))


async def list_alarms(
    conn: AsyncConn, who: Principal, state: str, limit: int, offset: int
) -> tuple[list[Row], int]:
    """The alarms in scope (by priority, then newest first) and how many there are in all."""
    scope, params = scope_sql(who)
    where = f" WHERE {scope} AND {STATES[state]}"
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {ALARM_COLUMNS}{ALARM_FROM}{where}{ORDER} LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )
        rows = [_alarm(r) for r in await cur.fetchall()]
        await cur.execute(f"SELECT count(*) AS n{ALARM_FROM}{where}", params)
        total = await cur.fetchone()
    return rows, int(total["n"]) if total else 0


async def get_alarm(conn: AsyncConn, who: Principal | None, alarm_id: int) -> Row | None:
    """One alarm, if it exists and is in scope (``who`` None: unscoped, for the live fan-out)."""
    scope, params = scope_sql(who) if who is not None else ("true", [])
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {ALARM_COLUMNS}{ALARM_FROM} WHERE a.id = %s AND {scope}", [alarm_id, *params]
        )
        row = await cur.fetchone()
    return None if row is None else _alarm(row)


async def journal(conn: AsyncConn, alarm_id: int) -> list[Row]:
    """The alarm's journal, oldest first (call only for an alarm already checked in scope)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, at, actor, role, action, from_state, to_state, level, value, comment, detail"
            " FROM alarm_journal WHERE alarm_id = %s ORDER BY id",
            (alarm_id,),
        )
        return await cur.fetchall()


async def get_tag(conn: AsyncConn, who: Principal, tag_id: int) -> Row | None:
    scope, params = scope_sql(who)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT t.id, t.code, t.name, t.kind, t.unit, t.range_low, t.range_high, t.ll, t.l, t.h,"
            " t.hh, t.in_service, e.code AS enterprise_code, e.name AS enterprise_name"
            f" FROM tags t JOIN enterprises e ON e.id = t.enterprise_id WHERE t.id = %s AND {scope}",
            [tag_id, *params],
        )
        return await cur.fetchone()


async def trend(conn: AsyncConn, tag_id: int, start: datetime, end: datetime) -> tuple[list[list[Any]], int]:
    """Points [ts_ms, value, quality, min, max] of a tag (scope checked by the caller) and the bucket
    in seconds (0 = raw readings, 60 = minute rollups, 3600 = hour rollups), chosen by the span."""
    resolution = resolution_for(end - start)
    cur = await conn.execute(trend_query(resolution).encode(), (tag_id, start, end, MAX_RAW_POINTS))
    points = [
        [int(str(ms)), value, int(str(q)), low, high] for ms, value, low, high, q in await cur.fetchall()
    ]
    return points, {"raw": 0, "1m": 60, "1h": 3600}[resolution]


def parse_span(
    start: str | None, end: str | None, now: datetime, default: timedelta
) -> tuple[datetime, datetime]:
    """ISO 8601 times with a zone (``Z`` or an offset); by default the last ``default`` before now."""
    until = parse_time(end) if end else now
    since = parse_time(start) if start else until - default
    if since >= until:
        raise ValueError("'from' must be before 'to'")
    if until - since > MAX_SPAN:
        raise ValueError(f"a trend spans at most {MAX_SPAN.days} days")
    return since, until


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with a zone, in UTC; ValueError otherwise."""
    # a '+' of an offset arrives as a space when the caller did not percent-encode it
    moment = datetime.fromisoformat(_OFFSET_AS_SPACE.sub(r"+\1", text.strip()))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone (add Z or an offset)")
    return moment.astimezone(UTC)
