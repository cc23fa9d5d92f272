"""The regulatory loop through the JSON API: shelving, feedback with attachments, review,
suppressions, tags out of service and hidden dangers — against a real PostgreSQL.

Two parts: an authorization matrix that tries every workflow endpoint as every role and scope
(an id outside the caller's scope must answer exactly like a missing one), and functional
tests of the loop as the enterprise, the duty officer and the regulator walk it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from alarms.policy import Policy, Shelving
from alarms.store import (
    Actor,
    Attachment,
    acknowledge,
    apply_transitions,
    declare_suppression,
    end_suppression,
    expire,
    file_feedback,
    open_hidden_danger,
)
from dashboard.app import create_app
from dashboard.auth import create_user
from dashboard.context import HUB
from hazardwatch.cli import build_parser
from hazardwatch.ledger import Plant
from rules.types import Condition, Transition
from tests.test_dashboard_api import AWAY, HOME, PASSWORD, Seeded, User, raise_alarm, seed

BEIJING = timezone(timedelta(hours=8))
MISSING = 987654321
EXTRA_USERS = (
    # username, role, division
    ("county_reg", "regulator", "330110"),
    ("secadmin", "secadmin", ""),
    ("auditor", "auditor", ""),
)
ENTERPRISE_OF = {"qiye": HOME, "qiye2": AWAY}
# who sees which enterprise's alarms (admins: none)
SEES = {
    "duty": {HOME, AWAY},
    "county": {HOME},
    "qiye": {HOME},
    "qiye2": {AWAY},
    "jianguan": {HOME, AWAY},
    "county_reg": {HOME},
    "admin": set(),
    "secadmin": set(),
    "auditor": set(),
}
ROLE = {
    "duty": "duty_officer",
    "county": "duty_officer",
    "qiye": "enterprise",
    "qiye2": "enterprise",
    "jianguan": "regulator",
    "county_reg": "regulator",
    "admin": "sysadmin",
    "secadmin": "secadmin",
    "auditor": "auditor",
}
ENTERPRISE_USER = Actor("seed-enterprise", "enterprise")


class Client(User):
    """A logged-in user that can also send forms and read raw responses."""

    async def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = {"X-CSRF-Token": self.csrf}
        if body is not None:
            kwargs["json"] = body
        async with self.session.request(method, path, headers=headers, **kwargs) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.read()

    async def raw(self, path: str) -> tuple[int, dict[str, str], bytes]:
        async with self.session.get(path) as response:
            return response.status, dict(response.headers), await response.read()


@asynccontextmanager
async def running(
    url: str, policy: Policy | None = None
) -> AsyncIterator[tuple[TestServer, web.Application]]:
    app = create_app(url) if policy is None else create_app(url, policy=policy)
    server = TestServer(app)
    await server.start_server()
    try:
        yield server, app
    finally:
        await server.close()


@asynccontextmanager
async def clients(server: TestServer, *usernames: str) -> AsyncIterator[dict[str, Client]]:
    """One logged-in client per username (None-less: every login must succeed)."""
    logged: dict[str, Client] = {}
    try:
        for username in usernames:
            client = Client(server)
            logged[username] = client
            response = await client.login(username)
            assert response.status == 200, await response.text()
        yield logged
    finally:
        for client in logged.values():
            await client.close()


@pytest.fixture
def seeded(database_url: str, sample_plant: Plant) -> Seeded:
    world = seed(database_url, sample_plant)
    with psycopg.connect(world.url) as conn:
        for username, role, division in EXTRA_USERS:
            create_user(conn, username, PASSWORD, role, division=division)
        conn.commit()
    return world


def clear(url: str, tag_id: int) -> None:
    """The HIGH condition of a tag returns to normal, as ingest would report it."""
    with psycopg.connect(url) as conn, conn.transaction():
        apply_transitions(conn, [Transition(tag_id, Condition.HIGH, 0, int(time.time() * 1000), 50.0, 90.0)])


def one(url: str, sql: str, *params: object) -> tuple[Any, ...]:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql.encode(), params).fetchone()
    assert row is not None, sql
    return tuple(row)


def actions(url: str, alarm_id: int) -> list[tuple[str, str, str]]:
    """(action, actor, role) of an alarm's journal, oldest first."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT action, actor, role FROM alarm_journal WHERE alarm_id = %s ORDER BY id", (alarm_id,)
        ).fetchall()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def hazard_source_id(url: str, code: str) -> int:
    return int(one(url, "SELECT id FROM hazard_sources WHERE code = %s", code)[0])


