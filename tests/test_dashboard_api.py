"""The dashboard's JSON API, auth, scopes and live push, against a real PostgreSQL.

aiohttp's TestServer serves the real app; clients are plain aiohttp sessions, one per user,
each with its own cookie jar. Alarms are raised the way ingest raises them, through
alarms.store.apply_transitions in a transaction.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import numpy as np
import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from alarms.states import Action, AlarmState
from alarms.store import apply_transitions
from dashboard.app import create_app
from dashboard.auth import create_user
from dashboard.context import HUB
from dashboard.errors import UserError
from dashboard.i18n import STRINGS
from dashboard.passwords import hash_password, verify_password
from dashboard.queries import condition_code
from dashboard.scope import Principal, Role, scope_sql
from hazardwatch.ledger import Plant
from ingest.ledger_sync import sync_ledger
from ingest.migrate import migrate
from ingest.storage import write_readings
from rules.types import Condition, Transition

PASSWORD = "correct horse 42"
HOME = "E330110001"  # division 330110
AWAY = "E330281002"  # division 330281
USERS: tuple[tuple[str, str, str, str | None], ...] = (
    # username, role, division, enterprise
    ("duty", "duty_officer", "33", None),
    ("county", "duty_officer", "330110", None),
    ("qiye", "enterprise", "", HOME),
    ("qiye2", "enterprise", "", AWAY),
    ("jianguan", "regulator", "33", None),
    ("admin", "sysadmin", "", None),
)


@dataclass(frozen=True)
class Seeded:
    url: str
    tags: dict[str, int]  # "ENTERPRISE/TAG" → tag id


def seed(url: str, plant: Plant) -> Seeded:
    """Schema, the sample ledger and one user per role/scope."""
    migrate(url)
    with psycopg.connect(url) as conn:
        sync_ledger(conn, plant)
        for username, role, division, enterprise in USERS:
            create_user(conn, username, PASSWORD, role, division=division, enterprise_code=enterprise)
        conn.commit()
        rows = conn.execute(
            "SELECT e.code || '/' || t.code, t.id FROM tags t JOIN enterprises e ON e.id = t.enterprise_id"
        ).fetchall()
    return Seeded(url, {str(code): int(str(tag_id)) for code, tag_id in rows})


def raise_alarm(url: str, tag_id: int, value: float = 92.0, limit: float = 90.0, level: int = 2) -> int:
    """Raise (or escalate) a HIGH alarm as ingest would; returns the alarm id."""
    ts_ms = int(time.time() * 1000)
    with psycopg.connect(url) as conn:
        with conn.transaction():
            apply_transitions(conn, [Transition(tag_id, Condition.HIGH, level, ts_ms, value, limit)])
        row = conn.execute(
            "SELECT id FROM alarms WHERE tag_id = %s AND state <> 'NORMAL'", (tag_id,)
        ).fetchone()
    assert row is not None
    return int(str(row[0]))


@pytest.fixture
def seeded(database_url: str, sample_plant: Plant) -> Seeded:
    return seed(database_url, sample_plant)


@asynccontextmanager
async def running(url: str) -> AsyncIterator[tuple[TestServer, web.Application]]:
    app = create_app(url)
    server = TestServer(app)
    await server.start_server()
    try:
        yield server, app
    finally:
        await server.close()


class User:
    """One browser-like client: its own cookies and CSRF token."""

    def __init__(self, server: TestServer) -> None:
        self.session = aiohttp.ClientSession(
            base_url=str(server.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True)
        )
        self.csrf = ""

    async def login(self, username: str, password: str = PASSWORD) -> aiohttp.ClientResponse:
        response = await self.session.post("/api/v1/login", json={"username": username, "password": password})
        if response.status == 200:
            self.csrf = (await response.json())["csrf_token"]
        return response

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(path) as response:
            return response.status, await response.json()

    async def post(
        self, path: str, body: dict[str, Any] | None = None, csrf: str | None = None
    ) -> tuple[int, Any]:
        headers = {"X-CSRF-Token": self.csrf if csrf is None else csrf}
        async with self.session.post(path, json=body or {}, headers=headers) as response:
            return response.status, await response.json()

    async def close(self) -> None:
        await self.session.close()


@asynccontextmanager
async def logged_in(server: TestServer, username: str) -> AsyncIterator[User]:
    user = User(server)
    try:
        response = await user.login(username)
        assert response.status == 200, await response.text()
        yield user
    finally:
        await user.close()


# -- passwords and users ------------------------------------------------------------------------


def test_password_hash_format_and_verify() -> None:
    encoded = hash_password("s3cret-pass")
    scheme, n, r, p, salt, key = encoded.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert salt
    assert key
    assert hash_password("s3cret-pass") != encoded  # a fresh salt every time
    assert verify_password("s3cret-pass", encoded)
    assert not verify_password("s3cret-pasS", encoded)
    assert not verify_password("s3cret-pass", "scrypt$1$1$1$AA==$AA==")
    assert not verify_password("s3cret-pass", "plain")


def test_create_user_checks_role_and_scope(seeded: Seeded) -> None:
    with psycopg.connect(seeded.url) as conn:
        bad: list[tuple[str, str, dict[str, Any]]] = [
            ("x1", "janitor", {}),
            ("x2", "enterprise", {}),  # enterprise users name their enterprise
            ("x3", "enterprise", {"enterprise_code": "E000"}),  # which must exist
            ("x4", "regulator", {}),  # officers and regulators name a division prefix
            ("x5", "duty_officer", {"division": "33x"}),
            ("x6", "sysadmin", {"division": "33"}),
            ("duty", "duty_officer", {"division": "33"}),  # exists already
            ("bad name", "duty_officer", {"division": "33"}),
        ]
        for username, role, kwargs in bad:
            with pytest.raises(UserError):
                create_user(conn, username, PASSWORD, role, **kwargs)
        with pytest.raises(UserError):
            create_user(conn, "short", "1234567", "duty_officer", division="33")
        user_id = create_user(conn, "nation", PASSWORD, "regulator", national=True, display_name="国家")
        conn.commit()
        row = conn.execute(
            "SELECT role, division, password_hash FROM users WHERE id = %s", (user_id,)
        ).fetchone()
    assert row is not None
    assert row[:2] == ("regulator", "")
    assert str(row[2]).startswith("scrypt$")
    assert PASSWORD not in str(row[2])


def test_scope_sql_and_python_agree() -> None:
    cases = [
        (Principal(1, "a", Role.ENTERPRISE, enterprise_id=7), [(7, "330110", True), (8, "330110", False)]),
        (Principal(2, "b", Role.DUTY_OFFICER, "3301"), [(1, "330110", True), (1, "330281", False)]),
        (Principal(3, "c", Role.REGULATOR, ""), [(1, "330281", True)]),
        (Principal(4, "d", Role.AUDITOR), [(1, "330110", False)]),
    ]
    for who, rows in cases:
        clause, params = scope_sql(who)
        for enterprise_id, division, expected in rows:
            assert who.can_see(enterprise_id, division) is expected
            if clause.endswith("LIKE %s"):
                assert division.startswith(str(params[0]).rstrip("%")) is expected
            elif clause == "false":
                assert not expected


# -- login, sessions, CSRF ------------------------------------------------------------------------


async def test_login_good_and_bad_password(seeded: Seeded) -> None:
    async with running(seeded.url) as (server, _):
        user = User(server)
        try:
            bad = await user.login("duty", "wrong password")
            assert bad.status == 401
            assert (await bad.json())["error"] == "bad_credentials"
            unknown = await user.login("nobody", PASSWORD)
            assert unknown.status == 401
            assert (await user.get("/api/v1/me"))[0] == 401

            good = await user.login("duty")
            assert good.status == 200
            cookie = good.headers["Set-Cookie"]
            assert "hw_session=" in cookie
            assert "HttpOnly" in cookie
            assert "SameSite=Strict" in cookie
            assert "Secure" not in cookie  # plain HTTP here; secure_cookies or TLS adds it
            status, me = await user.get("/api/v1/me")
            assert status == 200
            assert me["user"]["username"] == "duty"
            assert me["user"]["role"] == "duty_officer"
            assert me["csrf_token"] == user.csrf
            assert me["timezone"] == "Asia/Shanghai"

            assert (await user.post("/api/v1/logout", csrf=""))[0] == 403  # logout needs CSRF too
            assert (await user.post("/api/v1/logout"))[0] == 200
            assert (await user.get("/api/v1/me"))[0] == 401
        finally:
            await user.close()
    with psycopg.connect(seeded.url) as conn:
        actions = conn.execute(
            "SELECT actor, action, detail->>'reason' FROM audit_log ORDER BY id"
        ).fetchall()
        sessions = conn.execute("SELECT count(*) FROM sessions").fetchone()
    assert actions == [
        ("duty", "login_failed", "bad_password"),
        ("nobody", "login_failed", "unknown_user"),
        ("duty", "login", None),
        ("duty", "logout", None),
    ]
    assert sessions == (0,)


async def test_secure_cookies_when_asked(seeded: Seeded) -> None:
    server = TestServer(create_app(seeded.url, secure_cookies=True))
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            body = {"username": "duty", "password": PASSWORD}
            async with session.post(server.make_url("/api/v1/login"), json=body) as response:
                assert response.status == 200
                assert "Secure" in response.headers["Set-Cookie"]
    finally:
        await server.close()


async def test_session_token_is_stored_hashed(seeded: Seeded) -> None:
    async with running(seeded.url) as (server, _), logged_in(server, "qiye") as user:
        token = next(c.value for c in user.session.cookie_jar if c.key == "hw_session")
        with psycopg.connect(seeded.url) as conn:
            hashes = [bytes(r[0]) for r in conn.execute("SELECT token_hash FROM sessions").fetchall()]
        assert token.encode() not in hashes
        assert len(hashes) == 1
        assert len(hashes[0]) == 32


async def test_login_is_throttled_per_username_and_address(seeded: Seeded) -> None:
    async with running(seeded.url) as (server, _):
        user = User(server)
        try:
            for _ in range(5):
                assert (await user.login("qiye", "wrong password")).status == 401
            throttled = await user.login("qiye")  # even the right password, for now
            assert throttled.status == 429
            assert (await throttled.json())["error"] == "throttled"
            assert int(throttled.headers["Retry-After"]) > 0
            assert (await user.login("duty")).status == 200  # another username is not affected
        finally:
            await user.close()
    with psycopg.connect(seeded.url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'login_failed' AND detail->>'reason' = 'throttled'"
        ).fetchone()
    assert row == (1,)


async def test_login_refuses_form_posts(seeded: Seeded) -> None:
    async with running(seeded.url) as (server, _), aiohttp.ClientSession() as session:
        data = {"username": "duty", "password": PASSWORD}
        async with session.post(server.make_url("/api/v1/login"), data=data) as response:
            assert response.status == 400
            assert (await response.json())["error"] == "bad_request"


# -- alarms and acknowledgement -------------------------------------------------------------------


async def test_ack_requires_csrf_is_journaled_and_second_ack_conflicts(seeded: Seeded) -> None:
    alarm_id = raise_alarm(seeded.url, seeded.tags[f"{HOME}/LT101"])
    async with running(seeded.url) as (server, _), logged_in(server, "county") as user:
        path = f"/api/v1/alarms/{alarm_id}/ack"
        status, body = await user.post(path, {"comment": "x"}, csrf="")
        assert (status, body["error"]) == (403, "csrf")
        status, body = await user.post(path, {"comment": "x"}, csrf="not-the-token")
        assert (status, body["error"]) == (403, "csrf")

        before = datetime.now(UTC)
        status, body = await user.post(path, {"comment": "现场确认液位计正常"})
        assert status == 200, body
        alarm = body["alarm"]
        assert alarm["state"] == "ACKED"
        assert alarm["acked_by"] == "county"
        last = alarm["journal"][-1]
        assert (last["actor"], last["role"], last["action"]) == ("county", "duty_officer", "ack")
        assert (last["from_state"], last["to_state"], last["comment"]) == (
            "UNACK",
            "ACKED",
            "现场确认液位计正常",
        )
        at = datetime.fromisoformat(last["at"])
        assert before - timedelta(seconds=5) <= at <= datetime.now(UTC) + timedelta(seconds=5)

        status, body = await user.post(path, {})
        assert (status, body["error"]) == (409, "conflict")
        status, detail = await user.get(f"/api/v1/alarms/{alarm_id}")
        assert status == 200
        assert [j["action"] for j in detail["alarm"]["journal"]] == ["raise", "ack"]


async def test_alarm_list_is_joined_and_sorted(seeded: Seeded) -> None:
    low = raise_alarm(seeded.url, seeded.tags[f"{HOME}/WS101"], value=18.0, limit=17.2, level=1)
    high = raise_alarm(seeded.url, seeded.tags[f"{HOME}/LT101"])
    async with running(seeded.url) as (server, _), logged_in(server, "duty") as user:
        status, body = await user.get("/api/v1/alarms?state=open")
        assert status == 200
        assert body["total"] == 2
        ids = [a["id"] for a in body["alarms"]]
        priorities = [a["priority"] for a in body["alarms"]]
        assert priorities == sorted(priorities)
        assert set(ids) == {low, high}
        first = next(a for a in body["alarms"] if a["id"] == high)
        assert first["tag_code"] == "LT101"
        assert first["unit"] == "%"
        assert first["hh"] == 90
        assert first["condition_code"] == "HH"
        assert first["priority"] == 1
        assert first["enterprise_code"] == HOME
        assert first["division"] == "330110"
        assert first["hazard_source_name"] == "液化石油气球罐区"
        assert first["hazard_grade"] in (1, 2, 3, 4)
        assert first["equipment_code"] == "T101"
        assert (await user.get("/api/v1/alarms?state=bogus"))[0] == 400
        assert (await user.get("/api/v1/alarms?limit=0"))[0] == 400
        status, page = await user.get("/api/v1/alarms?state=all&limit=1&offset=1")
        assert status == 200
        assert len(page["alarms"]) == 1
        assert page["total"] == 2


async def test_enterprise_user_cannot_reach_another_enterprise(seeded: Seeded) -> None:
    mine = raise_alarm(seeded.url, seeded.tags[f"{HOME}/LT101"])
    theirs = raise_alarm(seeded.url, seeded.tags[f"{AWAY}/LT301"])
    async with running(seeded.url) as (server, _), logged_in(server, "qiye") as user:
        status, body = await user.get("/api/v1/alarms?state=all")
        assert [a["id"] for a in body["alarms"]] == [mine]
        missing_status, missing = await user.get("/api/v1/alarms/987654")
        status, body = await user.get(f"/api/v1/alarms/{theirs}")
        assert (
            (status, body)
            == (missing_status, missing)
            == (404, {"error": "not_found", "message": "no such alarm"})
        )
        status, body = await user.post(f"/api/v1/alarms/{theirs}/ack", {})
        assert (status, body["error"]) == (404, "not_found")
        status, _ = await user.get(f"/api/v1/tags/{seeded.tags[f'{AWAY}/LT301']}/trend")
        assert status == 404
        # a page that does not exist says so in the user's language, with the way back
        for path, words in (("/no-such-page", "页面不存在"), ("/no-such-page?lang=en", "Page not found")):
            async with user.session.get(path) as response:
                page = await response.text()
                assert (response.status, response.content_type) == (404, "text/html"), path
                assert words in page
                assert 'href="/"' in page
        status, body = await user.get("/api/v1/no-such-thing")
        assert (status, body["error"]) == (404, "not_found")  # the API keeps answering JSON
        status, body = await user.post(f"/api/v1/alarms/{mine}/ack", {})
        assert status == 200
        assert body["alarm"]["acked_by"] == "qiye"
    with psycopg.connect(seeded.url) as conn:
        assert conn.execute("SELECT state FROM alarms WHERE id = %s", (theirs,)).fetchone() == ("UNACK",)


async def test_county_officer_sees_only_its_county(seeded: Seeded) -> None:
    home = raise_alarm(seeded.url, seeded.tags[f"{HOME}/LT101"])
    away = raise_alarm(seeded.url, seeded.tags[f"{AWAY}/LT301"])
    async with running(seeded.url) as (server, _):
        async with logged_in(server, "county") as county:
            _, body = await county.get("/api/v1/alarms")
            assert [a["id"] for a in body["alarms"]] == [home]
            assert (await county.get(f"/api/v1/alarms/{away}"))[0] == 404
        async with logged_in(server, "duty") as province:
            _, body = await province.get("/api/v1/alarms")
            assert {a["id"] for a in body["alarms"]} == {home, away}


async def test_regulator_reads_but_cannot_acknowledge(seeded: Seeded) -> None:
    alarm_id = raise_alarm(seeded.url, seeded.tags[f"{AWAY}/LT301"])
    async with running(seeded.url) as (server, _), logged_in(server, "jianguan") as user:
        assert (await user.get(f"/api/v1/alarms/{alarm_id}"))[0] == 200
        status, body = await user.post(f"/api/v1/alarms/{alarm_id}/ack", {})
        assert (status, body["error"]) == (403, "forbidden")
        status, _ = await user.post("/api/v1/alarms/987654/ack", {})
        assert status == 404  # no id guessing: a missing alarm is not "forbidden"


async def test_administrators_see_no_alarms(seeded: Seeded) -> None:
    alarm_id = raise_alarm(seeded.url, seeded.tags[f"{HOME}/LT101"])
    async with running(seeded.url) as (server, _), logged_in(server, "admin") as user:
        status, body = await user.get("/api/v1/alarms?state=all")
        assert (status, body["alarms"], body["total"]) == (200, [], 0)
        assert (await user.get(f"/api/v1/alarms/{alarm_id}"))[0] == 404


async def test_unauthenticated_api_answers_401(seeded: Seeded) -> None:
    async with running(seeded.url) as (server, _), aiohttp.ClientSession() as session:
        for path in (
            "/api/v1/alarms",
            "/api/v1/alarms/1",
            "/api/v1/me",
            "/api/v1/tags/1/trend",
            "/api/v1/live",
        ):
            async with session.get(server.make_url(path)) as response:
                assert response.status == 401, path
                assert (await response.json())["error"] == "unauthenticated"
        async with session.post(server.make_url("/api/v1/alarms/1/ack"), json={}) as response:
            assert response.status == 401


# -- trend, health, headers, pages ----------------------------------------------------------------


async def test_trend_returns_points_and_limits(seeded: Seeded) -> None:
    tag_id = seeded.tags[f"{HOME}/LT101"]
    now = datetime.now(UTC).replace(microsecond=0)
    stamps = [now - timedelta(minutes=i) for i in range(10)] + [now - timedelta(minutes=45)]
    with psycopg.connect(seeded.url) as conn, conn.transaction():  # as ingest writes: rollups too
        conn.execute("SELECT hw_ensure_partitions(%s, %s)", (min(stamps).date(), max(stamps).date()))
        write_readings(
            conn, "plain",
            np.array([int(t.timestamp() * 1000) for t in stamps], dtype=np.int64),
            np.full(11, tag_id, dtype=np.int32),
            np.array([80.0 + i for i in range(10)] + [np.nan]),
            np.array([0] * 10 + [3], dtype=np.int16),
        )  # fmt: skip
    async with running(seeded.url) as (server, _), logged_in(server, "qiye") as user:
        status, body = await user.get(f"/api/v1/tags/{tag_id}/trend")
        assert status == 200
        assert len(body["points"]) == 10  # the last 30 minutes by default
        ts = [p[0] for p in body["points"]]
        assert ts == sorted(ts)
        assert body["points"][-1][1:3] == [80.0, 0]
        assert body["limits"] == {"ll": 10, "l": 15, "h": 85, "hh": 90}
        assert body["range"] == [0, 100]
        start = (now - timedelta(hours=1)).isoformat()
        status, body = await user.get(f"/api/v1/tags/{tag_id}/trend?from={start.replace('+', '%2B')}")
        assert status == 200
        assert len(body["points"]) == 11
        assert body["points"][0][1:3] == [None, 3]
        start = (now - timedelta(hours=8)).isoformat()  # longer spans come from the minute rollups
        status, body = await user.get(f"/api/v1/tags/{tag_id}/trend?from={start}")  # '+' arrives as ' '
        assert status == 200
        assert body["bucket_s"] == 60
        assert [p[1] for p in body["points"]] == [None, *[80.0 + i for i in reversed(range(10))]]
        assert body["points"][0][2] == 2  # a minute without a value
        status, body = await user.get(f"/api/v1/tags/{tag_id}/trend?from=yesterday")
        assert (status, body["error"]) == (400, "bad_request")


async def test_health_and_security_headers(seeded: Seeded) -> None:
    async with running(seeded.url) as (server, _), aiohttp.ClientSession() as session:
        async with session.get(server.make_url("/api/v1/health")) as response:
            assert response.status == 200
            assert (await response.json())["database"] == "ok"
            assert response.headers["Cache-Control"] == "no-store"
            assert response.headers["X-Frame-Options"] == "DENY"
        async with session.get(server.make_url("/login")) as response:
            assert response.status == 200
            csp = response.headers["Content-Security-Policy"]
            assert "default-src 'self'" in csp
            assert "script-src 'self'" in csp
            assert "frame-ancestors 'none'" in csp
            page = await response.text()
            assert "登录" in page
            assert 'lang="zh-CN"' in page
        async with session.get(server.make_url("/static/board.js")) as response:
            assert response.status == 200
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        async with session.get(server.make_url("/favicon.ico")) as response:  # no login needed, no 404
            assert response.status == 200
            assert response.headers["Content-Type"] == "image/svg+xml"
            assert (await response.text()).startswith("<svg")


async def test_pages_redirect_and_switch_language(seeded: Seeded) -> None:
    async with running(seeded.url) as (server, _):
        user = User(server)
        try:
            async with user.session.get("/", allow_redirects=False) as response:
                assert (response.status, response.headers["Location"]) == (302, "/login")
            async with user.session.get("/login?lang=en") as response:
                page = await response.text()
                assert "Sign in" in page
                assert 'lang="en"' in page
            async with user.session.get("/login") as response:  # remembered in a cookie
                assert "Sign in" in await response.text()
            assert (await user.login("duty")).status == 200
            async with user.session.get("/") as response:
                page = await response.text()
                assert response.status == 200
                assert "Live alarms" in page
                assert user.csrf in page
            async with user.session.get("/?lang=zh") as response:
                assert "实时报警" in await response.text()
        finally:
            await user.close()


# -- live push ------------------------------------------------------------------------------------


async def _next_alarm(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10.0) -> dict[str, Any]:
    """The next "alarm" message (skipping hello/resync), within a deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        message: dict[str, Any] = json.loads(await ws.receive_str(timeout=max(remaining, 0.01)))
        if message["type"] == "alarm":
            return message


