"""JSON API of the three administrators (三员分立) and of API tokens.

- The **system administrator** (sysadmin) keeps accounts: creates them — without a role —,
  disables and enables them, resets passwords.
- The **security administrator** (secadmin) decides what an account may do: grants a role and
  its scope (never to itself), and revokes API tokens.
- The **audit administrator** (auditor) reads the audit log, and nothing else.

None of them sees alarm data, and none can do another's job: a sysadmin cannot grant a role,
a secadmin cannot create an account or read the audit, an auditor cannot change anything.
Every act is written to the audit log in the transaction that makes it.

Any user with a login session may create API tokens for machine clients acting as that user
(same role and scope); a token cannot mint tokens.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from aiohttp import web
from psycopg.rows import dict_row

from dashboard.auth import DIVISION_PREFIX, MAX_PASSWORD, MIN_PASSWORD, USERNAME, audit, check_scope
from dashboard.context import EXECUTOR, POOL
from dashboard.errors import UserError
from dashboard.passwords import hash_password
from dashboard.queries import parse_time
from dashboard.responses import ApiError, int_param, json_body, json_response, not_found, require_session
from dashboard.scope import Principal, Role
from dashboard.sessions import Session, create_api_token

MAX_TOKEN_DAYS = 366
AUDIT_PAGE = 200
USERS_FROM = " FROM users u LEFT JOIN enterprises e ON e.id = u.enterprise_id"
USER_COLUMNS = (
    "u.id, u.username, u.display_name, u.role, u.division, u.enterprise_id, e.code AS enterprise_code,"
    " u.active, u.created_at, u.created_by, u.role_granted_by, u.role_granted_at"
)


def _require(request: web.Request, *roles: Role) -> Session:
    session = require_session(request)
    if session.principal.role not in roles:
        raise ApiError(403, "forbidden", f"this is the job of a {' or '.join(r.value for r in roles)}")
    return session


def _text(body: dict[str, Any], name: str, *, default: str | None = None, limit: int = 200) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or len(value) > limit:
        raise ApiError(400, "bad_request", f"{name} must be text of at most {limit} characters")
    return value


async def _user(request: web.Request, user_id: int) -> dict[str, Any]:
    async with request.app[POOL].connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {USER_COLUMNS}{USERS_FROM} WHERE u.id = %s",
            (user_id,),
        )
        row = await cur.fetchone()
    if row is None:
        not_found("user")
    return row


def _user_id(request: web.Request) -> int:
    return int_param(request.match_info["user_id"], "user id")


# -- system administrator: accounts -------------------------------------------------------------
async def users_list(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/admin/users — every account with its role and scope (sysadmin, secadmin)."""
    _require(request, Role.SYSADMIN, Role.SECADMIN)
    async with request.app[POOL].connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {USER_COLUMNS}{USERS_FROM} ORDER BY u.id")
        rows = await cur.fetchall()
    return json_response({"users": rows})


