"""JSON API: the ledger browser and the enterprise view, read-only and scope-filtered.

An enterprise outside the principal's scope answers 404 exactly like a missing one (no
existence oracle); administrators see no enterprise (their work is users, roles and the
audit log, never the plants' data).
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from dashboard.context import CONFIG, POOL
from dashboard.ledger_queries import enterprise, enterprises
from dashboard.responses import int_param, json_response, not_found, require_principal


async def enterprises_list(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/enterprises — each enterprise in scope with its coordinates, risk colour
    (1 红 … 4 蓝), open alarms, overdue feedback and online rate of the last hour."""
    who = require_principal(request)
    async with request.app[POOL].connection() as conn:
        rows = await enterprises(conn, who, datetime.now(UTC), request.app[CONFIG].policy)
    return json_response({"enterprises": rows, "total": len(rows)})


async def enterprise_detail(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/enterprises/{id} — the enterprise with its hazard sources (grade, risk, today's
    commitment, open alarms, overdue feedback), equipment, tags (limits, latest value), gateways
    and cameras; 404 when missing or out of scope."""
    who = require_principal(request)
    enterprise_id = int_param(request.match_info["enterprise_id"], "enterprise id")
    async with request.app[POOL].connection() as conn:
        row = await enterprise(conn, who, enterprise_id, datetime.now(UTC), request.app[CONFIG].policy)
    if row is None:
        not_found("enterprise")
    return json_response({"enterprise": row})