# -- the authorization matrix ---------------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    """Per enterprise: an UNACK 一级 alarm, an ACKED alarm with pending feedback and an
    attachment, that feedback, an ended suppression, two open hidden dangers, a tag, a source."""

    unack: int
    filed: int
    feedback: int
    ended: int
    danger: int
    danger2: int
    tag: int
    source: int


def prepare(world: Seeded, enterprise: str, tag: str, filed_tag: str, source: str) -> Targets:
    url = world.url
    unack = raise_alarm(url, world.tags[f"{enterprise}/{tag}"], level=2)  # 一级: not shelvable
    filed = raise_alarm(url, world.tags[f"{enterprise}/{filed_tag}"], value=1.9, limit=1.7)
    now = datetime.now(UTC)
    source_id = hazard_source_id(url, source)
    with psycopg.connect(url) as conn:
        acknowledge(conn, filed, ENTERPRISE_USER)
        file_feedback(
            conn,
            filed,
            ENTERPRISE_USER,
            "real_handled",
            "关闭进料阀",
            Attachment("现场.jpg", "image/jpeg", b"JPEG"),
        )
        row = conn.execute("SELECT id FROM alarm_feedback WHERE alarm_id = %s", (filed,)).fetchone()
        assert row is not None
        ended = declare_suppression(
            conn,
            hazard_source_id=source_id,
            equipment_id=None,
            reason_kind="maintenance",
            reason="年度检修",
            starts_at=now + timedelta(days=1),
            ends_at=now + timedelta(days=2),
            actor=ENTERPRISE_USER,
            now=now,
        )
        end_suppression(conn, ended, ENTERPRISE_USER)
        dangers = [
            open_hidden_danger(conn, filed, ENTERPRISE_USER, text, now + timedelta(days=7), now)
            for text in ("进料阀内漏", "安全阀未校验")
        ]
    tag_id = world.tags[f"{enterprise}/{tag}"]
    return Targets(unack, filed, int(str(row[0])), ended, dangers[0], dangers[1], tag_id, source_id)


@dataclass(frozen=True)
class Probe:
    """One request and who passes its role check; ``ok`` is the answer once role and scope pass
    (a 409 from the state machine proves the request reached the store without changing anything)."""

    name: str
    method: str
    path: str
    body: dict[str, Any] | None
    roles: frozenset[str]
    ok: int
    role_first: bool = False  # the role is checked before any id is looked up


ANY = frozenset({"duty_officer", "enterprise", "regulator"})
ENT = frozenset({"enterprise"})
REG = frozenset({"regulator"})


def probes(t: Targets, missing: bool = False) -> list[Probe]:
    """Every workflow endpoint, aimed at one enterprise's targets (or at ids that do not exist)."""

    def m(value: int) -> int:
        return MISSING if missing else value

    soon = (datetime.now(BEIJING) + timedelta(days=3)).isoformat()
    later = (datetime.now(BEIJING) + timedelta(days=4)).isoformat()
    return [
        Probe("shelve", "POST", f"/api/v1/alarms/{m(t.unack)}/shelve", {"reason": "检修", "minutes": 30},
              frozenset({"duty_officer", "enterprise"}), 409),
        Probe("unshelve", "POST", f"/api/v1/alarms/{m(t.unack)}/unshelve", {},
              frozenset({"duty_officer", "enterprise"}), 409),
        Probe("feedback", "POST", f"/api/v1/alarms/{m(t.unack)}/feedback",
              {"reason": "process_fluctuation", "measures": "调整"}, ENT, 409),
        Probe("feedback list", "GET", f"/api/v1/alarms/{m(t.filed)}/feedback", None, ANY, 200),
        Probe("attachment", "GET", f"/api/v1/alarms/{m(t.filed)}/feedback/{t.feedback}/attachment", None,
              ANY, 200),
        Probe("review", "POST", f"/api/v1/alarms/{m(t.unack)}/review", {"accept": True}, REG, 409),
        Probe("open danger", "POST", f"/api/v1/alarms/{m(t.unack)}/hidden-dangers",
              {"description": "隐患", "deadline": soon}, frozenset({"enterprise", "regulator"}), 409),
        Probe("danger", "GET", f"/api/v1/hidden-dangers/{m(t.danger)}", None, ANY, 200),
        Probe("close danger", "POST", f"/api/v1/hidden-dangers/{m(t.danger2)}", {"status": "closed"},
              REG, 409),
        Probe("rectify danger", "POST", f"/api/v1/hidden-dangers/{m(t.danger)}",
              {"status": "rectified", "text": "更换阀门"}, ENT, 200),
        Probe("declare", "POST", "/api/v1/suppressions",
              {"hazard_source_id": m(t.source), "reason_kind": "startup", "reason": "开车",
               "starts_at": soon, "ends_at": later}, ENT, 201, role_first=True),
        Probe("end suppression", "POST", f"/api/v1/suppressions/{m(t.ended)}/end", None, ENT, 409),
        Probe("tag service", "POST", f"/api/v1/tags/{m(t.tag)}/service", {"in_service": True}, ENT, 409),
    ]  # fmt: skip


def expected(probe: Probe, username: str, enterprise: str) -> int:
    role = ROLE[username]
    if probe.role_first and role not in probe.roles:
        return 403
    if enterprise not in SEES[username]:
        return 404
    return probe.ok if role in probe.roles else 403


