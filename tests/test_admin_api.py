"""The three administrators cannot do each other's jobs; API tokens act as their user, in scope."""

from __future__ import annotations

from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp.test_utils import TestServer

from dashboard.auth import create_user
from hazardwatch.ledger import Plant
from tests.test_dashboard_api import AWAY, HOME, PASSWORD, Seeded, User, logged_in, raise_alarm, running, seed

ADMIN_ENDPOINTS: list[tuple[str, str, dict[str, Any], str]] = [
    # method, path, body, the one role allowed ("sysadmin+secadmin" for the shared read)
    ("GET", "/api/v1/admin/users", {}, "sysadmin+secadmin"),
    ("POST", "/api/v1/admin/users", {"username": "probe", "password": "long enough 1"}, "sysadmin"),
    ("POST", "/api/v1/admin/users/{victim}/active", {"active": False}, "sysadmin"),
    ("POST", "/api/v1/admin/users/{victim}/password", {"password": "another one 2"}, "sysadmin"),
    ("POST", "/api/v1/admin/users/{victim}/role", {"role": "regulator", "division": "3301"}, "secadmin"),
    ("GET", "/api/v1/admin/tokens", {}, "secadmin"),
    ("GET", "/api/v1/admin/audit", {}, "auditor"),
]
ROLES = ("duty", "qiye", "jianguan", "admin", "sec", "audit")
ROLE_OF = {"duty": "duty_officer", "qiye": "enterprise", "jianguan": "regulator", "admin": "sysadmin",
           "sec": "secadmin", "audit": "auditor"}  # fmt: skip


@pytest.fixture
def seeded(database_url: str, sample_plant: Plant) -> Seeded:
    seeded = seed(database_url, sample_plant)
    with psycopg.connect(database_url) as conn:
        create_user(conn, "sec", PASSWORD, "secadmin")
        create_user(conn, "audit", PASSWORD, "auditor")
        create_user(conn, "victim", PASSWORD, "duty_officer", division="33")
        conn.commit()
    return seeded


