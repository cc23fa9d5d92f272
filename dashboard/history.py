"""Alarm history: search by region, enterprise, hazard source, grade, kind, state and time.

Pages are keyset-paginated on (raised_at, id), newest first, so the thousandth page costs what
the first does; the total is counted up to a cap (a regulator's province holds millions of
alarms, and "more than 10,000" is all a page needs to say). The CSV export streams the same
query in chunks, with times in the user's time zone.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from psycopg.rows import dict_row

from dashboard.db import AsyncConn
from dashboard.i18n import strings
from dashboard.queries import ALARM_COLUMNS, ALARM_FROM, Row, condition_code, parse_time, peak_level
from dashboard.scope import Principal, scope_sql

COUNT_CAP = 10_000
CSV_CHUNK = 2_000
MAX_CSV_ROWS = 200_000
KINDS = ("limit", "predict", "data", "offline", "video", "composite")
STATES = ("UNACK", "ACKED", "RTN_UNACK", "NORMAL", "SHELVED", "SUPPRESSED", "OUT_OF_SERVICE")
DISPOSITIONS = ("due", "filed", "returned", "accepted", "not_required")
_CODE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class BadQuery(ValueError):
    """A history query the API answers with 400."""


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """The filters of one search; every field optional. Built from query parameters by ``parse``."""

    division: str = ""  # a prefix of the 6-digit code, within the user's own scope
    enterprise: str = ""  # enterprise code
    hazard_source: str = ""  # hazard source code
    tag: str = ""  # tag code (位号)
    priorities: tuple[int, ...] = ()
    kinds: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    dispositions: tuple[str, ...] = ()
    closed: bool | None = None
    since: datetime | None = None  # raised at or after
    until: datetime | None = None  # raised before
    after: tuple[datetime, int] | None = field(default=None)  # the cursor: the last row seen

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> HistoryQuery:
        def codes(name: str) -> str:
            value = params.get(name, "").strip()
            if value and (len(value) > 64 or not set(value) <= _CODE_CHARS):
                raise BadQuery(f"{name} must be a code of letters, digits, '-' and '_'")
            return value

        def choices(name: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
            values = tuple(v for v in params.get(name, "").split(",") if v)
            bad = [v for v in values if v not in allowed]
            if bad:
                raise BadQuery(f"{name} must be among {', '.join(allowed)} (got {', '.join(bad)})")
            return values

        division = params.get("division", "").strip()
        if division and (not division.isdigit() or len(division) > 6):
            raise BadQuery("division must be a prefix of a 6-digit administrative division code")
        priorities = choices("priority", ("1", "2", "3"))
        closed = params.get("closed")
        if closed not in (None, "", "true", "false"):
            raise BadQuery("closed must be true or false")
        since, until = _time(params.get("from"), "from"), _time(params.get("to"), "to")
        if since is not None and until is not None and since >= until:
            raise BadQuery("from must come before to")
        return cls(
            division=division,
            enterprise=codes("enterprise"),
            hazard_source=codes("hazard_source"),
            tag=codes("tag"),
            priorities=tuple(int(p) for p in priorities),
            kinds=choices("kind", KINDS),
            states=choices("state", STATES),
            dispositions=choices("disposition", DISPOSITIONS),
            closed=None if not closed else closed == "true",
            since=since,
            until=until,
            after=_cursor(params.get("cursor")),
        )

    def where(self, who: Principal) -> tuple[str, list[object]]:
        """The WHERE clause: the user's scope AND the filters (never instead of the scope)."""
        scope, params = scope_sql(who)
        parts = [scope]
        if self.division:
            parts.append("e.division LIKE %s")
            params.append(self.division + "%")
        # codes resolve to ids first, so the (subject, raised_at) indexes serve the page
        for column, table, value in (
            ("a.enterprise_id", "enterprises", self.enterprise),
            ("a.hazard_source_id", "hazard_sources", self.hazard_source),
            ("a.tag_id", "tags", self.tag),
        ):
            if value:
                parts.append(f"{column} IN (SELECT id FROM {table} WHERE code = %s)")
                params.append(value)
        for column, values in (
            ("a.priority", self.priorities),
            ("a.kind", self.kinds),
            ("a.state", self.states),
            ("a.disposition", self.dispositions),
        ):
            if values:
                parts.append(f"{column} = ANY(%s)")
                params.append(list(values))
        if self.closed is not None:
            parts.append("a.closed_at IS NOT NULL" if self.closed else "a.closed_at IS NULL")
        if self.since is not None:
            parts.append("a.raised_at >= %s")
            params.append(self.since)
        if self.until is not None:
            parts.append("a.raised_at < %s")
            params.append(self.until)
        return " AND ".join(parts), params


