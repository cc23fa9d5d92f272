"""JSON API: login, logout, who am I, health."""

from __future__ import annotations

import logging

import psycopg
from aiohttp import web

from dashboard.auth import MAX_PASSWORD, LoginRefused, LoginThrottled
from dashboard.context import AUTH, CONFIG, HUB, POOL
from dashboard.errors import DatabaseUnavailable
from dashboard.responses import ApiError, json_body, json_response, require_session
from dashboard.sessions import COOKIE

logger = logging.getLogger(__name__)


def client_ip(request: web.Request) -> str:
    return request.remote or ""


def _set_session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    config = request.app[CONFIG]
    auth = request.app[AUTH]
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(auth.ttl.total_seconds()),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=config.secure_cookies or request.secure,
    )


async def login(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/login {username, password} → the user and its CSRF token; sets the cookie."""
    if request.content_type != "application/json":  # a cross-site form cannot send JSON
        raise ApiError(400, "bad_request", "send the credentials as application/json")
    body = await json_body(request)
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        raise ApiError(400, "bad_request", "username and password are required")
    if len(username) > 64 or len(password) > MAX_PASSWORD:
        raise ApiError(401, "bad_credentials", "wrong username or password")
    try:
        result = await request.app[AUTH].login(username, password, client_ip(request))
    except LoginThrottled as err:
        raise ApiError(429, "throttled", str(err), headers={"Retry-After": str(err.retry_after)}) from err
    except LoginRefused as err:
        raise ApiError(401, "bad_credentials", "wrong username or password") from err
    response = json_response(
        {
            "user": result.principal.public(),
            "csrf_token": result.csrf_token,
            "timezone": request.app[CONFIG].timezone,
        }
    )
    _set_session_cookie(request, response, result.token)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/logout — ends the session and closes its live sockets."""
    session = require_session(request)
    await request.app[AUTH].logout(session, client_ip(request))
    request.app[HUB].close_session(session.token_hash)
    response = json_response({"ok": True})
    response.del_cookie(COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/me — the user, its CSRF token and the time zone for display."""
    session = require_session(request)
    return json_response(
        {
            "user": session.principal.public(),
            "csrf_token": session.csrf_token,
            "timezone": request.app[CONFIG].timezone,
        }
    )


async def health(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/health (no login) — whether the database answers and live push listens."""
    live = request.app[HUB].listening.is_set()
    try:
        async with request.app[POOL].connection() as conn:
            await conn.execute("SELECT 1")
    except (DatabaseUnavailable, psycopg.Error) as err:
        logger.debug("health: database down: %s", err)
        return json_response({"status": "degraded", "database": "down", "live": live}, status=503)
    return json_response({"status": "ok", "database": "ok", "live": live})
