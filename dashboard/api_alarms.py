"""JSON API: alarms (list, detail, acknowledge) and tag trends, all scope-filtered."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
from aiohttp import web

from alarms.errors import AlarmNotFound, InvalidTransition
from alarms.store import Actor, acknowledge
from dashboard.context import CONFIG, EXECUTOR, POOL
from dashboard.queries import STATES, get_alarm, get_tag, journal, list_alarms, parse_span, trend
from dashboard.responses import ApiError, int_param, json_body, json_response, not_found, require_principal

DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
MAX_COMMENT = 500
TREND_DEFAULT = timedelta(minutes=30)


async def alarms_list(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/alarms?state=open|masked|unclosed|all&limit=&offset= — by priority, then newest first.

    open: on the board (UNACK, ACKED, RTN_UNACK); masked: shelved, suppressed or out of service;
    unclosed: the regulatory loop is not finished (feedback due, filed or returned)."""
    who = require_principal(request)
    state = request.query.get("state", "open")
    if state not in STATES:
        raise ApiError(400, "bad_request", f"state must be one of {', '.join(STATES)}")
    limit = int_param(request.query.get("limit", str(DEFAULT_LIMIT)), "limit", low=1, high=MAX_LIMIT)
    offset = int_param(request.query.get("offset", "0"), "offset")
    async with request.app[POOL].connection() as conn:
        rows, total = await list_alarms(conn, who, state, limit, offset)
    return json_response({"alarms": rows, "total": total, "limit": limit, "offset": offset})


async def alarm_detail(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/alarms/{id} — the alarm with its journal; 404 when missing or out of scope."""
    who = require_principal(request)
    alarm_id = int_param(request.match_info["alarm_id"], "alarm id", high=2**63 - 1)
    async with request.app[POOL].connection() as conn:
        row = await get_alarm(conn, who, alarm_id)
        if row is None:
            not_found("alarm")
        row["journal"] = await journal(conn, alarm_id)
    return json_response({"alarm": row})


def _acknowledge_sync(url: str, alarm_id: int, actor: Actor, comment: str) -> None:
    """Runs on the executor: alarms.store is synchronous psycopg."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        acknowledge(conn, alarm_id, actor, comment)


async def alarm_ack(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/alarms/{id}/ack {comment} — 403 read-only role, 409 not acknowledgeable."""
    who = require_principal(request)
    alarm_id = int_param(request.match_info["alarm_id"], "alarm id", high=2**63 - 1)
    body = await json_body(request)
    comment = body.get("comment", "")
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        raise ApiError(400, "bad_request", f"comment must be text of at most {MAX_COMMENT} characters")
    pool = request.app[POOL]
    async with pool.connection() as conn:
        if await get_alarm(conn, who, alarm_id) is None:
            not_found("alarm")
    if not who.can_acknowledge:
        raise ApiError(403, "forbidden", f"a {who.role.value} cannot acknowledge alarms")
    loop = asyncio.get_running_loop()
    actor = Actor(who.username, who.role.value)
    try:
        await loop.run_in_executor(
            request.app[EXECUTOR], _acknowledge_sync, request.app[CONFIG].database_url, alarm_id, actor,
            comment.strip(),
        )  # fmt: skip
    except InvalidTransition as err:
        raise ApiError(409, "conflict", str(err)) from err
    except AlarmNotFound:
        not_found("alarm")
    async with pool.connection() as conn:
        row = await get_alarm(conn, who, alarm_id)
        if row is None:
            not_found("alarm")
        row["journal"] = await journal(conn, alarm_id)
    return json_response({"alarm": row})


async def tag_trend(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/tags/{tag_id}/trend?from=&to= — points [ts_ms, value, quality] and limits."""
    who = require_principal(request)
    tag_id = int_param(request.match_info["tag_id"], "tag id")
    try:
        start, end = parse_span(
            request.query.get("from"), request.query.get("to"), datetime.now(UTC), TREND_DEFAULT
        )
    except ValueError as err:
        raise ApiError(400, "bad_request", f"bad time range: {err}") from err
    async with request.app[POOL].connection() as conn:
        tag = await get_tag(conn, who, tag_id)
        if tag is None:
            not_found("tag")
        points, bucket_s = await trend(conn, tag_id, start, end)
    return json_response(
        {
            "tag": tag,
            "from": start,
            "to": end,
            "bucket_s": bucket_s,
            "limits": {k: tag[k] for k in ("ll", "l", "h", "hh")},
            "range": [tag["range_low"], tag["range_high"]],
            "points": points,
        }
    )
