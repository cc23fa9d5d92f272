"""The aiohttp application: routes, services and their lifecycle; ``serve`` runs it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from alarms.policy import DEFAULT, Policy
from dashboard import (
    api_admin,
    api_alarms,
    api_auth,
    api_board,
    api_dangers,
    api_history,
    api_kpi,
    api_ledger,
    api_suppressions,
    api_video,
    api_workflow,
    metrics,
    middleware,
    openapi,
    pages,
)
from dashboard.auth import Authenticator
from dashboard.context import AUTH, CONFIG, EXECUTOR, HUB, POOL, Config
from dashboard.db import Pool
from dashboard.errors import DashboardError
from dashboard.live import LiveHub, live_handler
from dashboard.throttle import LoginThrottle

logger = logging.getLogger(__name__)

STATIC = Path(str(resources.files("dashboard").joinpath("static")))
MAX_BODY = 64 * 1024


def _routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", pages.board_page, name="board")
    r.add_get("/login", pages.login_page, name="login")
    r.add_get(r"/alarms/{alarm_id:\d+}", pages.alarm_page, name="alarm")
    r.add_get("/history", pages.history_page, name="history")
    r.add_get("/enterprises", pages.enterprises_page, name="enterprises")
    r.add_get(r"/enterprises/{enterprise_id:\d+}", pages.enterprise_page, name="enterprise")
    r.add_get("/map", pages.map_page, name="map")
    r.add_get("/kpi", pages.kpi_page, name="kpi")
    r.add_post("/api/v1/login", api_auth.login)
    r.add_post("/api/v1/logout", api_auth.logout)
    r.add_get("/api/v1/me", api_auth.me)
    r.add_get("/api/v1/health", api_auth.health)
    r.add_get("/api/v1/alarms", api_alarms.alarms_list)
    r.add_get(r"/api/v1/alarms/{alarm_id:\d+}", api_alarms.alarm_detail)
    r.add_post(r"/api/v1/alarms/{alarm_id:\d+}/ack", api_alarms.alarm_ack)
    r.add_post(r"/api/v1/alarms/{alarm_id:\d+}/shelve", api_workflow.alarm_shelve)
    r.add_post(r"/api/v1/alarms/{alarm_id:\d+}/unshelve", api_workflow.alarm_unshelve)
    r.add_post(r"/api/v1/alarms/{alarm_id:\d+}/feedback", api_workflow.feedback_file)
    r.add_get(r"/api/v1/alarms/{alarm_id:\d+}/feedback", api_workflow.feedback_get)
    r.add_get(
        r"/api/v1/alarms/{alarm_id:\d+}/feedback/{feedback_id:\d+}/attachment",
        api_workflow.feedback_attachment,
    )
    r.add_post(r"/api/v1/alarms/{alarm_id:\d+}/review", api_workflow.alarm_review)
    r.add_get(r"/api/v1/alarms/{alarm_id:\d+}/escalation", api_workflow.alarm_escalation)
    r.add_post(r"/api/v1/alarms/{alarm_id:\d+}/hidden-dangers", api_dangers.danger_open)
    r.add_get("/api/v1/hidden-dangers", api_dangers.dangers_list)
    r.add_get(r"/api/v1/hidden-dangers/{danger_id:\d+}", api_dangers.danger_get)
    r.add_post(r"/api/v1/hidden-dangers/{danger_id:\d+}", api_dangers.danger_advance)
    r.add_post("/api/v1/suppressions", api_suppressions.suppression_declare)
    r.add_get("/api/v1/suppressions", api_suppressions.suppressions_list)
    r.add_post(r"/api/v1/suppressions/{suppression_id:\d+}/end", api_suppressions.suppression_end)
    r.add_post(r"/api/v1/tags/{tag_id:\d+}/service", api_suppressions.tag_set_service)
    r.add_get(r"/api/v1/tags/{tag_id:\d+}/trend", api_alarms.tag_trend)
    r.add_get(r"/api/v1/snapshots/{snapshot_id:\d+}", api_video.snapshot)
    r.add_get("/api/v1/cameras", api_video.cameras)
    r.add_get("/api/v1/tokens", api_admin.tokens_list)
    r.add_post("/api/v1/tokens", api_admin.token_create)
    r.add_post(r"/api/v1/tokens/{token_id:\d+}/revoke", api_admin.token_revoke)
    r.add_get("/api/v1/admin/users", api_admin.users_list)
    r.add_post("/api/v1/admin/users", api_admin.user_create)
    r.add_post(r"/api/v1/admin/users/{user_id:\d+}/active", api_admin.user_set_active)
    r.add_post(r"/api/v1/admin/users/{user_id:\d+}/password", api_admin.user_reset_password)
    r.add_post(r"/api/v1/admin/users/{user_id:\d+}/role", api_admin.user_grant_role)
    r.add_get("/api/v1/admin/tokens", api_admin.tokens_all)
    r.add_post(r"/api/v1/admin/tokens/{token_id:\d+}/revoke", api_admin.token_revoke_any)
    r.add_get("/api/v1/admin/audit", api_admin.audit_list)
    r.add_get("/api/v1/history", api_history.history)
    r.add_get("/api/v1/history.csv", api_history.history_csv)
    r.add_get("/api/v1/board/flood", api_board.board_flood)
    r.add_get("/api/v1/enterprises", api_ledger.enterprises_list)
    r.add_get(r"/api/v1/enterprises/{enterprise_id:\d+}", api_ledger.enterprise_detail)
    r.add_get("/api/v1/kpi", api_kpi.kpi)
    r.add_get("/api/v1/risk", api_kpi.risk)
    r.add_get("/api/v1/risk/history", api_kpi.risk_history)
    r.add_get("/api/v1/commitments", api_kpi.commitments_list)
    r.add_post("/api/v1/commitments", api_kpi.commitment_file)
    r.add_get("/api/v1/findings", api_kpi.findings_list)
    r.add_get("/api/v1/live", live_handler)
    r.add_get("/metrics", metrics.metrics)
    r.add_get("/api/v1/openapi.json", openapi.openapi)
    r.add_get("/favicon.ico", favicon)  # browsers ask for it even with the page's <link rel="icon">
    r.add_static("/static/", STATIC, name="static", append_version=False)


async def favicon(_request: web.Request) -> web.StreamResponse:
    """GET /favicon.ico — the SVG icon (no login needed)."""
    return web.FileResponse(STATIC / "favicon.svg", headers={"Content-Type": "image/svg+xml"})


async def _services(app: web.Application) -> AsyncIterator[None]:
    """Start the executor, the connection pool and the live listener; stop them in reverse."""
    config = app[CONFIG]
    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="hw-dashboard")
    pool = Pool(config.database_url)
    hub = LiveHub(config.database_url, pool)
    app[EXECUTOR] = executor
    app[POOL] = pool
    app[AUTH] = Authenticator(pool, executor, LoginThrottle())
    app[HUB] = hub
    hub.start()
    try:
        yield
    finally:
        await hub.stop()
        await pool.close()
        executor.shutdown(wait=True, cancel_futures=True)


async def _close_sockets(app: web.Application) -> None:
    await app[HUB].close_all()


def create_app(
    database_url: str,
    *,
    timezone: str = "Asia/Shanghai",
    secure_cookies: bool = False,
    policy: Policy = DEFAULT,
) -> web.Application:
    """The dashboard app. ``secure_cookies`` marks cookies Secure (always, when behind TLS);
    ``policy`` says who may shelve alarms, for how long, and which alarms need feedback."""
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise DashboardError(f"unknown time zone {timezone!r}") from err
    app = web.Application(
        middlewares=[metrics.count_requests, middleware.errors, middleware.sessions], client_max_size=MAX_BODY
    )
    app[metrics.STATS] = metrics.HttpStats()
    app[CONFIG] = Config(database_url, timezone, secure_cookies, policy)
    _routes(app)
    app.cleanup_ctx.append(_services)
    app.on_shutdown.append(_close_sockets)
    app.on_response_prepare.append(middleware.security_headers)
    return app


def serve(
    database_url: str,
    host: str,
    port: int,
    *,
    timezone: str = "Asia/Shanghai",
    secure_cookies: bool = False,
    policy: Policy = DEFAULT,
    access_log: bool = False,
) -> None:
    """Run the dashboard until SIGINT/SIGTERM, then close sockets, listener and pool cleanly.

    Set ``secure_cookies`` when a TLS-terminating proxy sits in front of plain HTTP.
    """
    app = create_app(database_url, timezone=timezone, secure_cookies=secure_cookies, policy=policy)
    logger.info("dashboard on http://%s:%s/ (times in %s)", host, port, timezone)
    web.run_app(app, host=host, port=port, print=None, shutdown_timeout=10.0, handle_signals=True,
                access_log=logging.getLogger("aiohttp.access") if access_log else None)  # fmt: skip
    logger.info("dashboard stopped")