async def _wait_listening(app: web.Application) -> None:
    await asyncio.wait_for(app[HUB].listening.wait(), timeout=10)


async def test_live_socket_receives_new_alarms_in_scope_only(seeded: Seeded) -> None:
    async with running(seeded.url) as (server, app):
        await _wait_listening(app)
        async with logged_in(server, "duty") as province, logged_in(server, "county") as county:
            ws_province = await province.session.ws_connect("/api/v1/live")
            ws_county = await county.session.ws_connect("/api/v1/live")
            try:
                for ws in (ws_province, ws_county):
                    assert json.loads(await ws.receive_str(timeout=5))["type"] == "hello"
                away = raise_alarm(seeded.url, seeded.tags[f"{AWAY}/LT301"])
                message = await _next_alarm(ws_province)
                assert (message["action"], message["alarm"]["id"]) == ("raise", away)
                assert message["alarm"]["tag_code"] == "LT301"
                assert message["alarm"]["state"] == "UNACK"

                home = raise_alarm(seeded.url, seeded.tags[f"{HOME}/LT101"])
                # the county socket's first alarm is its own county's: the other one never came
                message = await _next_alarm(ws_county)
                assert message["alarm"]["id"] == home
                assert (await _next_alarm(ws_province))["alarm"]["id"] == home

                status, _ = await county.post(f"/api/v1/alarms/{home}/ack", {})
                assert status == 200
                message = await _next_alarm(ws_county)
                assert (message["action"], message["alarm"]["state"]) == ("ack", "ACKED")
            finally:
                await ws_province.close()
                await ws_county.close()


