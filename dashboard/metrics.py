"""The platform's own health for Prometheus: ``GET /metrics`` on the dashboard.

HTTP requests are counted per route pattern (never per raw path, so ids do not explode the
series) by a middleware; each scrape also reads, from the database, what an operator of the
platform watches: open alarms by priority and state, gateways by status and the age of their
last message, the newest reading, dead letters in the last hour, the outbox consumers' lag
behind the journal. Served to loopback (a Prometheus beside the dashboard) and to the
administrators (a remote Prometheus scrapes with an administrator's API token); nobody else.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

import psycopg
from aiohttp import web
from aiohttp.typedefs import Handler

from dashboard.context import HUB, POOL
from dashboard.db import AsyncConn
from dashboard.responses import ApiError, session_of
from dashboard.scope import ADMIN_ROLES
from hazardwatch.prometheus import CONTENT_TYPE, Sample, family

logger = logging.getLogger(__name__)


@dataclass
class HttpStats:
    """Requests and their total duration per (method, route pattern, status class)."""

    count: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    seconds: dict[tuple[str, str, str], float] = field(default_factory=lambda: defaultdict(float))


STATS = web.AppKey("http_stats", HttpStats)


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    canonical = resource.canonical
    return "/static/…" if canonical.startswith("/static") else canonical


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    began = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
    except web.HTTPException as err:
        status = err.status
        raise
    else:
        status = response.status
        return response
    finally:
        key = (request.method, _route(request), f"{status // 100}xx")
        stats = request.app[STATS]
        stats.count[key] += 1
        stats.seconds[key] += time.perf_counter() - began


def _allowed(request: web.Request) -> bool:
    session = session_of(request)
    if session is not None and session.principal.role in ADMIN_ROLES:
        return True
    try:
        return request.remote is not None and ipaddress.ip_address(request.remote).is_loopback
    except ValueError:
        return False


async def _database_families(conn: AsyncConn) -> list[str]:
    lines: list[str] = []
    rows = await (
        await conn.execute(
            "SELECT priority, state, count(*) FROM alarms WHERE state <> 'NORMAL' GROUP BY 1, 2"
        )
    ).fetchall()
    lines += family(
        "hw_alarms_open", "gauge", "open alarms by priority and state",
        [({"priority": str(p), "state": str(s)}, float(str(n))) for p, s, n in rows],
    )  # fmt: skip
    row = await (await conn.execute("SELECT count(*) FROM alarms WHERE closed_at IS NULL")).fetchone()
    lines += family("hw_alarms_unclosed", "gauge", "alarms whose regulatory loop is not finished",
                    [({}, float(str(row[0])) if row else 0.0)])  # fmt: skip
    rows = await (await conn.execute("SELECT status, count(*) FROM gateways GROUP BY 1")).fetchall()
    lines += family("hw_gateways", "gauge", "gateways by last reported status",
                    [({"status": str(s)}, float(str(n))) for s, n in rows])  # fmt: skip
    rows = await (
        await conn.execute(
            "SELECT e.code, g.code, extract(epoch FROM now() - g.last_seen_at) FROM gateways g"
            " JOIN enterprises e ON e.id = g.enterprise_id WHERE g.last_seen_at IS NOT NULL"
        )
    ).fetchall()
    ages = [({"enterprise": str(e), "gateway": str(g)}, float(str(a))) for e, g, a in rows]
    lines += family(
        "hw_gateway_last_seen_age_seconds", "gauge", "seconds since a gateway's last message", ages
    )
    lines += await _sequences(conn)
    row = await (
        await conn.execute("SELECT extract(epoch FROM now() - max(received_at)) FROM readings_latest")
    ).fetchone()
    if row is not None and row[0] is not None:
        lines += family("hw_readings_newest_age_seconds", "gauge", "seconds since the newest reading arrived",
                        [({}, float(str(row[0])))])  # fmt: skip
    row = await (
        await conn.execute("SELECT count(*) FROM dead_letters WHERE received_at > now() - interval '1 hour'")
    ).fetchone()
    lines += family("hw_dead_letters_last_hour", "gauge", "payloads rejected in the last hour",
                    [({}, float(str(row[0])) if row else 0.0)])  # fmt: skip
    rows = await (
        await conn.execute(
            "SELECT kind, count(*) FROM dead_letters WHERE received_at > now() - interval '1 hour' GROUP BY 1"
        )
    ).fetchall()
    lines += family("hw_dead_letters_by_kind_last_hour", "gauge", "rejected in the last hour, by kind",
                    [({"kind": str(k)}, float(str(n))) for k, n in rows])  # fmt: skip
    stored = "SELECT count(*), coalesce(sum(octet_length(payload)), 0) FROM dead_letters"
    row = await (await conn.execute(stored)).fetchone()
    lines += family("hw_dead_letters_stored", "gauge", "dead letters kept (within retention and size cap)",
                    [({}, float(str(row[0])) if row else 0.0)])  # fmt: skip
    lines += family("hw_dead_letters_stored_bytes", "gauge", "payload bytes the dead letters keep",
                    [({}, float(str(row[1])) if row else 0.0)])  # fmt: skip
    lines += await _outbox_lag(conn)
    return lines


async def _sequences(conn: AsyncConn) -> list[str]:
    """Per gateway: batches numbered and not received, given up for lost, and sequence epochs."""
    rows = await (
        await conn.execute(
            "SELECT e.code, g.code, g.seq_gaps, g.seq_lost, g.seq_epochs FROM gateways g"
            " JOIN enterprises e ON e.id = g.enterprise_id WHERE g.last_seq IS NOT NULL"
        )
    ).fetchall()
    lines: list[str] = []
    for index, (name, help_text) in enumerate(
        (
            (
                "hw_gateway_seq_missing_batches",
                "batches a gateway numbered that have not arrived (open gaps)",
            ),
            (
                "hw_gateway_seq_lost_batches",
                "batches given up for lost (gaps too old, or left by a new epoch)",
            ),
            (
                "hw_gateway_seq_epochs",
                "times a gateway's numbering started again (a new buffer, or a forgery)",
            ),
        ),
        start=2,
    ):
        samples = [({"enterprise": str(r[0]), "gateway": str(r[1])}, float(str(r[index]))) for r in rows]
        lines += family(name, "gauge", help_text, samples)
    return lines


async def _outbox_lag(conn: AsyncConn) -> list[str]:
    """Journal rows each outbox consumer has yet to read (when the workflows' table exists)."""
    exists = await (await conn.execute("SELECT to_regclass('outbox_positions') IS NOT NULL")).fetchone()
    if not exists or not exists[0]:
        return []
    rows = await (
        await conn.execute(
            "SELECT p.consumer, (SELECT count(*) FROM alarm_journal j"
            "   WHERE (j.xid, j.id) > (p.xid, p.journal_id)) FROM outbox_positions p"
        )
    ).fetchall()
    return family("hw_outbox_lag_entries", "gauge", "journal entries an outbox consumer has not processed",
                  [({"consumer": str(c)}, float(str(n))) for c, n in rows])  # fmt: skip


async def metrics(request: web.Request) -> web.StreamResponse:
    """GET /metrics — Prometheus text format (loopback or administrators only)."""
    if not _allowed(request):
        raise ApiError(403, "forbidden", "metrics are for a local Prometheus or an administrator's token")
    stats = request.app[STATS]
    lines = family(
        "hw_http_requests_total", "counter", "HTTP requests by method, route and status class",
        [({"method": m, "route": r, "status": s}, float(n)) for (m, r, s), n in sorted(stats.count.items())],
    )  # fmt: skip
    lines += family(
        "hw_http_request_seconds_total", "counter", "time spent answering, by method, route and status class",
        [({"method": m, "route": r, "status": s}, t) for (m, r, s), t in sorted(stats.seconds.items())],
    )  # fmt: skip
    hub = request.app[HUB]
    lines += family("hw_live_sockets", "gauge", "open live-board WebSockets", [({}, float(len(hub.clients)))])
    lines += family("hw_live_listening", "gauge", "1 while the LISTEN connection is up",
                    [({}, 1.0 if hub.listening.is_set() else 0.0)])  # fmt: skip
    up: list[Sample] = [({}, 1.0)]
    try:
        async with request.app[POOL].connection() as conn:
            lines += await _database_families(conn)
    except psycopg.Error as err:
        logger.warning("metrics: database unavailable: %s", err)
        up = [({}, 0.0)]
    lines += family("hw_database_up", "gauge", "1 while the database answers the dashboard", up)
    return web.Response(body=("\n".join(lines) + "\n").encode(), headers={"Content-Type": CONTENT_TYPE})