async def test_every_endpoint_as_every_role_and_scope(seeded: Seeded) -> None:
    targets = {
        HOME: prepare(seeded, HOME, "LT101", "PT101", "HS330110001-01"),
        AWAY: prepare(seeded, AWAY, "LT301", "PT401", "HS330281002-02"),
    }
    journal_before = one(seeded.url, "SELECT count(*) FROM alarm_journal")
    async with running(seeded.url) as (server, _), clients(server, *ROLE) as users:
        for username, client in users.items():
            for enterprise, target in targets.items():
                for probe, ghost in zip(probes(target), probes(target, missing=True), strict=True):
                    want = expected(probe, username, enterprise)
                    status, body = await client.call(probe.method, probe.path, probe.body)
                    assert status == want, (username, enterprise, probe.name, body)
                    if status == 404:  # out of scope reads exactly like an id that does not exist
                        assert (status, body) == await client.call(ghost.method, ghost.path, ghost.body), (
                            username,
                            probe.name,
                        )
                    if want >= 400:
                        assert body["error"] == {403: "forbidden", 404: "not_found", 409: "conflict"}[want]
    # the only changes: each enterprise rectified its own danger and declared one start-up
    with psycopg.connect(seeded.url) as conn:
        dangers = conn.execute("SELECT status, rectified_by FROM hidden_dangers ORDER BY id").fetchall()

        declared = conn.execute(
            "SELECT declared_by FROM suppressions WHERE reason_kind = 'startup'"
        ).fetchall()
        states = conn.execute(
            "SELECT state FROM alarms WHERE id = ANY(%s) ORDER BY id", ([t.unack for t in targets.values()],)
        ).fetchall()
        journal_after = conn.execute("SELECT count(*) FROM alarm_journal").fetchone()
    assert dangers == [("rectified", "qiye"), ("open", None), ("rectified", "qiye2"), ("open", None)]
    assert sorted(declared) == [("qiye",), ("qiye2",)]
    assert states == [("UNACK",), ("UNACK",)]
    assert journal_after == (journal_before[0] + 2,)  # the two rectifications, journaled on their alarms


