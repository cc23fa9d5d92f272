"""Running the alarm workflows (alarms.store, synchronous psycopg) from request handlers.

Each call runs on the app's executor with its own connection and transaction; the store
locks the rows it changes and journals the change, and the journal's trigger announces it
on ``hw_alarms`` at commit, so the live board follows without anything more here. The
store's refusals become API errors: :class:`InvalidTransition` is 409, :class:`AlarmNotFound`
is 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from aiohttp import web

from alarms.errors import AlarmNotFound, InvalidTransition
from alarms.policy import Policy
from alarms.store import Actor, Conn
from dashboard.context import CONFIG, EXECUTOR
from dashboard.responses import ApiError, not_found
from dashboard.scope import Principal

T = TypeVar("T")
MAX_TEXT = 2000
MAX_SHORT = 500


def actor_of(who: Principal) -> Actor:
    """The journal's who and role for a principal."""
    return Actor(who.username, who.role.value)


def policy_of(request: web.Request) -> Policy:
    return request.app[CONFIG].policy


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


async def run_store(request: web.Request, what: str, call: Callable[[Conn], T]) -> T:
    """Run ``call`` on a fresh connection on the executor; map the store's refusals.

    ``what`` names the resource for a 404 ("alarm", "tag", …)."""
    url = request.app[CONFIG].database_url

    def run() -> T:
        with psycopg.connect(url, connect_timeout=5) as conn:
            return call(conn)

    try:
        return await asyncio.get_running_loop().run_in_executor(request.app[EXECUTOR], run)
    except InvalidTransition as err:
        raise ApiError(409, "conflict", str(err)) from err
    except AlarmNotFound:
        not_found(what)


# -- request fields -------------------------------------------------------------------------------
def text_field(body: dict[str, Any], name: str, *, required: bool, max_len: int = MAX_SHORT) -> str:
    """A text field, stripped; a required one may not be blank."""
    value = body.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str) or len(value) > max_len:
        raise bad_request(f"{name} must be text of at most {max_len} characters")
    if required and not value.strip():
        raise bad_request(f"{name} is required")
    return value.strip()


def bool_field(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if not isinstance(value, bool):
        raise bad_request(f"{name} must be true or false")
    return value


def optional_id(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**31 - 1:
        raise bad_request(f"{name} must be a positive integer")
    return value


def required_id(body: dict[str, Any], name: str) -> int:
    value = optional_id(body, name)
    if value is None:
        raise bad_request(f"{name} is required")
    return value


def time_field(body: dict[str, Any], name: str) -> datetime | None:
    """An ISO 8601 time with its offset (``Z`` or ``+08:00``), as UTC; None when absent."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise bad_request(f"{name} must be an ISO 8601 time with an offset")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as err:
        raise bad_request(f"{name}: {value!r} is not an ISO 8601 time") from err
    if moment.tzinfo is None:
        raise bad_request(f"{name}: {value!r} has no offset (add Z or +08:00)")
    return moment.astimezone(UTC)


def choice(body: dict[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    value = body.get(name)
    if value not in allowed:
        raise bad_request(f"{name} must be one of {', '.join(allowed)}")
    return str(value)
