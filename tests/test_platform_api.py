"""The platform's own surfaces: the OpenAPI document of every route and the Prometheus metrics."""

from __future__ import annotations

import re

import aiohttp
import psycopg
import pytest

from hazardwatch.ledger import Plant
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
