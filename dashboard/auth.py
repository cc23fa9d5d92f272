"""Users, logins and the audit log.

``create_user`` is synchronous (the CLI's ``hazardwatch user add`` calls it); everything the
web app does is async, and the scrypt work runs on the app's executor, never on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import re
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import timedelta

import psycopg
from psycopg.types.json import Jsonb

from dashboard.db import AsyncConn, Pool
from dashboard.errors import UserError
from dashboard.passwords import dummy_hash, hash_password, verify_password
from dashboard.scope import ADMIN_ROLES, REGIONAL_ROLES, Principal, Role
from dashboard.sessions import DEFAULT_TTL, Session, create_session, delete_session, resolve_session
from dashboard.throttle import LoginThrottle

logger = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[object, ...]]
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
DIVISION_PREFIX = re.compile(r"^[0-9]{1,6}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024


def check_scope(role: Role, division: str, enterprise_code: str | None, national: bool) -> None:
    if role == Role.ENTERPRISE:
        if not enterprise_code:
            raise UserError("an enterprise user must name its enterprise (enterprise code)")
        if division:
            raise UserError("an enterprise user's scope is its enterprise; give no division")
    elif enterprise_code:
        raise UserError(f"a {role.value} does not belong to an enterprise")
    if role in REGIONAL_ROLES:
        if national and division:
            raise UserError("a national user has no division prefix")
        if not national and not DIVISION_PREFIX.match(division):
            raise UserError(
                f"a {role.value} needs a division prefix of 1-6 digits (e.g. 33, 3301, 330110)"
                " or national scope"
            )
    elif role in ADMIN_ROLES and division:
        raise UserError(f"a {role.value} has no region scope")


def create_user(
    conn: Conn,
    username: str,
    password: str,
    role: str,
    *,
    division: str = "",
    enterprise_code: str | None = None,
    display_name: str = "",
    national: bool = False,
) -> int:
    """Create a dashboard user; returns its id. The caller commits.

    Roles: duty_officer and regulator see the enterprises whose division code starts with
    ``division`` (``national=True`` with no division: the whole country); an enterprise user
    sees only ``enterprise_code``; sysadmin, secadmin and auditor see no alarms.
    """
    try:
        role_ = Role(role)
    except ValueError as err:
        raise UserError(f"unknown role {role!r}; one of {', '.join(r.value for r in Role)}") from err
    if not USERNAME.match(username):
        raise UserError("a username is 1-64 letters, digits or _ . @ - and starts with a letter or digit")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UserError(f"the password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    check_scope(role_, division, enterprise_code, national)
    encoded = hash_password(password)
    with conn.transaction():
        enterprise_id: int | None = None
        if enterprise_code:
            row = conn.execute("SELECT id FROM enterprises WHERE code = %s", (enterprise_code,)).fetchone()
            if row is None:
                raise UserError(f"no enterprise with code {enterprise_code!r} in the ledger")
            enterprise_id = int(str(row[0]))
        if conn.execute("SELECT 1 FROM users WHERE username = %s", (username,)).fetchone():
            raise UserError(f"user {username!r} already exists")
        row = conn.execute(
            "INSERT INTO users (username, display_name, password_hash, role, division, enterprise_id)"
            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (username, display_name, encoded, role_.value, division, enterprise_id),
        ).fetchone()
    assert row is not None  # noqa: S101 - INSERT … RETURNING
    logger.info("created user %s (%s)", username, role_.value)
    return int(str(row[0]))


async def audit(
    conn: AsyncConn, actor: str, action: str, detail: dict[str, object] | None = None, ip: str = ""
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (actor, action, detail, ip) VALUES (%s, %s, %s, %s)",
        (actor, action, Jsonb(detail or {}), ip),
    )


class LoginRefused(Exception):
    """Wrong username or password (the two are never told apart)."""


class LoginThrottled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class LoginResult:
    principal: Principal
    token: str
    csrf_token: str


class Authenticator:
    """Logs users in and out, with throttling and an audit row for every attempt."""

    def __init__(
        self, pool: Pool, executor: Executor, throttle: LoginThrottle, ttl: timedelta = DEFAULT_TTL
    ) -> None:
        self.pool = pool
        self.executor = executor
        self.throttle = throttle
        self.ttl = ttl

    async def _verify(self, password: str, encoded: str) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, verify_password, password, encoded)

    async def login(self, username: str, password: str, ip: str) -> LoginResult:
        key = self.throttle.key(username, ip)
        if self.throttle.blocked(key):
            async with self.pool.connection() as conn:
                await audit(conn, username[:64], "login_failed", {"reason": "throttled"}, ip)
            raise LoginThrottled(self.throttle.retry_after(key))
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id, password_hash, active, role FROM users WHERE username = %s", (username,)
            )
            row = await cur.fetchone()
        encoded = str(row[1]) if row is not None else dummy_hash()
        ok = await self._verify(password[:MAX_PASSWORD], encoded)
        reason = (
            "unknown_user"
            if row is None
            else "inactive"
            if not row[2]
            else "no_role"  # created by a system administrator, not yet granted a role
            if row[3] is None
            else None
        )
        if not ok or reason is not None:
            self.throttle.failure(key)
            async with self.pool.connection() as conn:
                await audit(conn, username[:64], "login_failed", {"reason": reason or "bad_password"}, ip)
            raise LoginRefused("wrong username or password")
        self.throttle.success(key)
        assert row is not None  # noqa: S101 - ok is False for an unknown user
        async with self.pool.connection() as conn:
            token, csrf = await create_session(conn, int(str(row[0])), self.ttl)
            await audit(conn, username, "login", {}, ip)
            session = await resolve_session(conn, token)
        assert session is not None  # noqa: S101 - just created
        return LoginResult(session.principal, token, csrf)

    async def logout(self, session: Session, ip: str) -> None:
        async with self.pool.connection() as conn:
            await delete_session(conn, session.token_hash)
            await audit(conn, session.principal.username, "logout", {}, ip)
