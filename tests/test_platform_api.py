"""The platform's own surfaces: the OpenAPI document of every route and the Prometheus metrics."""

from __future__ import annotations

import re
import time

import aiohttp
import psycopg
import pytest

from alarms.store import apply_transitions
from hazardwatch.ledger import Plant
from rules.types import Condition, Subject, Transition
from tests.test_dashboard_api import HOME, Seeded, logged_in, raise_alarm, running, seed

SAMPLE = re.compile(r'[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? -?[0-9.e+-]+')


@pytest.fixture
def seeded(database_url: str, sample_plant: Plant) -> Seeded:
    return seed(database_url, sample_plant)


async def test_the_openapi_document_lists_every_api_route_with_its_parameters(seeded: Seeded) -> None:
    async with (
        running(seeded.url) as (server, app),
        aiohttp.ClientSession(base_url=str(server.make_url("/"))) as client,
        client.get("/api/v1/openapi.json") as response,
    ):
        assert response.status == 200
        doc = await response.json()
    assert doc["openapi"] == "3.1.0"
    routes = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/v1")
        and route.method != "HEAD"
    }
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert documented == routes
    assert len(routes) > 20
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            names = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert names == set(re.findall(r"\{([a-z_]+)\}", path)), (method, path)
            assert op["summary"], (method, path)
            assert op["operationId"]
    history = {p["name"] for p in doc["paths"]["/api/v1/history"]["get"]["parameters"]}
    assert {"division", "enterprise", "priority", "from", "to", "cursor", "closed"} <= history
    shelve = doc["paths"]["/api/v1/alarms/{alarm_id}/shelve"]["post"]
    assert "reason" in shelve["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {"session": [], "csrf": []} in shelve["security"]
    assert doc["paths"]["/api/v1/login"]["post"]["security"] == []
    assert set(doc["components"]["securitySchemes"]) == {"session", "csrf", "token"}


async def test_metrics_show_the_platforms_health_in_the_prometheus_format(seeded: Seeded) -> None:
    raise_alarm(seeded.url, seeded.tags[f"{HOME}/LT101"])
    with psycopg.connect(seeded.url) as conn:  # a consumer that has read nothing yet
        conn.execute("INSERT INTO outbox_positions (consumer) VALUES ('probe')")
        conn.commit()
    async with running(seeded.url) as (server, _):
        async with logged_in(server, "qiye") as qiye:
            await qiye.get("/api/v1/alarms")
            await qiye.get("/api/v1/alarms/999999")
        async with (
            aiohttp.ClientSession(base_url=str(server.make_url("/"))) as client,
            client.get("/metrics") as response,  # the test client is on loopback
        ):
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await response.text()
    assert 'hw_alarms_open{priority="1",state="UNACK"} 1' in text
    assert re.search(r'hw_http_requests_total\{method="GET",route="/api/v1/alarms",status="2xx"\} 1\b', text)
    assert re.search(
        r'hw_http_requests_total\{method="GET",route="/api/v1/alarms/\{alarm_id\}",status="4xx"\} 1', text
    )
    assert "hw_database_up 1" in text
    assert 'hw_outbox_lag_entries{consumer="probe"} 1' in text  # the raise's journal row
    assert "# TYPE hw_gateways gauge" in text
    assert "hw_dead_letters_last_hour 0" in text
    for line in text.splitlines():  # every sample line parses as name{labels} value
        assert line.startswith("#") or re.fullmatch(SAMPLE, line), line


async def test_every_alarm_names_its_subject_whatever_its_kind(seeded: Seeded) -> None:
    with psycopg.connect(seeded.url) as conn:
        group = conn.execute("SELECT id FROM vote_groups WHERE code = 'GV101'").fetchone()
        source = conn.execute("SELECT id FROM hazard_sources WHERE code = 'HS330110001-01'").fetchone()
        gateway = conn.execute(
            "SELECT g.id FROM gateways g JOIN enterprises e ON e.id = g.enterprise_id WHERE e.code = %s",
            (HOME,),
        ).fetchone()
        assert group is not None
        assert source is not None
        assert gateway is not None
        ts = int(time.time() * 1000)
        with conn.transaction():
            apply_transitions(conn, [
                Transition(int(str(group[0])), Condition.VOTE, 1, ts, 2.0, 2.0, subject=Subject.VOTE_GROUP),
                Transition(int(str(source[0])), Condition.SOURCE, 1, ts, 2.0, 2.0,
                           subject=Subject.HAZARD_SOURCE),
                Transition(int(str(gateway[0])), Condition.GATEWAY_OFFLINE, 1, ts, None, None,
                           subject=Subject.GATEWAY),
                Transition(seeded.tags[f"{HOME}/LT101"], Condition.HIGH, 1, ts, 86.0, 85.0),
            ])  # fmt: skip
    async with running(seeded.url) as (server, _), logged_in(server, "qiye") as qiye:
        status, body = await qiye.get("/api/v1/alarms")
    assert status == 200
    named = {a["subject_kind"]: (a["subject_code"], a["subject_name"]) for a in body["alarms"]}
    assert named["vote_group"][0] == "GV101"
    assert named["hazard_source"] == ("HS330110001-01", "液化石油气球罐区")
    assert named["gateway"][0] == "gw01"
    assert named["tag"][0] == "LT101"
    assert all(name for _, name in named.values() if name is not None)


async def test_every_api_route_but_the_public_ones_refuses_an_anonymous_caller(seeded: Seeded) -> None:
    """Built from the router, so an endpoint added tomorrow is held to it too."""
    public = {("POST", "/api/v1/login"), ("GET", "/api/v1/health"), ("GET", "/api/v1/openapi.json")}
    async with (
        running(seeded.url) as (server, app),
        aiohttp.ClientSession(base_url=str(server.make_url("/"))) as client,
    ):
        checked = 0
        for route in app.router.routes():
            resource = route.resource
            if resource is None or route.method == "HEAD" or not resource.canonical.startswith("/api/v1"):
                continue
            path = re.sub(r"\{[a-z_]+\}", "1", resource.canonical)
            if (route.method, resource.canonical) in public:
                continue
            async with client.request(route.method, path, json={}) as response:
                assert response.status == 401, (route.method, path, response.status)
                if response.content_type == "application/json":
                    assert (await response.json())["error"] == "unauthenticated"
            checked += 1
        async with client.get("/metrics", headers={"Authorization": "Bearer hwt_nobody"}) as response:
            assert response.status == 401  # a wrong token is refused, even from loopback
    assert checked > 40