def _time(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError as err:
        raise BadQuery(f"{name}: {err}") from err


def encode_cursor(row: Row) -> str:
    raised = row["raised_at"]
    assert isinstance(raised, datetime)  # noqa: S101 - a column of timestamptz
    payload = json.dumps([raised.astimezone(UTC).isoformat(), int(row["id"])]).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def _cursor(text: str | None) -> tuple[datetime, int] | None:
    if not text:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        at, alarm_id = json.loads(raw)
        moment = datetime.fromisoformat(at)
    except (ValueError, TypeError, binascii.Error) as err:
        raise BadQuery("cursor is not one this API gave out") from err
    if moment.tzinfo is None or not isinstance(alarm_id, int):
        raise BadQuery("cursor is not one this API gave out")
    return moment, alarm_id


async def search(
    conn: AsyncConn, who: Principal, query: HistoryQuery, limit: int
) -> tuple[list[Row], str | None]:
    """One page of alarms, newest first, and the cursor of the next page (None on the last)."""
    where, params = query.where(who)
    if query.after is not None:
        where += " AND (a.raised_at, a.id) < (%s, %s)"
        params += [query.after[0], query.after[1]]
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {ALARM_COLUMNS}{ALARM_FROM} WHERE {where} ORDER BY a.raised_at DESC, a.id DESC LIMIT %s",
            [*params, limit + 1],
        )
        rows = await cur.fetchall()
    more = len(rows) > limit
    page = [_with_code(r) for r in rows[:limit]]
    return page, encode_cursor(page[-1]) if more and page else None


async def count(conn: AsyncConn, who: Principal, query: HistoryQuery) -> tuple[int, bool]:
    """How many alarms match, up to ``COUNT_CAP``; True when there are more than that."""
    where, params = query.where(who)
    async with conn.cursor() as cur:
        await cur.execute(
            f"SELECT count(*) FROM (SELECT 1{ALARM_FROM} WHERE {where} LIMIT %s) capped",
            [*params, COUNT_CAP + 1],
        )
        row = await cur.fetchone()
    n = int(str(row[0])) if row else 0
    return min(n, COUNT_CAP), n > COUNT_CAP


def _with_code(row: Row) -> Row:
    row["condition_code"] = condition_code(str(row["condition"]), peak_level(row))
    return row


CSV_COLUMNS = (
    ("id", "报警编号", "Alarm id"),
    ("raised_at", "报警时间", "Raised"),
    ("priority", "级别", "Priority"),
    ("enterprise_code", "企业编码", "Enterprise code"),
    ("enterprise_name", "企业", "Enterprise"),
    ("division", "行政区划", "Division"),
    ("hazard_source_code", "重大危险源编码", "Hazard source code"),
    ("hazard_source_name", "重大危险源", "Hazard source"),
    # what the alarm is about: a tag's 位号, or a camera, voting group, hazard source or gateway
    ("subject_code", "位号/对象", "Tag / subject"),
    ("subject_name", "名称", "Name"),
    ("kind", "类别", "Kind"),
    ("condition_code", "报警类型", "Condition"),
    ("value", "报警值", "Value"),
    ("limit_value", "限值", "Limit"),
    ("unit", "单位", "Unit"),
    ("state", "状态", "State"),
    ("acked_at", "确认时间", "Acknowledged"),
    ("acked_by", "确认人", "Acknowledged by"),
    ("cleared_at", "恢复时间", "Cleared"),
    ("disposition", "反馈", "Feedback"),
    ("closed_at", "关闭时间", "Closed"),
)


# columns whose codes a reader sees as words (the dashboard's labels, in the export's language)
_LABELLED = {"priority": "priority_", "kind": "kind_", "condition_code": "cond_", "state": "state_",
             "disposition": "disp_"}  # fmt: skip


def _label(column: str, value: Any, words: Mapping[str, str]) -> Any:
    prefix = _LABELLED.get(column)
    if prefix is None or value is None:
        return value
    return words.get(f"{prefix}{value}", value)


def _cell(value: Any, zone: ZoneInfo) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return round_reading(value)
    text = str(value)
    # a cell a spreadsheet would run as a formula is quoted (CSV injection)
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _is_number(text) else text


def round_reading(value: float) -> str:
    """A reading as the board shows it (format.js ``fmtNumber``): 3 decimals under 10, 2 under 100,
    1 above, trailing zeros dropped (86.39220620800006 → 86.4)."""
    magnitude = abs(value)
    digits = 1 if magnitude >= 100 else 2 if magnitude >= 10 else 3
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


async def export_csv(
    conn: AsyncConn, who: Principal, query: HistoryQuery, lang: str, timezone: str
) -> AsyncIterator[bytes]:
    """The matching alarms as CSV (UTF-8 with a BOM so spreadsheets read the Chinese), newest first,
    at most ``MAX_CSV_ROWS``; times in ``timezone``."""
    zone = ZoneInfo(timezone)
    heading = 2 if lang == "en" else 1  # zh-CN first
    words = strings("en" if lang == "en" else "zh")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([c[heading] + (f" ({timezone})" if c[0].endswith("_at") else "") for c in CSV_COLUMNS])
    yield ("\ufeff" + buffer.getvalue()).encode()
    sent = 0
    page_query = query
    while sent < MAX_CSV_ROWS:
        rows, cursor = await search(conn, who, page_query, min(CSV_CHUNK, MAX_CSV_ROWS - sent))
        buffer.seek(0)
        buffer.truncate()
        for row in rows:
            writer.writerow([_cell(_label(c[0], row.get(c[0]), words), zone) for c in CSV_COLUMNS])
        sent += len(rows)
        yield buffer.getvalue().encode()
        if cursor is None:
            return
        page_query = _after(page_query, rows[-1])


def _after(query: HistoryQuery, row: Row) -> HistoryQuery:
    raised = row["raised_at"]
    assert isinstance(raised, datetime)  # noqa: S101 - a column of timestamptz
    return replace(query, after=(raised, int(row["id"])))