def user_id(url: str, username: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT id FROM users WHERE username = %s", (username,)).fetchone()
    assert row is not None
    return int(str(row[0]))


async def call(user: User, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    return await (user.get(path) if method == "GET" else user.post(path, body))


@pytest.mark.parametrize("username", ROLES)
async def test_each_admin_endpoint_answers_only_its_own_administrator(seeded: Seeded, username: str) -> None:
    victim = user_id(seeded.url, "victim")
    async with running(seeded.url) as (server, _), logged_in(server, username) as user:
        for method, template, body, allowed in ADMIN_ENDPOINTS:
            path = template.format(victim=victim)
            status, answer = await call(user, method, path, body)
            if ROLE_OF[username] in allowed.split("+"):
                assert status in (200, 201), (username, path, answer)
            else:
                assert (status, answer["error"]) == (403, "forbidden"), (username, path)
        anonymous = User(server)
        try:
            for method, template, body, _ in ADMIN_ENDPOINTS:
                assert (await call(anonymous, method, template.format(victim=victim), body))[0] == 401
        finally:
            await anonymous.close()


async def test_an_account_needs_a_role_from_the_security_administrator_before_it_logs_in(
    seeded: Seeded,
) -> None:
    async with running(seeded.url) as (server, _):
        async with logged_in(server, "admin") as admin:
            status, body = await admin.post("/api/v1/admin/users", {"username": "wang", "password": PASSWORD,
                                                                   "display_name": "王工"})  # fmt: skip
            assert status == 201
            assert body["user"]["role"] is None
            assert body["user"]["created_by"] == "admin"
            wang = body["user"]["id"]
            assert (await admin.post("/api/v1/admin/users", {"username": "wang", "password": PASSWORD}))[
                0
            ] == 409
            # a system administrator cannot grant it a role
            status, _ = await admin.post(
                f"/api/v1/admin/users/{wang}/role", {"role": "enterprise", "enterprise": HOME}
            )
            assert status == 403
        newbie = User(server)
        try:
            assert (await newbie.login("wang")).status == 401  # no role yet: it cannot log in
        finally:
            await newbie.close()
        async with logged_in(server, "sec") as sec:
            bad = [{"role": "enterprise"}, {"role": "enterprise", "enterprise": "E000"},
                   {"role": "duty_officer", "division": "33x"}, {"role": "janitor"}]  # fmt: skip
            for body in bad:
                assert (await sec.post(f"/api/v1/admin/users/{wang}/role", body))[0] == 400, body
            status, body = await sec.post(
                f"/api/v1/admin/users/{wang}/role", {"role": "enterprise", "enterprise": HOME}
            )
            assert status == 200
            assert (
                body["user"]["role"],
                body["user"]["enterprise_code"],
                body["user"]["role_granted_by"],
            ) == ("enterprise", HOME, "sec")
            me = user_id(seeded.url, "sec")
            assert (
                await sec.post(f"/api/v1/admin/users/{me}/role", {"role": "regulator", "national": True})
            )[0] == 403
            assert (await sec.post("/api/v1/admin/users", {"username": "x9", "password": PASSWORD}))[0] == 403
        raise_alarm(seeded.url, seeded.tags[f"{HOME}/LT101"])
        raise_alarm(seeded.url, seeded.tags[f"{AWAY}/LT301"])
        async with logged_in(server, "wang") as wang_user:
            status, body = await wang_user.get("/api/v1/alarms")
            assert status == 200
            assert {a["enterprise_code"] for a in body["alarms"]} == {HOME}
        async with logged_in(server, "audit") as auditor:
            status, body = await auditor.get("/api/v1/admin/audit")
            assert status == 200
            acts = [(e["actor"], e["action"]) for e in body["entries"]]
            assert ("admin", "user_created") in acts
            assert ("sec", "role_granted") in acts
            assert ("wang", "login_failed") in acts
            assert ("wang", "login") in acts
            status, only = await auditor.get("/api/v1/admin/audit?actor=sec&action=role_granted")
            assert [e["detail"]["user"] for e in only["entries"]] == ["wang"]
            assert (await auditor.get("/api/v1/alarms"))[1]["alarms"] == []  # an auditor sees no alarm data
            assert (await auditor.get("/api/v1/admin/audit?from=yesterday"))[0] == 400


async def test_disabling_an_account_or_resetting_its_password_ends_its_sessions(seeded: Seeded) -> None:
    victim = user_id(seeded.url, "victim")
    async with running(seeded.url) as (server, _), logged_in(server, "victim") as target:
        assert (await target.get("/api/v1/me"))[0] == 200
        async with logged_in(server, "admin") as admin:
            me = user_id(seeded.url, "admin")
            assert (await admin.post(f"/api/v1/admin/users/{me}/active", {"active": False}))[0] == 409
            assert (await admin.post(f"/api/v1/admin/users/{victim}/active", {"active": False}))[0] == 200
            assert (await target.get("/api/v1/me"))[0] == 401
            assert (await target.login("victim")).status == 401
            assert (await admin.post(f"/api/v1/admin/users/{victim}/active", {"active": True}))[0] == 200
            assert (await target.login("victim")).status == 200
            assert (await admin.post(f"/api/v1/admin/users/{victim}/password", {"password": "short"}))[
                0
            ] == 400
            new = "a brand new passphrase"
            assert (await admin.post(f"/api/v1/admin/users/{victim}/password", {"password": new}))[0] == 200
            assert (await target.get("/api/v1/me"))[0] == 401
            assert (await target.login("victim")).status == 401
            assert (await target.login("victim", new)).status == 200


async def _bearer(
    server: TestServer, token: str, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(base_url=str(server.make_url("/"))) as client,
        client.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        return response.status, await response.json()


async def test_an_api_token_acts_as_its_user_in_scope_until_revoked(seeded: Seeded) -> None:
    mine = raise_alarm(seeded.url, seeded.tags[f"{HOME}/LT101"])
    theirs = raise_alarm(seeded.url, seeded.tags[f"{AWAY}/LT301"])
    async with running(seeded.url) as (server, _):
        async with logged_in(server, "qiye") as qiye:
            for bad in (
                {"name": ""},
                {"name": "x", "days": 0},
                {"name": "x", "days": 400},
                {"name": "x", "days": "9"},
            ):
                assert (await qiye.post("/api/v1/tokens", bad))[0] == 400, bad
            status, created = await qiye.post("/api/v1/tokens", {"name": "DCS 上传接口", "days": 30})
            assert status == 201
            token = created["token"]
            assert token.startswith("hwt_")
            listed = (await qiye.get("/api/v1/tokens"))[1]["tokens"]
            assert [t["name"] for t in listed] == ["DCS 上传接口"]
            assert token not in str(listed)  # shown once, stored hashed

        status, body = await _bearer(server, token, "GET", "/api/v1/alarms")
        assert status == 200
        assert [a["id"] for a in body["alarms"]] == [mine]
        assert (await _bearer(server, token, "GET", f"/api/v1/alarms/{theirs}"))[0] == 404
        # a bearer token needs no CSRF token (no browser sends it by itself) …
        status, body = await _bearer(
            server, token, "POST", f"/api/v1/alarms/{mine}/ack", {"comment": "via API"}
        )
        assert (status, body["alarm"]["state"]) == (200, "ACKED")
        assert body["alarm"]["journal"][-1]["actor"] == "qiye"
        # … but cannot mint more tokens
        assert (await _bearer(server, token, "POST", "/api/v1/tokens", {"name": "more"}))[0] == 403
        assert (await _bearer(server, "hwt_guessed", "GET", "/api/v1/alarms"))[0] == 401
        assert (await _bearer(server, token + "x", "GET", "/api/v1/alarms"))[0] == 401

        async with logged_in(server, "qiye2") as other:
            assert (await other.post(f"/api/v1/tokens/{created['id']}/revoke"))[0] == 404  # not theirs
        async with logged_in(server, "sec") as sec:
            assert [t["username"] for t in (await sec.get("/api/v1/admin/tokens"))[1]["tokens"]] == ["qiye"]
            assert (await sec.post(f"/api/v1/admin/tokens/{created['id']}/revoke"))[0] == 200
            assert (await sec.post(f"/api/v1/admin/tokens/{created['id']}/revoke"))[0] == 404
        assert (await _bearer(server, token, "GET", "/api/v1/alarms"))[0] == 401
        async with (
            aiohttp.ClientSession(base_url=str(server.make_url("/"))) as client,
            client.get("/api/v1/alarms", headers={"Authorization": "Basic cWl5ZTpwdw=="}) as response,
        ):
            assert response.status == 401
