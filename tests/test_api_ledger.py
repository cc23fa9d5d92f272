"""The read-only ledger API (enterprises and their hazard sources, equipment, tags) and the
board's flood state, against a real PostgreSQL: figures, and scope for every role — an
enterprise out of scope answers 404 like a missing one, administrators see nothing."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import aiohttp
import psycopg
import pytest

from alarms.store import apply_transitions
from dashboard.api_board import flood_state
from hazardwatch.ledger import Plant
from rules.types import Condition, Transition
from tests.test_dashboard_api import AWAY, HOME, Seeded, logged_in, raise_alarm, running, seed


@pytest.fixture
def seeded(database_url: str, sample_plant: Plant) -> Seeded:
    return seed(database_url, sample_plant)


def enterprise_ids(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {str(c): int(str(i)) for c, i in conn.execute("SELECT code, id FROM enterprises").fetchall()}


async def test_each_role_lists_only_the_enterprises_in_its_scope(seeded: Seeded) -> None:
    expected = {
        "duty": {HOME, AWAY},
        "jianguan": {HOME, AWAY},
        "county": {HOME},
        "qiye": {HOME},
        "qiye2": {AWAY},
        "admin": set(),
    }
    async with running(seeded.url) as (server, _):
        for username, codes in expected.items():
            async with logged_in(server, username) as user:
                status, body = await user.get("/api/v1/enterprises")
                assert status == 200, (username, body)
                assert {e["code"] for e in body["enterprises"]} == codes, username
                assert body["total"] == len(codes)


async def test_an_enterprise_out_of_scope_is_not_found_like_a_missing_one(seeded: Seeded) -> None:
    ids = enterprise_ids(seeded.url)
    missing = max(ids.values()) + 100
    async with running(seeded.url) as (server, _):
        async with logged_in(server, "qiye") as qiye:
            assert (await qiye.get(f"/api/v1/enterprises/{ids[HOME]}"))[0] == 200
            for guess in (ids[AWAY], missing):
                status, body = await qiye.get(f"/api/v1/enterprises/{guess}")
                assert (status, body["error"]) == (404, "not_found")
        async with logged_in(server, "county") as county:
            assert (await county.get(f"/api/v1/enterprises/{ids[HOME]}"))[0] == 200
            assert (await county.get(f"/api/v1/enterprises/{ids[AWAY]}"))[0] == 404
        async with logged_in(server, "admin") as admin:
            assert (await admin.get(f"/api/v1/enterprises/{ids[HOME]}"))[0] == 404
        async with logged_in(server, "duty") as duty:
            assert (await duty.get(f"/api/v1/enterprises/{ids[AWAY]}"))[0] == 200
            assert (await duty.get("/api/v1/enterprises/99999999999"))[0] == 400
        async with aiohttp.ClientSession() as anonymous:
            for path in ("/api/v1/enterprises", f"/api/v1/enterprises/{ids[HOME]}", "/api/v1/board/flood"):
                async with anonymous.get(str(server.make_url(path))) as response:
                    assert response.status == 401, path


async def test_an_enterprise_shows_its_ledger_risk_alarms_and_overdue_feedback(seeded: Seeded) -> None:
    ids = enterprise_ids(seeded.url)
    p1 = raise_alarm(seeded.url, seeded.tags[f"{HOME}/LT101"], value=92.0, limit=90.0)
    raise_alarm(seeded.url, seeded.tags[f"{AWAY}/LT301"])
    with psycopg.connect(seeded.url) as conn:  # raised two hours ago: its feedback is overdue
        conn.execute("UPDATE alarms SET raised_at = now() - interval '2 hours' WHERE id = %s", (p1,))
        conn.commit()
    async with running(seeded.url) as (server, _), logged_in(server, "jianguan") as user:
        status, body = await user.get(f"/api/v1/enterprises/{ids[HOME]}")
        assert status == 200
        e = body["enterprise"]
        assert (e["code"], e["division"]) == (HOME, "330110")
        assert (e["lon"], e["lat"]) == (120.3, 30.42)
        assert (e["open_alarms"], e["open_p1"], e["overdue_feedback"]) == (1, 1, 1)
        assert e["risk_level"] in (1, 2, 3, 4)
        sources = {hs["code"]: hs for hs in e["hazard_sources"]}
        assert set(sources) == {"HS330110001-01", "HS330110001-02"}
        lpg = sources["HS330110001-01"]
        assert (lpg["open_alarms"], lpg["overdue_feedback"], lpg["commitment"]) == (1, 1, None)
        assert lpg["grade"] in (1, 2, 3, 4)
        assert lpg["risk_level"] <= lpg["risk_inherent"] or not lpg["risk_computed"]
        assert sources["HS330110001-02"]["open_alarms"] == 0
        tags = {t["code"]: t for t in e["tags"]}
        assert "LT101" in tags
        assert tags["LT101"]["open_alarms"] == 1
        assert {"ll", "l", "h", "hh", "range_low", "range_high", "unit", "in_service"} <= tags["LT101"].keys()
        assert "T101" in {q["code"] for q in e["equipment"]}
        assert e["gateways"]
        assert e["cameras"] == [] or all("url" not in c for c in e["cameras"])
        status, listing = await user.get("/api/v1/enterprises")
        away = next(x for x in listing["enterprises"] if x["code"] == AWAY)
        assert (away["open_alarms"], away["overdue_feedback"]) == (1, 0)


def test_flood_starts_above_ten_in_ten_minutes_and_ends_below_five() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    burst = [now - timedelta(minutes=9, seconds=50 - i) for i in range(11)]
    assert flood_state(burst, now)[:1] == (True,)
    assert flood_state(burst[:10], now) == (False, None, 10)
    # 11 alarms 30 min ago flooded, then ended when they left the window: no flood now
    old = [t - timedelta(minutes=20) for t in burst]
    assert flood_state(old, now) == (False, None, 0)
    # still ≥ 5 in the window after the start: the flood goes on (hysteresis)
    tail = [now - timedelta(minutes=12, seconds=30 - i) for i in range(11)]
    tail += [now - timedelta(minutes=3, seconds=i) for i in range(5)]
    flood, since, count = flood_state(sorted(tail), now)
    assert (flood, count) == (True, 5)
    assert since == tail[10]


async def test_the_board_flood_state_and_groups_stay_in_scope(seeded: Seeded) -> None:
    now_ms = int(time.time() * 1000)
    codes = [
        "LT101",
        "PT101",
        "TT101",
        "LT102",
        "PT102",
        "TT102",
        "LT103",
        "PT103",
        "TT103",
        "FT101",
        "TT201",
    ]
    with psycopg.connect(seeded.url) as conn, conn.transaction():
        apply_transitions(
            conn,
            [Transition(seeded.tags[f"{HOME}/{c}"], Condition.FAULT, 1, now_ms, 1.0, None) for c in codes],
        )
    async with running(seeded.url) as (server, _):
        async with logged_in(server, "county") as county:
            status, body = await county.get("/api/v1/board/flood")
            assert status == 200
            assert (body["flood"], body["last_10min"]) == (True, 11)
            groups = {g["hazard_source_code"]: g["alarms"] for g in body["groups"]}
            assert groups == {"HS330110001-01": 10, "HS330110001-02": 1}
        async with logged_in(server, "qiye2") as other:
            status, body = await other.get("/api/v1/board/flood")
            assert (status, body["flood"], body["last_10min"], body["groups"]) == (200, False, 0, [])
        async with logged_in(server, "admin") as admin:
            status, body = await admin.get("/api/v1/board/flood")
            assert (status, body["flood"], body["groups"]) == (200, False, [])
