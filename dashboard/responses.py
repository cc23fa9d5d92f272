"""JSON responses and errors, and the session of a request."""

from __future__ import annotations

import functools
import json
from datetime import UTC, date, datetime
from typing import Any, NoReturn

from aiohttp import web

from dashboard.scope import Principal
from dashboard.sessions import Session

SESSION_KEY = web.RequestKey("session", Session)
NO_STORE = {"Cache-Control": "no-store"}


class ApiError(Exception):
    """Answered as ``{"error": code, "message": ...}`` with the HTTP status."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return None
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


dumps = functools.partial(json.dumps, default=_default, ensure_ascii=False, allow_nan=False)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps, headers=NO_STORE)


def error_response(err: ApiError) -> web.Response:
    response = json_response({"error": err.code, "message": err.message}, status=err.status)
    response.headers.update(err.headers)
    return response


def session_of(request: web.Request) -> Session | None:
    return request.get(SESSION_KEY)


def require_session(request: web.Request) -> Session:
    session = session_of(request)
    if session is None:
        raise ApiError(401, "unauthenticated", "log in first")
    return session


def require_principal(request: web.Request) -> Principal:
    return require_session(request).principal


def not_found(what: str) -> NoReturn:
    raise ApiError(404, "not_found", f"no such {what}")


def int_param(value: str, name: str, *, low: int = 0, high: int = 2**31 - 1) -> int:
    try:
        number = int(value)
    except ValueError as err:
        raise ApiError(400, "bad_request", f"{name} must be an integer") from err
    if not low <= number <= high:
        raise ApiError(400, "bad_request", f"{name} must be between {low} and {high}")
    return number


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; an empty body is ``{}``."""
    if not request.can_read_body:
        return {}
    if request.content_type != "application/json":
        raise ApiError(400, "bad_request", "send the body as application/json")
    try:
        body = await request.json()
    except ValueError as err:
        raise ApiError(400, "bad_request", "the body is not valid JSON") from err
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    return body
