"""Cross-cutting request handling: JSON errors, the session, CSRF, security headers."""

from __future__ import annotations

import hmac
import html
import logging

import psycopg
from aiohttp import web
from aiohttp.typedefs import Handler

from dashboard.context import POOL
from dashboard.errors import DatabaseUnavailable
from dashboard.i18n import request_lang, strings
from dashboard.responses import NO_STORE, SESSION_KEY, ApiError, error_response
from dashboard.sessions import COOKIE, resolve_api_token, resolve_session

logger = logging.getLogger(__name__)

API = "/api/"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_EXEMPT = frozenset({"/api/v1/login"})  # no session yet; JSON-only, which a form cannot send
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def _page_not_found(request: web.Request) -> web.Response:
    """A page that does not exist, said in the user's language, with the way back to the board."""
    words = strings(request_lang(request)[0])
    title, back = html.escape(words["page_not_found"]), html.escape(words["back_to_board"])
    body = (
        f'<!doctype html><html lang="{html.escape(words["html_lang"])}"><head><meta charset="utf-8">'
        f"<title>{title}</title></head><body><h1>{title}</h1>"
        f'<p><a href="/">{back}</a></p></body></html>'
    )
    return web.Response(
        status=404, text=body, content_type="text/html", headers={"Cache-Control": "no-store"}
    )


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every API failure is ``{"error": code, "message": ...}``; pages keep aiohttp's errors."""
    is_api = request.path.startswith(API)
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err)
    except (DatabaseUnavailable, psycopg.OperationalError) as err:
        logger.warning("%s %s: database unavailable: %s", request.method, request.path, err)
        return error_response(ApiError(503, "unavailable", "the database is unavailable; retry shortly"))
    except web.HTTPException as err:
        if err.status == 404 and not is_api and request.method in SAFE_METHODS:
            return _page_not_found(request)
        if not is_api or err.status < 400:
            raise
        code = HTTP_CODES.get(err.status, "error")
        return error_response(ApiError(err.status, code, err.reason))
    except Exception:
        logger.exception("%s %s failed", request.method, request.path)
        if not is_api:
            raise
        return error_response(ApiError(500, "internal", "internal error"))


@web.middleware
async def sessions(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve the API token (``Authorization: Bearer``) or the session cookie; demand the
    session's CSRF token on a cookie session's state-changing API calls."""
    if request.path.startswith("/static/"):
        return await handler(request)
    authorization = request.headers.get("Authorization", "")
    token = request.cookies.get(COOKIE)
    session = None
    if authorization:
        scheme, _, bearer = authorization.partition(" ")
        if scheme.lower() != "bearer" or not bearer.strip():
            raise ApiError(401, "unauthenticated", "Authorization must be 'Bearer <API token>'")
        async with request.app[POOL].connection() as conn:
            session = await resolve_api_token(conn, bearer.strip())
        if session is None:
            raise ApiError(401, "unauthenticated", "the API token is unknown, expired or revoked")
        request[SESSION_KEY] = session
    elif token:
        async with request.app[POOL].connection() as conn:
            session = await resolve_session(conn, token)
        if session is not None:
            request[SESSION_KEY] = session
    if (
        request.method not in SAFE_METHODS
        and request.path.startswith(API)
        and request.path not in CSRF_EXEMPT
        and not (session is not None and session.bearer)
    ):
        if session is None:
            raise ApiError(401, "unauthenticated", "log in first")
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
            raise ApiError(403, "csrf", f"missing or wrong {CSRF_HEADER} header")
    return await handler(request)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the same headers on pages, API, static files and errors."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith(API):
        response.headers["Cache-Control"] = NO_STORE["Cache-Control"]
    elif request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-cache")
