"""JSON API: the alarm history (search, paginate, export), always inside the user's scope."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from dashboard.context import CONFIG, POOL
from dashboard.history import BadQuery, HistoryQuery, count, export_csv, search
from dashboard.i18n import request_lang
from dashboard.responses import ApiError, int_param, json_response, require_principal

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def _query(request: web.Request) -> HistoryQuery:
    who = require_principal(request)
    if not who.sees_alarms:
        raise ApiError(403, "forbidden", f"a {who.role.value} does not see alarms")
    try:
        return HistoryQuery.parse(request.query)
    except BadQuery as err:
        raise ApiError(400, "bad_request", str(err)) from err


async def history(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/history?division=&enterprise=&hazard_source=&tag=&priority=1,2&kind=&state=&disposition=
    &closed=&from=&to=&limit=&cursor= — newest first; ``next`` is the cursor of the next page."""
    query = _query(request)
    who = require_principal(request)
    limit = int_param(request.query.get("limit", str(DEFAULT_LIMIT)), "limit", low=1, high=MAX_LIMIT)
    async with request.app[POOL].connection() as conn:
        rows, cursor = await search(conn, who, query, limit)
        total, more = await count(conn, who, query) if query.after is None else (None, None)
    return json_response(
        {"alarms": rows, "next": cursor, "total": total, "total_capped": more, "limit": limit}
    )


async def history_csv(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/history.csv?… (the same filters) — every matching alarm as CSV, streamed."""
    query = _query(request)
    who = require_principal(request)
    lang, _ = request_lang(request)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="alarms-{stamp}.csv"',
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(request)
    async with request.app[POOL].connection() as conn:
        async for chunk in export_csv(conn, who, query, lang, request.app[CONFIG].timezone):
            await response.write(chunk)
    await response.write_eof()
    return response
