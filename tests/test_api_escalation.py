"""An alarm's escalation timer and its notification deliveries through the API, in scope."""

from __future__ import annotations

import psycopg
import pytest

from alarms.workflows import Workflows
from hazardwatch.clock import FakeClock
from hazardwatch.ledger import Plant
from tests.test_dashboard_api import HOME, Seeded, logged_in, running, seed
from tests.workflow_support import ENVIRON, START_MS, raise_alarm, receiving, webhook_policy


@pytest.fixture
def seeded(database_url: str, sample_plant: Plant) -> Seeded:
    return seed(database_url, sample_plant)


async def test_who_was_told_of_an_alarm_and_when_it_escalates_next(seeded: Seeded) -> None:
    clock = FakeClock(START_MS)
    with receiving() as receiver, psycopg.connect(seeded.url, autocommit=True) as conn:
        alarm_id = raise_alarm(conn, seeded.tags[f"{HOME}/LT101"], clock)  # HH of a 三级 source: 一级
        flows = Workflows.from_environment(webhook_policy(receiver), clock, ENVIRON)
        clock.advance(61)  # past the grouping window
        flows.tick(conn)
        flows.tick(conn)
        assert receiver.to("operational")
    async with running(seeded.url) as (server, _):
        async with logged_in(server, "qiye") as qiye:
            status, body = await qiye.get(f"/api/v1/alarms/{alarm_id}/escalation")
            assert status == 200, body
            assert (body["timer"]["stage"], body["timer"]["priority"], body["timer"]["steps"]) == (
                "ack",
                1,
                0,
            )
            assert body["timer"]["next_at"] is not None
            sent = [d for d in body["deliveries"] if d["recipient"].endswith("赵海峰")]
            assert sent
            assert (sent[0]["channel"], sent[0]["status"]) == ("webhook", "sent")
        for outsider in ("qiye2", "admin"):
            async with logged_in(server, outsider) as other:
                assert (await other.get(f"/api/v1/alarms/{alarm_id}/escalation"))[0] == 404
        async with logged_in(server, "qiye2") as other:
            assert (await other.get("/api/v1/alarms/999999/escalation"))[0] == 404