async def test_lists_and_guessed_ids_stay_in_scope(seeded: Seeded) -> None:
    home = prepare(seeded, HOME, "LT101", "PT101", "HS330110001-01")
    away = prepare(seeded, AWAY, "LT301", "PT401", "HS330281002-02")
    async with running(seeded.url) as (server, _), clients(server, *ROLE) as users:
        for username, client in users.items():
            visible = SEES[username]
            status, body = await client.call("GET", "/api/v1/hidden-dangers?status=all")
            assert status == 200
            assert {d["enterprise_code"] for d in body["hidden_dangers"]} == visible, username
            assert body["total"] == 2 * len(visible)
            status, body = await client.call("GET", "/api/v1/suppressions?state=all")
            assert status == 200
            assert {s["enterprise_code"] for s in body["suppressions"]} == visible, username
            status, body = await client.call("GET", "/api/v1/alarms?state=unclosed")
            assert {a["enterprise_code"] for a in body["alarms"]} == visible, username
        qiye = users["qiye"]
        # a feedback id of another enterprise under one's own alarm: as missing as a made-up one
        theirs = await qiye.call("GET", f"/api/v1/alarms/{home.filed}/feedback/{away.feedback}/attachment")
        made_up = await qiye.call("GET", f"/api/v1/alarms/{home.filed}/feedback/{MISSING}/attachment")
        assert theirs == made_up == (404, {"error": "not_found", "message": "no such attachment"})
        # an equipment code of another hazard source is not found either
        status, body = await qiye.call(
            "POST",
            "/api/v1/suppressions",
            {"hazard_source_id": home.source, "equipment_code": "V301", "reason_kind": "maintenance",
             "reason": "检修", "ends_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
        )  # fmt: skip
        assert (status, body["message"]) == (404, "no such equipment")
        status, body = await users["jianguan"].call("GET", "/api/v1/hidden-dangers?status=bogus")
        assert status == 400


async def test_unauthenticated_calls_answer_401(seeded: Seeded) -> None:
    paths = [
        ("POST", "/api/v1/alarms/1/shelve"),
        ("POST", "/api/v1/alarms/1/unshelve"),
        ("POST", "/api/v1/alarms/1/feedback"),
        ("GET", "/api/v1/alarms/1/feedback"),
        ("GET", "/api/v1/alarms/1/feedback/1/attachment"),
        ("POST", "/api/v1/alarms/1/review"),
        ("POST", "/api/v1/alarms/1/hidden-dangers"),
        ("GET", "/api/v1/hidden-dangers"),
        ("GET", "/api/v1/hidden-dangers/1"),
        ("POST", "/api/v1/hidden-dangers/1"),
        ("POST", "/api/v1/suppressions"),
        ("GET", "/api/v1/suppressions"),
        ("POST", "/api/v1/suppressions/1/end"),
        ("POST", "/api/v1/tags/1/service"),
    ]
    async with running(seeded.url) as (server, _), aiohttp.ClientSession() as session:
        for method, path in paths:
            async with session.request(method, server.make_url(path), json={}) as response:
                assert response.status == 401, path
                assert (await response.json())["error"] == "unauthenticated"


# -- the loop ---------------------------------------------------------------------------------------


async def test_feedback_returned_refiled_accepted_then_closed_when_cleared(seeded: Seeded) -> None:
    tag_id = seeded.tags[f"{HOME}/LT101"]
    alarm_id = raise_alarm(seeded.url, tag_id, level=2)  # 一级: closes only with accepted feedback
    base = f"/api/v1/alarms/{alarm_id}"
    photo = bytes(range(256)) * 4096  # 1 MiB: well over the app's 64 KiB body limit
    async with running(seeded.url) as (server, _), clients(server, "qiye", "jianguan", "county_reg") as users:
        qiye, jianguan, county_reg = users["qiye"], users["jianguan"], users["county_reg"]
        status, body = await qiye.call(
            "POST", f"{base}/feedback", {"reason": "real_handled", "measures": "x"}
        )
        assert (status, body["message"]) == (409, "acknowledge the alarm before filing feedback")
        assert (await qiye.call("POST", f"{base}/ack", {"comment": "收到"}))[0] == 200

        form = aiohttp.FormData()
        form.add_field("reason", "real_handled")
        form.add_field("measures", "关闭 1# 球罐进料阀，液位回落")
        form.add_field("attachment", photo, filename="现场 照片.jpg", content_type="image/jpeg")
        status, body = await qiye.call("POST", f"{base}/feedback", data=form)
        assert status == 201, body
        assert body["alarm"]["disposition"] == "filed"
        first = body["feedback"][0]
        assert (first["reason"], first["filed_by"], first["review"]) == ("real_handled", "qiye", "pending")
        assert (first["attachment_name"], first["attachment_size"]) == ("现场 照片.jpg", len(photo))
        status, headers, data = await jianguan.raw(first["attachment_url"])
        assert (status, data) == (200, photo)
        assert headers["Content-Type"] == "image/jpeg"
        assert headers["Content-Disposition"].startswith("attachment;")
        assert (
            "filename*=UTF-8''%E7%8E%B0%E5%9C%BA%20%E7%85%A7%E7%89%87.jpg" in headers["Content-Disposition"]
        )
        assert "sandbox" in headers["Content-Security-Policy"]

        status, body = await jianguan.call("POST", f"{base}/review", {"accept": False})
        assert status == 400  # returning needs a comment
        status, body = await jianguan.call(
            "POST", f"{base}/review", {"accept": False, "comment": "请补充阀门编号"}
        )
        assert status == 200, body
        assert body["alarm"]["disposition"] == "returned"
        assert body["feedback"][0]["review_comment"] == "请补充阀门编号"
        status, body = await jianguan.call("POST", f"{base}/review", {"accept": True})
        assert (status, body["message"]) == (409, "the alarm has no feedback waiting for review")

        status, body = await qiye.call(
            "POST", f"{base}/feedback", {"reason": "real_handled", "measures": "关闭 XV-1011 进料阀"}
        )
        assert status == 201
        assert [f["review"] for f in body["feedback"]] == ["returned", "pending"]
        assert body["feedback"][1]["attachment_url"] is None
        status, body = await county_reg.call("POST", f"{base}/review", {"accept": True, "comment": "同意"})
        assert status == 200
        assert body["alarm"]["disposition"] == "accepted"
        assert body["alarm"]["closed_at"] is None  # still active: not closed yet
        _, unclosed = await qiye.call("GET", "/api/v1/alarms?state=unclosed")
        assert alarm_id in [a["id"] for a in unclosed["alarms"]]

        clear(seeded.url, tag_id)
        status, body = await qiye.call("GET", base)
        assert body["alarm"]["state"] == "NORMAL"
        assert body["alarm"]["closed_at"] is not None
        _, unclosed = await qiye.call("GET", "/api/v1/alarms?state=unclosed")
        assert alarm_id not in [a["id"] for a in unclosed["alarms"]]
        status, listed = await jianguan.call("GET", f"{base}/feedback")
        assert (status, listed["disposition"], len(listed["feedback"])) == (200, "accepted", 2)
    assert actions(seeded.url, alarm_id) == [
        ("raise", "system", "rules"),
        ("ack", "qiye", "enterprise"),
        ("feedback", "qiye", "enterprise"),
        ("return", "jianguan", "regulator"),
        ("feedback", "qiye", "enterprise"),
        ("accept", "county_reg", "regulator"),
        ("clear", "system", "rules"),
        ("close", "system", "rules"),
    ]


async def test_feedback_input_is_checked(seeded: Seeded) -> None:
    alarm_id = raise_alarm(seeded.url, seeded.tags[f"{HOME}/LT101"])
    with psycopg.connect(seeded.url) as conn:
        acknowledge(conn, alarm_id, ENTERPRISE_USER)
    path = f"/api/v1/alarms/{alarm_id}/feedback"
    async with running(seeded.url) as (server, _), clients(server, "qiye") as users:
        qiye = users["qiye"]
        for body in ({"reason": "bogus", "measures": "x"}, {"reason": "real_handled", "measures": "  "}, {}):
            assert (await qiye.call("POST", path, body))[0] == 400, body
        big = aiohttp.FormData()
        big.add_field("reason", "instrument_fault")
        big.add_field("measures", "更换变送器")
        big.add_field("attachment", b"\0" * (5 * 1024 * 1024 + 1), filename="big.bin")
        status, body = await qiye.call("POST", path, data=big)
        assert (status, body["error"]) == (413, "too_large")
        odd = aiohttp.FormData()
        odd.add_field("reason", "instrument_fault")
        odd.add_field("measures", "更换变送器")
        odd.add_field("extra", "x")
        assert (await qiye.call("POST", path, data=odd))[0] == 400
        exact = aiohttp.FormData()  # exactly 5 MiB is allowed; an unknown type downloads as octet-stream
        exact.add_field("reason", "instrument_fault")
        exact.add_field("measures", "更换变送器")
        exact.add_field("attachment", b"\1" * (5 * 1024 * 1024), filename="../../etc/记录.html",
                        content_type="text/html")  # fmt: skip
        status, body = await qiye.call("POST", path, data=exact)
        assert status == 201, body
        saved = body["feedback"][0]
        assert (saved["attachment_name"], saved["attachment_size"]) == ("记录.html", 5 * 1024 * 1024)
        status, headers, _ = await qiye.raw(saved["attachment_url"])
        assert (status, headers["Content-Type"]) == (200, "application/octet-stream")
        status, body = await qiye.call("POST", path, {"reason": "instrument_fault", "measures": "again"})
        assert (status, body["message"]) == (409, "feedback is already filed")
    assert one(seeded.url, "SELECT count(*) FROM alarm_feedback")[0] == 1


async def test_hidden_danger_from_feedback_to_closure(seeded: Seeded) -> None:
    alarm_id = raise_alarm(seeded.url, seeded.tags[f"{AWAY}/LT301"])
    with psycopg.connect(seeded.url) as conn:
        acknowledge(conn, alarm_id, ENTERPRISE_USER)
        file_feedback(conn, alarm_id, ENTERPRISE_USER, "real_handled", "紧急切断")
    deadline = datetime.now(BEIJING).replace(microsecond=0) + timedelta(days=7)
    async with running(seeded.url) as (server, _), clients(server, "qiye2", "jianguan") as users:
        qiye2, jianguan = users["qiye2"], users["jianguan"]
        path = f"/api/v1/alarms/{alarm_id}/hidden-dangers"
        status, _ = await jianguan.call(
            "POST", path, {"description": "液位计失灵", "deadline": "2030-01-01T00:00"}
        )
        assert status == 400  # a time needs its offset
        status, body = await jianguan.call(
            "POST", path, {"description": "液位计失灵", "deadline": deadline.isoformat()}
        )
        assert status == 201, body
        danger = body["hidden_danger"]
        assert datetime.fromisoformat(danger["deadline"]) == deadline
        assert danger["deadline"].endswith("Z")  # stored and answered in UTC
        assert (danger["status"], danger["opened_by"], danger["overdue"]) == ("open", "jianguan", False)
        url = f"/api/v1/hidden-dangers/{danger['id']}"
        assert (await jianguan.call("POST", url, {"status": "rectified", "text": "x"}))[0] == 403
        status, body = await qiye2.call("POST", url, {"status": "rectified", "text": "更换液位计"})
        assert (status, body["hidden_danger"]["status"]) == (200, "rectified")
        assert (await qiye2.call("POST", url, {"status": "closed"}))[0] == 403
        assert (await jianguan.call("POST", url, {"status": "open"}))[0] == 400  # sending back needs why
        status, body = await jianguan.call("POST", url, {"status": "open", "text": "未附校验报告"})
        assert (status, body["hidden_danger"]["status"]) == (200, "open")
        assert (await jianguan.call("POST", url, {"status": "closed"}))[0] == 409  # not rectified
        assert (await qiye2.call("POST", url, {"status": "rectified", "text": "附校验报告"}))[0] == 200
        status, body = await jianguan.call("POST", url, {"status": "closed"})
        assert (status, body["hidden_danger"]["closed_by"]) == (200, "jianguan")
        _, listed = await qiye2.call("GET", "/api/v1/hidden-dangers")
        assert listed["hidden_dangers"] == []  # unclosed by default
        _, listed = await qiye2.call("GET", "/api/v1/hidden-dangers?status=closed")
        assert [d["id"] for d in listed["hidden_dangers"]] == [danger["id"]]
    steps = [(a, who) for a, who, _ in actions(seeded.url, alarm_id)]
    assert steps == [
        ("raise", "system"),
        ("ack", "seed-enterprise"),
        ("feedback", "seed-enterprise"),
        ("hidden_danger", "jianguan"),  # opened the hidden danger
        ("hidden_danger", "qiye2"),  # rectified
        ("hidden_danger", "jianguan"),  # sent back
        ("hidden_danger", "qiye2"),  # rectified again
        ("hidden_danger", "jianguan"),  # closed
    ]


# -- shelving, suppression, out of service ---------------------------------------------------------


async def _next_action(ws: aiohttp.ClientWebSocketResponse, alarm_id: int) -> str:
    while True:
        message = json.loads(await ws.receive_str(timeout=10))
        if message["type"] == "alarm" and message["alarm"]["id"] == alarm_id:
            return str(message["action"])


async def test_shelve_expires_on_the_clock_and_unshelve_reannunciates(seeded: Seeded) -> None:
    tag_id = seeded.tags[f"{HOME}/LT101"]
    alarm_id = raise_alarm(seeded.url, tag_id, value=86.0, limit=85.0, level=1)  # 二级: shelvable
    urgent = raise_alarm(seeded.url, seeded.tags[f"{HOME}/PT101"], value=1.8, limit=1.77, level=2)
    base = f"/api/v1/alarms/{alarm_id}"
    async with running(seeded.url) as (server, app), clients(server, "county", "county_reg") as users:
        await asyncio.wait_for(app[HUB].listening.wait(), timeout=10)
        county = users["county"]
        ws = await county.session.ws_connect("/api/v1/live")
        try:
            assert json.loads(await ws.receive_str(timeout=5))["type"] == "hello"
            for body in ({"reason": "x"}, {"reason": "", "minutes": 5}, {"reason": "x", "minutes": 9 * 60},
                         {"reason": "x", "minutes": 5, "until": "2030-01-01T00:00:00Z"},
                         {"reason": "x", "until": "2001-01-01T00:00:00+08:00"}):  # fmt: skip
                assert (await county.call("POST", f"{base}/shelve", body))[0] == 400, body
            status, body = await users["county_reg"].call(
                "POST", f"{base}/shelve", {"reason": "x", "minutes": 5}
            )
            assert status == 403  # not in the policy's shelving roles
            status, body = await county.call(
                "POST", f"/api/v1/alarms/{urgent}/shelve", {"reason": "x", "minutes": 5}
            )
            assert (status, body["message"]) == (409, "priority 1 alarms may not be shelved")

            before = datetime.now(UTC)
            status, body = await county.call(
                "POST", f"{base}/shelve", {"reason": "液位计校验中", "minutes": 30}
            )
            assert status == 200, body
            alarm = body["alarm"]
            assert (alarm["state"], alarm["shelved_by"], alarm["shelve_reason"]) == (
                "SHELVED",
                "county",
                "液位计校验中",
            )
            until = datetime.fromisoformat(alarm["shelved_until"])
            assert before + timedelta(minutes=30) <= until <= datetime.now(UTC) + timedelta(minutes=30)
            assert await _next_action(ws, alarm_id) == "shelve"  # the live board hears of it
            _, board = await county.call("GET", "/api/v1/alarms?state=open")
            assert alarm_id not in [a["id"] for a in board["alarms"]]
            _, masked = await county.call("GET", "/api/v1/alarms?state=masked")
            assert [a["id"] for a in masked["alarms"]] == [alarm_id]

            with psycopg.connect(seeded.url) as conn:
                assert expire(conn, until - timedelta(seconds=1)) == 0
                assert expire(conn, until) == 1
            assert await _next_action(ws, alarm_id) == "unshelve"
            status, body = await county.call("GET", base)
            assert body["alarm"]["state"] == "UNACK"  # still active: back on the board, unacknowledged
            assert body["alarm"]["journal"][-1]["actor"] == "system"

            until_local = (datetime.now(BEIJING) + timedelta(hours=2)).isoformat()
            status, body = await county.call(
                "POST", f"{base}/shelve", {"reason": "交接班", "until": until_local}
            )
            assert (status, body["alarm"]["state"]) == (200, "SHELVED")
            assert datetime.fromisoformat(body["alarm"]["shelved_until"]) == datetime.fromisoformat(
                until_local
            )
            status, body = await county.call("POST", f"{base}/unshelve", {"comment": "提前解除"})
            assert (status, body["alarm"]["state"]) == (200, "UNACK")
            assert (await county.call("POST", f"{base}/unshelve", {}))[0] == 409
        finally:
            await ws.close()
    assert [(a, who) for a, who, _ in actions(seeded.url, alarm_id)] == [
        ("raise", "system"),
        ("shelve", "county"),
        ("unshelve", "system"),
        ("shelve", "county"),
        ("unshelve", "county"),
    ]


async def test_shelving_roles_come_from_the_policy(seeded: Seeded) -> None:
    alarm_id = raise_alarm(seeded.url, seeded.tags[f"{HOME}/LT101"], value=86.0, limit=85.0, level=1)
    policy = Policy(shelving=Shelving(roles=["regulator"], max_hours=1))
    async with running(seeded.url, policy) as (server, _), clients(server, "county", "county_reg") as users:
        path = f"/api/v1/alarms/{alarm_id}/shelve"
        assert (await users["county"].call("POST", path, {"reason": "x", "minutes": 5}))[0] == 403
        assert (await users["county_reg"].call("POST", path, {"reason": "x", "minutes": 61}))[0] == 400
        status, body = await users["county_reg"].call("POST", path, {"reason": "x", "minutes": 60})
        assert (status, body["alarm"]["state"]) == (200, "SHELVED")
    assert build_parser().parse_args(["dashboard", "--policy", "p.yaml"]).policy == "p.yaml"


async def test_ending_a_suppression_reannunciates_active_alarms(seeded: Seeded) -> None:
    active = raise_alarm(seeded.url, seeded.tags[f"{HOME}/LT101"])
    elsewhere = raise_alarm(seeded.url, seeded.tags[f"{HOME}/LT201"])  # another hazard source
    ends = (datetime.now(BEIJING) + timedelta(hours=2)).isoformat()
    source = hazard_source_id(seeded.url, "HS330110001-01")
    async with running(seeded.url) as (server, _), clients(server, "qiye", "county") as users:
        qiye = users["qiye"]
        body = {"hazard_source_id": source, "equipment_code": "T101", "reason_kind": "maintenance",
                "reason": "1# 球罐检修", "ends_at": ends}  # fmt: skip
        assert (await users["county"].call("POST", "/api/v1/suppressions", body))[0] == 403
        assert (await qiye.call("POST", "/api/v1/suppressions", {**body, "reason_kind": "party"}))[0] == 400
        status, created = await qiye.call("POST", "/api/v1/suppressions", body)
        assert status == 201, created
        declared = created["suppression"]
        assert (declared["in_force"], declared["suppressed"], declared["equipment_code"]) == (True, 1, "T101")
        assert declared["declared_by"] == "qiye"
        # raised during the suppression: suppressed at once; cleared meanwhile: closes quietly at the end
        born = raise_alarm(seeded.url, seeded.tags[f"{HOME}/PT101"], value=1.8, limit=1.77)
        fleeting = raise_alarm(seeded.url, seeded.tags[f"{HOME}/TT101"], value=55.0, limit=50.0)
        clear(seeded.url, seeded.tags[f"{HOME}/TT101"])
        _, alarm = await qiye.call("GET", f"/api/v1/alarms/{born}")
        assert alarm["alarm"]["state"] == "SUPPRESSED"
        _, masked = await users["county"].call("GET", "/api/v1/alarms?state=masked")
        assert {a["id"] for a in masked["alarms"]} == {active, born, fleeting}
        assert {a["mask_reason"] for a in masked["alarms"]} == {"1# 球罐检修"}  # why they are off the board
        _, listed = await users["county"].call("GET", "/api/v1/suppressions")
        assert [s["id"] for s in listed["suppressions"]] == [declared["id"]]

        status, ended = await qiye.call("POST", f"/api/v1/suppressions/{declared['id']}/end")
        assert status == 200, ended
        assert ended["released"] == 3
        assert ended["suppression"]["ended_at"] is not None
        assert ended["suppression"]["in_force"] is False
        assert (await qiye.call("POST", f"/api/v1/suppressions/{declared['id']}/end"))[0] == 409
        states = {}
        for alarm_id in (active, born, fleeting, elsewhere):
            _, body = await qiye.call("GET", f"/api/v1/alarms/{alarm_id}")
            states[alarm_id] = (body["alarm"]["state"], body["alarm"]["closed_at"] is not None)
    assert states == {
        active: ("UNACK", False),  # never silently active
        born: ("UNACK", False),
        fleeting: ("NORMAL", True),
        elsewhere: ("UNACK", False),  # never suppressed
    }
    assert [a for a, _, _ in actions(seeded.url, active)] == ["raise", "suppress", "unsuppress"]
    assert actions(seeded.url, born)[-1] == ("unsuppress", "qiye", "enterprise")


async def test_tag_out_of_service_with_reason_person_and_time(seeded: Seeded) -> None:
    tag_id = seeded.tags[f"{HOME}/LT101"]
    alarm_id = raise_alarm(seeded.url, tag_id)
    path = f"/api/v1/tags/{tag_id}/service"
    async with running(seeded.url) as (server, _), clients(server, "qiye", "duty", "admin") as users:
        qiye = users["qiye"]
        assert (await qiye.call("POST", path, {"in_service": False}))[0] == 400  # needs a reason
        assert (await qiye.call("POST", path, {"in_service": "no", "reason": "x"}))[0] == 400
        assert (await users["duty"].call("POST", path, {"in_service": False, "reason": "x"}))[0] == 403
        assert (await users["admin"].call("POST", path, {"in_service": False, "reason": "x"}))[0] == 404
        before = datetime.now(UTC)
        status, body = await qiye.call("POST", path, {"in_service": False, "reason": "液位计送检"})
        assert status == 200, body
        tag = body["tag"]
        assert (tag["in_service"], tag["oos_reason"], tag["oos_by"], body["alarms_moved"]) == (
            False, "液位计送检", "qiye", 1,
        )  # fmt: skip
        assert datetime.fromisoformat(tag["oos_at"]) >= before - timedelta(seconds=5)
        _, alarm = await qiye.call("GET", f"/api/v1/alarms/{alarm_id}")
        assert alarm["alarm"]["state"] == "OUT_OF_SERVICE"
        assert (await qiye.call("POST", path, {"in_service": False, "reason": "x"}))[0] == 409
        status, body = await qiye.call("POST", path, {"in_service": True})
        assert (status, body["tag"]["in_service"], body["tag"]["oos_by"]) == (200, True, None)
        _, alarm = await qiye.call("GET", f"/api/v1/alarms/{alarm_id}")
        assert alarm["alarm"]["state"] == "UNACK"
    assert [(a, who) for a, who, _ in actions(seeded.url, alarm_id)] == [
        ("raise", "system"),
        ("out_of_service", "qiye"),
        ("return_to_service", "qiye"),
    ]


async def test_two_users_acknowledge_one_alarm_at_once(seeded: Seeded) -> None:
    alarm_id = raise_alarm(seeded.url, seeded.tags[f"{HOME}/LT101"])
    async with running(seeded.url) as (server, _), clients(server, "duty", "county", "qiye") as users:
        results = await asyncio.gather(
            *(
                u.call("POST", f"/api/v1/alarms/{alarm_id}/ack", {"comment": name})
                for name, u in users.items()
            )
        )
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 409, 409]
    winner = next(body for status, body in results if status == 200)["alarm"]["acked_by"]
    acks = [(a, who) for a, who, _ in actions(seeded.url, alarm_id) if a == "ack"]
    assert acks == [("ack", winner)]