async def test_live_listener_reconnects_and_asks_sockets_to_resync(seeded: Seeded) -> None:
    async with running(seeded.url) as (server, app):
        await _wait_listening(app)
        hub = app[HUB]
        async with logged_in(server, "duty") as user:
            ws = await user.session.ws_connect("/api/v1/live")
            try:
                assert json.loads(await ws.receive_str(timeout=5))["type"] == "hello"
                old_pid = hub.backend_pid
                with psycopg.connect(seeded.url, autocommit=True) as conn:
                    conn.execute("SELECT pg_terminate_backend(%s)", (old_pid,))
                message = json.loads(await ws.receive_str(timeout=15))
                assert message["type"] == "resync"
                assert hub.listening.is_set()
                assert hub.backend_pid != old_pid
                alarm_id = raise_alarm(seeded.url, seeded.tags[f"{HOME}/PT101"], value=1.8, limit=1.77)
                assert (await _next_alarm(ws))["alarm"]["id"] == alarm_id
            finally:
                await ws.close()


async def test_logout_closes_the_live_socket(seeded: Seeded) -> None:
    async with running(seeded.url) as (server, app):
        await _wait_listening(app)
        async with logged_in(server, "qiye") as user:
            ws = await user.session.ws_connect("/api/v1/live")
            assert json.loads(await ws.receive_str(timeout=5))["type"] == "hello"
            assert (await user.post("/api/v1/logout"))[0] == 200
            message = await ws.receive(timeout=5)
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            await ws.close()


def test_every_condition_has_a_code_and_a_name_in_both_languages() -> None:
    codes = {condition_code(c.value, level) for c in Condition for level in (1, 2)}
    assert codes == {"H", "HH", "L", "LL", "FAULT", "ROC", "FROZEN", "PREDICT", "STALE", "VOTE", "SOURCE",
                     "GATEWAY_OFFLINE", "DEVICE_COMM", "CLOCK_AHEAD"}  # fmt: skip
    states = {f"state_{s.value}" for s in AlarmState}
    for strings in STRINGS.values():
        assert all(f"cond_{code}" in strings for code in codes)
        assert states <= strings.keys()
        assert {f"act_{action.value}" for action in Action} | {"act_escalation"} <= strings.keys()
