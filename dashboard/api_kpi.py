"""JSON API: alarm KPIs, dynamic risk and its history, daily safety commitments and findings.

Every read is limited by the principal's scope (``scope_sql``): an enterprise user sees its own
enterprise, duty officers and regulators their region; administrators see no alarm data (403).
Asking for an enterprise outside the scope answers 404 like a missing one; asking for a region
outside one's own is 403. Only enterprise users file commitments, each for its own hazard
sources, for the current local day; every filing is also written to the audit log.

- GET  /api/v1/kpi?from=&to=&division=&enterprise=   the ISA-18.2 KPIs of one operator position
- GET  /api/v1/risk?enterprise=                      current levels of enterprises and hazard sources
- GET  /api/v1/risk/history?from=&to=&enterprise=    level changes, newest first
- GET  /api/v1/commitments?day=&enterprise=          each hazard source with the day's commitment
- POST /api/v1/commitments {hazard_source, …}        file (or revise) today's commitment
- GET  /api/v1/findings?from=&to=&enterprise=        commitments missing at the deadline (days)
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web
from psycopg.rows import dict_row
from pydantic import ValidationError

from alarms.commitments import CommitmentForm, commitments_of_day, file_commitment, findings, local_day
from alarms.kpi import MAX_SPAN, Selection, compute
from alarms.risk import LEVEL_COLOURS, LEVEL_NAMES
from dashboard.actions import actor_of, bad_request, forbidden, policy_of, run_store
from dashboard.api_auth import client_ip
from dashboard.auth import audit
from dashboard.context import POOL
from dashboard.responses import json_body, json_response, not_found, require_principal
from dashboard.scope import REGIONAL_ROLES, Principal, Role, scope_sql
from hazardwatch.ledger.grading import grade_name_sql
from ingest.storage import online_rates

KPI_DEFAULT = timedelta(hours=24)
HISTORY_DEFAULT = timedelta(days=7)
HISTORY_LIMIT = 1000
FINDING_DAYS = 7
_DIVISION = re.compile(r"^[0-9]{0,6}$")
_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_OFFSET_AS_SPACE = re.compile(r" (\d{2}(?::?\d{2})?)$")
Scope = tuple[str, list[object]]


def _reader(request: web.Request) -> Principal:
    who = require_principal(request)
    if not who.sees_alarms:
        raise forbidden(f"a {who.role.value} sees no alarm data")
    return who


def _time(value: str | None, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(_OFFSET_AS_SPACE.sub(r"+\1", value.strip()))
    except ValueError as err:
        raise bad_request(f"{name}: {value!r} is not an ISO 8601 time") from err
    if moment.tzinfo is None:
        raise bad_request(f"{name}: {value!r} has no offset (add Z or +08:00)")
    return moment.astimezone(UTC)


def _span(request: web.Request, default: timedelta, longest: timedelta) -> tuple[datetime, datetime]:
    end = _time(request.query.get("to"), "to") or datetime.now(UTC)
    start = _time(request.query.get("from"), "from") or end - default
    if start >= end:
        raise bad_request("'from' must be before 'to'")
    if end - start > longest:
        raise bad_request(f"the range spans at most {longest.days} days")
    return start, end


def _day(value: str | None, name: str, default: date) -> date:
    if value is None or value == "":
        return default
    try:
        return date.fromisoformat(value.strip())
    except ValueError as err:
        raise bad_request(f"{name}: {value!r} is not a date (YYYY-MM-DD)") from err


async def _enterprise_code(request: web.Request, who: Principal, code: str | None) -> str | None:
    """The enterprise asked for (an enterprise user's own by default), checked in scope; 404 if not."""
    if who.role == Role.ENTERPRISE and code is None:
        clause, params = scope_sql(who)
    elif code is None:
        return None
    elif not _CODE.match(code):
        raise bad_request("enterprise must be an enterprise code")
    else:
        clause, params = scope_sql(who)
        clause, params = f"{clause} AND e.code = %s", [*params, code]
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(f"SELECT e.code FROM enterprises e WHERE {clause}", params)
        row = await cur.fetchone()
    if row is None:
        not_found("enterprise")
    return str(row[0])


async def _scope(request: web.Request, who: Principal) -> Scope:
    """The principal's scope, narrowed to ``?enterprise=`` when given."""
    clause, params = scope_sql(who)
    code = await _enterprise_code(request, who, request.query.get("enterprise") or None)
    if code is not None:
        return f"({clause}) AND e.code = %s", [*params, code]
    return clause, params


# -- KPIs ---------------------------------------------------------------------------------------
async def kpi(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/kpi?from=&to=&division=&enterprise= — default: the last 24 h of one's whole scope."""
    who = _reader(request)
    start, end = _span(request, KPI_DEFAULT, MAX_SPAN)
    division = request.query.get("division") or ""
    if not _DIVISION.match(division):
        raise bad_request("division must be a prefix of a 6-digit division code")
    if who.role in REGIONAL_ROLES:
        division = division or who.division
        if not division.startswith(who.division):
            raise forbidden(f"your region is {who.division or 'the whole country'}")
    elif division:
        raise forbidden("an enterprise user sees only its own enterprise")
    code = await _enterprise_code(request, who, request.query.get("enterprise") or None)
    selection = Selection(division, code, scope_sql(who))
    report = await run_store(
        request,
        "enterprise",
        lambda conn: compute(conn, start, end, selection, online_rates(conn, start, end, "enterprise")),
    )
    return json_response({"kpi": report.as_dict()})


# -- dynamic risk -------------------------------------------------------------------------------
_RISK = (
    "SELECT r.subject_kind, r.subject_id, r.level, r.inherent, r.score, r.factors, r.since, r.computed_at,"
    " e.id AS enterprise_id, e.code AS enterprise_code, e.name AS enterprise_name, e.division,"
    " hs.code AS hazard_source_code, hs.name AS hazard_source_name, hs.grade,"
    f" {grade_name_sql('hs')} AS grade_name"
)
_RISK_JOINS = (
    " JOIN enterprises e ON e.id = r.enterprise_id"
    " LEFT JOIN hazard_sources hs ON r.subject_kind = 'hazard_source' AND hs.id = r.subject_id"
)


def _named(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("level", "from_level"):
        if key in row and row[key] is not None:
            row[f"{key}_name"] = LEVEL_NAMES[int(row[key])]
            row[f"{key}_colour"] = LEVEL_COLOURS[int(row[key])]
    return row


async def risk(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/risk?enterprise= — current levels, gravest first."""
    who = _reader(request)
    clause, params = await _scope(request, who)
    async with request.app[POOL].connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"{_RISK} FROM risk_levels r{_RISK_JOINS} WHERE {clause}"
            " ORDER BY r.level, r.score DESC, e.code, hs.code NULLS FIRST",
            params,
        )
        rows = [_named(r) for r in await cur.fetchall()]
    return json_response(
        {
            "enterprises": [r for r in rows if r["subject_kind"] == "enterprise"],
            "hazard_sources": [r for r in rows if r["subject_kind"] == "hazard_source"],
        }
    )


async def risk_history(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/risk/history?from=&to=&enterprise= — level changes in the range, newest first."""
    who = _reader(request)
    start, end = _span(request, HISTORY_DEFAULT, timedelta(days=366))
    clause, params = await _scope(request, who)
    async with request.app[POOL].connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT r.id, r.subject_kind, r.subject_id, r.at, r.from_level, r.level, r.score, r.factors,"
            " e.id AS enterprise_id, e.code AS enterprise_code, e.name AS enterprise_name, e.division,"
            f" hs.code AS hazard_source_code, hs.name AS hazard_source_name FROM risk_history r{_RISK_JOINS}"
            f" WHERE r.at >= %s AND r.at < %s AND {clause} ORDER BY r.at DESC, r.id DESC LIMIT %s",
            [start, end, *params, HISTORY_LIMIT],
        )
        rows = [_named(r) for r in await cur.fetchall()]
    return json_response({"from": start, "to": end, "history": rows, "limit": HISTORY_LIMIT})


# -- daily safety commitments and findings ------------------------------------------------------
async def commitments_list(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/commitments?day=&enterprise= — every hazard source in scope with the day's
    commitment (the newest revision) and its status: filed, late, missing or pending."""
    who = _reader(request)
    policy = policy_of(request)
    now = datetime.now(UTC)
    day = _day(request.query.get("day"), "day", local_day(now, policy))
    scope = await _scope(request, who)
    rows = await run_store(
        request, "enterprise", lambda conn: commitments_of_day(conn, day, now, scope, policy)
    )
    return json_response({"day": day, "timezone": policy.risk.timezone, "commitments": rows})


async def commitment_file(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/commitments {hazard_source, unit_status, special_operations, trial_production,
    startup, major_hidden_dangers, risk_level, commitment, principal} — the enterprise files (or
    revises) today's commitment of one of its hazard sources; principal defaults to its 主要负责人.

    unit_status: running, stopped or maintenance; special_operations: counts by kind (hot_work,
    confined_space, blind_plate, work_at_height, lifting, temporary_power, excavation,
    road_closure); risk_level: the level it declares, 1 红 … 4 蓝. 201 with the stored revision."""
    who = require_principal(request)
    if who.role != Role.ENTERPRISE or who.enterprise_id is None:
        raise forbidden("only the enterprise files its safety commitment")
    body = await json_body(request)
    code = body.pop("hazard_source", None)
    if not isinstance(code, str) or not _CODE.match(code):
        raise bad_request("hazard_source must be the code of one of your hazard sources")
    try:
        form = CommitmentForm.model_validate(body)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in err.errors()
        )
        raise bad_request(problems) from err
    async with request.app[POOL].connection() as conn:
        cur = await conn.execute(
            "SELECT id FROM hazard_sources WHERE code = %s AND enterprise_id = %s", (code, who.enterprise_id)
        )
        found = await cur.fetchone()
    if found is None:
        not_found("hazard source")
    source_id, policy, actor = int(str(found[0])), policy_of(request), actor_of(who)
    row = await run_store(
        request,
        "hazard source",
        lambda conn: file_commitment(conn, source_id, form, actor, datetime.now(UTC), policy),
    )
    async with request.app[POOL].connection() as conn:
        await audit(
            conn,
            who.username,
            "commitment_filed",
            {
                "hazard_source": code,
                "day": row["day"].isoformat(),
                "revision": row["revision"],
                "id": row["id"],
            },
            client_ip(request),
        )
    row["hazard_source_code"] = code
    return json_response({"commitment": row}, status=201)


async def findings_list(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/findings?from=&to=&enterprise= — days (YYYY-MM-DD, local), the last 7 by default:
    each hazard source whose commitment was missing at the deadline (late ones say when it came)."""
    who = _reader(request)
    policy = policy_of(request)
    now = datetime.now(UTC)
    today = local_day(now, policy)
    last = _day(request.query.get("to"), "to", today)
    first = _day(request.query.get("from"), "from", last - timedelta(days=FINDING_DAYS - 1))
    scope = await _scope(request, who)
    try:
        rows = await run_store(
            request, "enterprise", lambda conn: findings(conn, first, last, now, scope, policy)
        )
    except ValueError as err:
        raise bad_request(str(err)) from err
    return json_response({"from": first, "to": last, "timezone": policy.risk.timezone, "findings": rows})