async def user_create(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/admin/users {username, password, display_name} — an account without a role
    (it cannot log in until a security administrator grants one). Sysadmin only."""
    session = _require(request, Role.SYSADMIN)
    body = await json_body(request)
    username = _text(body, "username", limit=64)
    password = _text(body, "password", limit=MAX_PASSWORD)
    display_name = _text(body, "display_name", default="", limit=100)
    if not USERNAME.match(username):
        raise ApiError(
            400, "bad_request", "a username is 1-64 letters, digits or _ . @ - and starts with one"
        )
    if len(password) < MIN_PASSWORD:
        raise ApiError(400, "bad_request", f"the password must have at least {MIN_PASSWORD} characters")
    loop = asyncio.get_running_loop()
    encoded = await loop.run_in_executor(request.app[EXECUTOR], hash_password, password)
    async with request.app[POOL].connection() as conn, conn.transaction():
        cur = await conn.execute("SELECT 1 FROM users WHERE username = %s", (username,))
        if await cur.fetchone() is not None:
            raise ApiError(409, "conflict", f"user {username!r} already exists")
        cur = await conn.execute(
            "INSERT INTO users (username, display_name, password_hash, role, created_by)"
            " VALUES (%s, %s, %s, NULL, %s) RETURNING id",
            (username, display_name, encoded, session.principal.username),
        )
        row = await cur.fetchone()
        assert row is not None  # noqa: S101 - INSERT … RETURNING
        await audit(
            conn, session.principal.username, "user_created", {"user": username}, request.remote or ""
        )
    return json_response({"user": await _user(request, int(str(row[0])))}, status=201)


async def user_set_active(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/admin/users/{id}/active {active} — disable (ending its sessions) or enable. Sysadmin."""
    session = _require(request, Role.SYSADMIN)
    user_id = _user_id(request)
    body = await json_body(request)
    active = body.get("active")
    if not isinstance(active, bool):
        raise ApiError(400, "bad_request", "active must be true or false")
    if user_id == session.principal.user_id:
        raise ApiError(409, "conflict", "an administrator cannot disable their own account")
    target = await _user(request, user_id)
    async with request.app[POOL].connection() as conn, conn.transaction():
        await conn.execute("UPDATE users SET active = %s WHERE id = %s", (active, user_id))
        if not active:
            await conn.execute("DELETE FROM sessions WHERE user_id = %s", (user_id,))
        action = "user_enabled" if active else "user_disabled"
        await audit(
            conn, session.principal.username, action, {"user": target["username"]}, request.remote or ""
        )
    return json_response({"user": await _user(request, user_id)})


async def user_reset_password(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/admin/users/{id}/password {password} — a new password; ends its sessions. Sysadmin."""
    session = _require(request, Role.SYSADMIN)
    user_id = _user_id(request)
    password = _text(await json_body(request), "password", limit=MAX_PASSWORD)
    if len(password) < MIN_PASSWORD:
        raise ApiError(400, "bad_request", f"the password must have at least {MIN_PASSWORD} characters")
    target = await _user(request, user_id)
    loop = asyncio.get_running_loop()
    encoded = await loop.run_in_executor(request.app[EXECUTOR], hash_password, password)
    async with request.app[POOL].connection() as conn, conn.transaction():
        await conn.execute("UPDATE users SET password_hash = %s WHERE id = %s", (encoded, user_id))
        await conn.execute("DELETE FROM sessions WHERE user_id = %s", (user_id,))
        await audit(conn, session.principal.username, "password_reset", {"user": target["username"]},
                    request.remote or "")  # fmt: skip
    return json_response({"ok": True})


# -- security administrator: roles, scopes, tokens ----------------------------------------------
async def user_grant_role(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/admin/users/{id}/role {role, division, enterprise, national} — the account's role
    and scope (never one's own). Secadmin only."""
    session = _require(request, Role.SECADMIN)
    user_id = _user_id(request)
    if user_id == session.principal.user_id:
        raise ApiError(403, "forbidden", "nobody grants a role to themselves")
    body = await json_body(request)
    try:
        role = Role(_text(body, "role", limit=32))
    except ValueError as err:
        raise ApiError(400, "bad_request", f"role must be one of {', '.join(r.value for r in Role)}") from err
    division = _text(body, "division", default="", limit=6)
    enterprise = _text(body, "enterprise", default="", limit=64) or None
    national = body.get("national", False)
    if not isinstance(national, bool) or (division and not DIVISION_PREFIX.match(division)):
        raise ApiError(400, "bad_request", "division is a prefix of 1-6 digits; national is true or false")
    try:
        check_scope(role, division, enterprise, national)
    except UserError as err:
        raise ApiError(400, "bad_request", str(err)) from err
    target = await _user(request, user_id)
    async with request.app[POOL].connection() as conn, conn.transaction():
        enterprise_id = None
        if enterprise:
            cur = await conn.execute("SELECT id FROM enterprises WHERE code = %s", (enterprise,))
            row = await cur.fetchone()
            if row is None:
                raise ApiError(400, "bad_request", f"no enterprise {enterprise!r} in the ledger")
            enterprise_id = int(str(row[0]))
        await conn.execute(
            "UPDATE users SET role = %s, division = %s, enterprise_id = %s, role_granted_by = %s,"
            " role_granted_at = now() WHERE id = %s",
            (role.value, division, enterprise_id, session.principal.username, user_id),
        )
        detail = {"user": target["username"], "role": role.value, "division": division,
                  "enterprise": enterprise, "previous": target["role"]}  # fmt: skip
        await audit(conn, session.principal.username, "role_granted", detail, request.remote or "")
    return json_response({"user": await _user(request, user_id)})


async def tokens_all(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/admin/tokens — every API token (never the token itself). Secadmin only."""
    _require(request, Role.SECADMIN)
    return json_response({"tokens": await _tokens(request, None)})


async def token_revoke_any(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/admin/tokens/{id}/revoke — revoke anyone's token. Secadmin only."""
    session = _require(request, Role.SECADMIN)
    return await _revoke(request, session, any_user=True)


# -- audit administrator -----------------------------------------------------------------------
async def audit_list(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/admin/audit?actor=&action=&from=&to=&before= — the audit log, newest first,
    200 a page (``before``: the smallest id of the previous page). Auditor only."""
    _require(request, Role.AUDITOR)
    where: list[str] = ["true"]
    params: list[object] = []
    for name in ("actor", "action"):
        value = request.query.get(name)
        if value:
            where.append(f"{name} = %s")
            params.append(value[:64])
    for name, op in (("from", ">="), ("to", "<")):
        value = request.query.get(name)
        if value:
            try:
                where.append(f"at {op} %s")
                params.append(parse_time(value))
            except ValueError as err:
                raise ApiError(400, "bad_request", f"{name}: {err}") from err
    if "before" in request.query:
        where.append("id < %s")
        params.append(int_param(request.query["before"], "before", high=2**63 - 1))
    async with request.app[POOL].connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT id, at, actor, action, detail, ip FROM audit_log WHERE {' AND '.join(where)}"
            " ORDER BY id DESC LIMIT %s",
            [*params, AUDIT_PAGE],
        )
        rows = await cur.fetchall()
    return json_response({"entries": rows, "before": rows[-1]["id"] if len(rows) == AUDIT_PAGE else None})


# -- API tokens of one's own ---------------------------------------------------------------------
async def _tokens(request: web.Request, owner: Principal | None) -> list[dict[str, Any]]:
    where, params = ("WHERE k.user_id = %s", [owner.user_id]) if owner is not None else ("", [])
    async with request.app[POOL].connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT k.id, k.name, u.username, k.created_at, k.expires_at, k.last_used_at, k.revoked_at,"
            f" k.revoked_by FROM api_tokens k JOIN users u ON u.id = k.user_id {where} ORDER BY k.id",
            params,
        )
        return await cur.fetchall()


def _login_session(request: web.Request) -> Session:
    session = require_session(request)
    if session.bearer:
        raise ApiError(403, "forbidden", "API tokens are managed from a login session, not with a token")
    return session


async def tokens_list(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/tokens — the caller's own API tokens."""
    session = _login_session(request)
    return json_response({"tokens": await _tokens(request, session.principal)})


async def token_create(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/tokens {name, days} — a token acting as the caller; the token is in this answer only."""
    session = _login_session(request)
    body = await json_body(request)
    name = _text(body, "name", limit=100).strip()
    days = body.get("days", 90)
    if not name:
        raise ApiError(400, "bad_request", "a token needs a name saying what uses it")
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_TOKEN_DAYS:
        raise ApiError(400, "bad_request", f"days must be 1 to {MAX_TOKEN_DAYS}")
    async with request.app[POOL].connection() as conn, conn.transaction():
        token_id, token = await create_api_token(conn, session.principal.user_id, name, timedelta(days=days))
        await audit(conn, session.principal.username, "token_created", {"token_id": token_id, "name": name},
                    request.remote or "")  # fmt: skip
    return json_response({"id": token_id, "name": name, "token": token, "days": days}, status=201)


async def token_revoke(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/tokens/{id}/revoke — revoke one of the caller's own tokens."""
    return await _revoke(request, _login_session(request), any_user=False)


async def _revoke(request: web.Request, session: Session, *, any_user: bool) -> web.StreamResponse:
    token_id = int_param(request.match_info["token_id"], "token id")
    async with request.app[POOL].connection() as conn, conn.transaction():
        cur = await conn.execute(
            "UPDATE api_tokens SET revoked_at = now(), revoked_by = %s"
            " WHERE id = %s AND revoked_at IS NULL AND (%s OR user_id = %s) RETURNING id",
            (session.principal.username, token_id, any_user, session.principal.user_id),
        )
        if await cur.fetchone() is None:
            not_found("live token")
        await audit(
            conn, session.principal.username, "token_revoked", {"token_id": token_id}, request.remote or ""
        )
    return json_response({"ok": True})