async def test_overlapping_suppressions_release_when_the_last_one_ends(seeded: Seeded) -> None:
    alarm_id = raise_alarm(seeded.url, seeded.tags[f"{HOME}/LT101"])
    source = hazard_source_id(seeded.url, "HS330110001-01")
    now = datetime.now(BEIJING)
    async with running(seeded.url) as (server, _), clients(server, "qiye") as users:
        qiye = users["qiye"]
        status, first = await qiye.call(
            "POST",
            "/api/v1/suppressions",
            {"hazard_source_id": source, "reason_kind": "maintenance", "reason": "罐区检修",
             "ends_at": (now + timedelta(hours=2)).isoformat()},
        )  # fmt: skip
        assert (status, first["suppression"]["suppressed"]) == (201, 1)
        status, second = await qiye.call(
            "POST",
            "/api/v1/suppressions",
            {"hazard_source_id": source, "equipment_code": "T101", "reason_kind": "startup",
             "reason": "1# 球罐开车", "ends_at": (now + timedelta(hours=5)).isoformat()},
        )  # fmt: skip
        assert status == 201
        status, ended = await qiye.call("POST", f"/api/v1/suppressions/{first['suppression']['id']}/end")
        assert (status, ended["released"]) == (200, 0)  # the start-up still covers it
        _, body = await qiye.call("GET", f"/api/v1/alarms/{alarm_id}")
        assert (body["alarm"]["state"], body["alarm"]["suppression_id"]) == (
            "SUPPRESSED",
            second["suppression"]["id"],
        )
    with psycopg.connect(seeded.url) as conn:
        assert expire(conn, datetime.now(UTC) + timedelta(hours=6)) == 1  # the start-up period is over
    assert actions(seeded.url, alarm_id) == [
        ("raise", "system", "rules"),
        ("suppress", "qiye", "enterprise"),
        ("unsuppress", "system", "workflow"),
    ]
    assert one(seeded.url, "SELECT state FROM alarms WHERE id = %s", alarm_id) == ("UNACK",)


