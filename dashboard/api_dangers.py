"""JSON API of hidden dangers (隐患): opened from a real abnormality confirmed in an alarm's
feedback, rectified by the enterprise, closed (or sent back) by the regulator.

Who may do what, always within scope (outside it: 404, like a missing id):

- open (POST /alarms/{id}/hidden-dangers): a regulator, or the alarm's enterprise.
- rectified: the enterprise, saying what it did.
- closed, or back to open from rectified: a regulator (sending back needs a comment).
- read: anyone who may see the enterprise's alarms.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from alarms.store import advance_hidden_danger, open_hidden_danger
from dashboard.actions import (
    MAX_TEXT,
    actor_of,
    bad_request,
    choice,
    forbidden,
    run_store,
    text_field,
    time_field,
)
from dashboard.api_workflow import alarm_id_of, alarm_in_scope
from dashboard.context import POOL
from dashboard.responses import ApiError, int_param, json_body, json_response, not_found, require_principal
from dashboard.scope import Role
from dashboard.workflow_queries import DANGER_STATES, hidden_danger, hidden_dangers

DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
STATUSES = ("rectified", "closed", "open")
# the role each target status needs
MOVER = {"rectified": Role.ENTERPRISE, "closed": Role.REGULATOR, "open": Role.REGULATOR}


async def danger_open(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/alarms/{id}/hidden-dangers {description, deadline} — open a rectification
    record from a real abnormality confirmed in the alarm's feedback (201)."""
    who = require_principal(request)
    alarm_id = alarm_id_of(request)
    body = await json_body(request)
    description = text_field(body, "description", required=True, max_len=MAX_TEXT)
    deadline = time_field(body, "deadline")
    now = datetime.now(UTC)
    if deadline is None:
        raise bad_request("deadline is required (ISO 8601 with an offset)")
    if deadline <= now:
        raise bad_request("the rectification deadline must be in the future")
    await alarm_in_scope(request, who, alarm_id)
    if who.role not in (Role.REGULATOR, Role.ENTERPRISE):
        raise forbidden(f"a {who.role.value} cannot open hidden dangers")
    actor = actor_of(who)
    danger_id = await run_store(
        request, "alarm", lambda c: open_hidden_danger(c, alarm_id, actor, description, deadline, now)
    )
    async with request.app[POOL].connection() as conn:
        row = await hidden_danger(conn, who, danger_id)
    return json_response({"hidden_danger": row}, 201)


async def dangers_list(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/hidden-dangers?status=unclosed|open|rectified|closed|all&limit=&offset= — hidden
    dangers in scope, the nearest deadline first; ``overdue`` marks unclosed ones past it."""
    who = require_principal(request)
    state = request.query.get("status", "unclosed")
    if state not in DANGER_STATES:
        raise ApiError(400, "bad_request", f"status must be one of {', '.join(DANGER_STATES)}")
    limit = int_param(request.query.get("limit", str(DEFAULT_LIMIT)), "limit", low=1, high=MAX_LIMIT)
    offset = int_param(request.query.get("offset", "0"), "offset")
    async with request.app[POOL].connection() as conn:
        rows, total = await hidden_dangers(conn, who, state, limit, offset)
    return json_response({"hidden_dangers": rows, "total": total, "limit": limit, "offset": offset})


def _danger_id(request: web.Request) -> int:
    return int_param(request.match_info["danger_id"], "hidden danger id", high=2**63 - 1)


async def danger_get(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/hidden-dangers/{id} — one hidden danger."""
    who = require_principal(request)
    danger_id = _danger_id(request)
    async with request.app[POOL].connection() as conn:
        row = await hidden_danger(conn, who, danger_id)
    if row is None:
        not_found("hidden danger")
    return json_response({"hidden_danger": row})


async def danger_advance(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/hidden-dangers/{id} {status, text} — one step of the rectification: status
    rectified (the enterprise), closed or open (the regulator sends a rectified one back)."""
    who = require_principal(request)
    danger_id = _danger_id(request)
    body = await json_body(request)
    status = choice(body, "status", STATUSES)
    text = text_field(body, "text", required=status != "closed", max_len=MAX_TEXT)
    async with request.app[POOL].connection() as conn:
        if await hidden_danger(conn, who, danger_id) is None:
            not_found("hidden danger")
    if who.role != MOVER[status]:
        raise forbidden(f"a {who.role.value} cannot mark a hidden danger {status}")
    actor = actor_of(who)
    await run_store(
        request, "hidden danger", lambda c: advance_hidden_danger(c, danger_id, actor, status, text)
    )
    async with request.app[POOL].connection() as conn:
        row = await hidden_danger(conn, who, danger_id)
    return json_response({"hidden_danger": row})
