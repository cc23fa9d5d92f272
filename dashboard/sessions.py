"""Sessions in the database, keyed by the SHA-256 of a random token (the cookie holds the token)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from dashboard.db import AsyncConn
from dashboard.scope import Principal, Role

COOKIE = "hw_session"
DEFAULT_TTL = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in browser (cookie + CSRF token) or a machine client (``bearer``: an API token,
    which no page can send on its own, so it needs no CSRF token)."""

    principal: Principal
    csrf_token: str
    token_hash: bytes
    bearer: bool = False


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


async def create_session(conn: AsyncConn, user_id: int, ttl: timedelta = DEFAULT_TTL) -> tuple[str, str]:
    """A new session for the user; returns (cookie token, CSRF token)."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    async with conn.transaction():
        await conn.execute("DELETE FROM sessions WHERE expires_at < now()")
        await conn.execute(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at)"
            " VALUES (%s, %s, %s, now() + %s)",
            (token_hash(token), user_id, csrf, ttl),
        )
    return token, csrf


async def resolve_session(conn: AsyncConn, token: str) -> Session | None:
    """The live session of an active user for this token, or None."""
    if not token or len(token) > 256:
        return None
    digest = token_hash(token)
    cur = await conn.execute(
        "SELECT u.id, u.username, u.role, u.division, u.enterprise_id, u.display_name, s.csrf_token"
        " FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.token_hash = %s AND s.expires_at > now() AND u.active AND u.role IS NOT NULL",
        (digest,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return Session(_principal(row[:6]), str(row[6]), digest)


def _principal(row: tuple[object, ...]) -> Principal:
    """The principal of a (id, username, role, division, enterprise_id, display_name) row."""
    user_id, username, role, division, enterprise_id, display_name = row
    return Principal(
        user_id=int(str(user_id)),
        username=str(username),
        role=Role(str(role)),
        division=str(division),
        enterprise_id=None if enterprise_id is None else int(str(enterprise_id)),
        display_name=str(display_name),
    )


async def delete_session(conn: AsyncConn, digest: bytes) -> None:
    await conn.execute("DELETE FROM sessions WHERE token_hash = %s", (digest,))


TOKEN_PREFIX = "hwt_"  # noqa: S105 - a prefix that marks API tokens, not a secret


async def create_api_token(conn: AsyncConn, user_id: int, name: str, ttl: timedelta) -> tuple[int, str]:
    """A new API token of a user; returns (token id, the token — shown once, stored hashed)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    cur = await conn.execute(
        "INSERT INTO api_tokens (token_hash, user_id, name, expires_at) VALUES (%s, %s, %s, now() + %s)"
        " RETURNING id",
        (token_hash(token), user_id, name, ttl),
    )
    row = await cur.fetchone()
    assert row is not None  # noqa: S101 - INSERT … RETURNING
    return int(str(row[0])), token


async def resolve_api_token(conn: AsyncConn, token: str) -> Session | None:
    """The session a live, unrevoked token of an active user with a role stands for, or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 256:
        return None
    digest = token_hash(token)
    cur = await conn.execute(
        "UPDATE api_tokens k SET last_used_at = now() FROM users u"
        " WHERE k.token_hash = %s AND u.id = k.user_id AND k.revoked_at IS NULL AND k.expires_at > now()"
        " AND u.active AND u.role IS NOT NULL"
        " RETURNING u.id, u.username, u.role, u.division, u.enterprise_id, u.display_name",
        (digest,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return Session(_principal(row), "", digest, bearer=True)