async def test_the_openapi_document_describes_the_workflow_endpoints(seeded: Seeded) -> None:
    async with running(seeded.url) as (server, _), clients(server, "qiye") as users:
        status, doc = await users["qiye"].call("GET", "/api/v1/openapi.json")
    assert status == 200
    paths = doc["paths"]

    def fields(path: str, content: str = "application/json") -> set[str]:
        return set(paths[path]["post"]["requestBody"]["content"][content]["schema"]["properties"])

    assert fields("/api/v1/alarms/{alarm_id}/shelve") == {"reason", "until", "minutes"}
    assert fields("/api/v1/alarms/{alarm_id}/review") == {"accept", "comment"}
    assert fields("/api/v1/hidden-dangers/{danger_id}") == {"status", "text"}
    assert fields("/api/v1/tags/{tag_id}/service") == {"in_service", "reason"}
    assert fields("/api/v1/suppressions") == {
        "hazard_source_id", "equipment_code", "reason_kind", "reason", "starts_at", "ends_at",
    }  # fmt: skip
    form = paths["/api/v1/alarms/{alarm_id}/feedback"]["post"]["requestBody"]["content"][
        "multipart/form-data"
    ]
    assert form["schema"]["properties"]["attachment"] == {"type": "string", "format": "binary"}
    assert fields("/api/v1/alarms/{alarm_id}/feedback") == {"reason", "measures", "attachment"}
    download = paths["/api/v1/alarms/{alarm_id}/feedback/{feedback_id}/attachment"]["get"]["responses"]["200"]
    assert "*/*" in download["content"]
    dangers = {p["name"]: p["schema"] for p in paths["/api/v1/hidden-dangers"]["get"]["parameters"]}
    assert dangers["status"]["enum"] == ["unclosed", "open", "rectified", "closed", "all"]
    assert {"post"} == set(paths["/api/v1/suppressions/{suppression_id}/end"])
