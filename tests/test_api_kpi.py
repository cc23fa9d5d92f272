"""KPI, risk, commitment and finding endpoints: each role sees its own scope and nothing more.

The real app on aiohttp's TestServer against a real PostgreSQL with the sample ledger; one
browser-like client per user (tests.test_dashboard_api). E330110001 is in division 330110,
E330281002 in 330281; both in Zhejiang (33).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

from alarms.risk import risk_tick
from tests.test_dashboard_api import AWAY, HOME, Seeded, logged_in, raise_alarm, running, seeded  # noqa: F401

LPG, NH3, CL2 = "HS330110001-01", "HS330110001-02", "HS330281002-01"
FORM: dict[str, Any] = {
    "hazard_source": LPG,
    "unit_status": "running",
    "special_operations": {"hot_work": 1, "lifting": 2},
    "trial_production": False,
    "startup": False,
    "major_hidden_dangers": 0,
    "risk_level": 3,
    "commitment": "今日液化石油气球罐区运行正常，动火作业一处已落实监护，承诺安全。",
}


async def test_kpis_are_read_within_ones_scope_only(seeded: Seeded) -> None:  # noqa: F811
    raise_alarm(seeded.url, seeded.tags[f"{HOME}/LT101"])
    raise_alarm(seeded.url, seeded.tags[f"{AWAY}/LT301"])
    with psycopg.connect(seeded.url) as conn:  # the plant was installed and heard from a day ago
        conn.execute("UPDATE tags SET created_at = now() - interval '1 day'")
        conn.execute("UPDATE gateways SET first_seen_at = now() - interval '1 day'")
    async with running(seeded.url) as (server, _):
        async with logged_in(server, "qiye") as qiye:
            status, body = await qiye.get("/api/v1/kpi")
            assert status == 200
            kpi = body["kpi"]
            assert (kpi["enterprises"], kpi["alarms"], kpi["priority"]["1"]) == ([HOME], 1, 1)
            assert kpi["online"]["expected"] > 0
            assert kpi["time_to_ack"] == {"count": 0, "p50": None, "p90": None, "max": None, "pending": 1}
            assert (await qiye.get(f"/api/v1/kpi?enterprise={AWAY}"))[0] == 404
            assert (await qiye.get("/api/v1/kpi?division=33"))[0] == 403
            assert (await qiye.get(f"/api/v1/kpi?enterprise={HOME}"))[1]["kpi"]["alarms"] == 1
            assert (await qiye.get("/api/v1/kpi?from=yesterday"))[0] == 400
            assert (await qiye.get("/api/v1/kpi?from=2026-01-01T00:00:00Z&to=2026-12-01T00:00:00Z"))[0] == 400
        async with logged_in(server, "county") as county:  # 330110
            status, body = await county.get("/api/v1/kpi")
            assert (status, body["kpi"]["enterprises"], body["kpi"]["alarms"]) == (200, [HOME], 1)
            assert (await county.get("/api/v1/kpi?division=33"))[0] == 403
            assert (await county.get(f"/api/v1/kpi?enterprise={AWAY}"))[0] == 404
        async with logged_in(server, "duty") as duty:  # 33
            status, body = await duty.get("/api/v1/kpi")
            assert (status, body["kpi"]["enterprises"], body["kpi"]["alarms"]) == (200, [HOME, AWAY], 2)
            status, body = await duty.get("/api/v1/kpi?division=330281")
            assert (body["kpi"]["enterprises"], body["kpi"]["alarms"], body["kpi"]["division"]) == (
                [AWAY],
                1,
                "330281",
            )
            assert (await duty.get("/api/v1/kpi?division=33x"))[0] == 400
        async with logged_in(server, "admin") as admin:
            assert (await admin.get("/api/v1/kpi"))[0] == 403


async def test_an_enterprise_files_its_own_commitments_and_reads_only_its_own(seeded: Seeded) -> None:  # noqa: F811
    async with running(seeded.url) as (server, _):
        async with logged_in(server, "qiye") as qiye:
            status, body = await qiye.post("/api/v1/commitments", FORM)
            assert status == 201, body
            filed = body["commitment"]
            assert (filed["revision"], filed["filed_by"], filed["principal"]) == (1, "qiye", "陈建国")
            assert filed["special_operations"] == {"hot_work": 1, "lifting": 2}
            assert (await qiye.post("/api/v1/commitments", {**FORM, "unit_status": "maintenance"}))[1][
                "commitment"
            ]["revision"] == 2
            assert (await qiye.post("/api/v1/commitments", {**FORM, "hazard_source": CL2}))[0] == 404
            status, body = await qiye.post("/api/v1/commitments", {**FORM, "risk_level": 7, "colour": "pink"})
            assert status == 400
            assert "risk_level" in body["message"]
            assert "colour" in body["message"]
            status, body = await qiye.get(f"/api/v1/commitments?day={filed['day']}")  # even past midnight
            assert status == 200
            mine = {c["hazard_source_code"]: c for c in body["commitments"]}
            assert set(mine) == {LPG, NH3}
            assert mine[LPG]["commitment"]["revision"] == 2
            assert mine[LPG]["commitment"]["unit_status"] == "maintenance"
            assert mine[NH3]["commitment"] is None
            assert (await qiye.get(f"/api/v1/commitments?enterprise={AWAY}"))[0] == 404
        async with logged_in(server, "qiye2") as qiye2:
            status, body = await qiye2.get("/api/v1/commitments")
            assert {c["enterprise_code"] for c in body["commitments"]} == {AWAY}
            assert all(c["commitment"] is None for c in body["commitments"])
            assert (await qiye2.post("/api/v1/commitments", FORM))[0] == 404  # not its hazard source
        async with logged_in(server, "duty") as duty:
            assert (await duty.post("/api/v1/commitments", {**FORM}))[0] == 403
            status, body = await duty.get("/api/v1/commitments")
            assert len(body["commitments"]) == 4
        async with logged_in(server, "county") as county:
            status, body = await county.get("/api/v1/commitments")
            assert {c["enterprise_code"] for c in body["commitments"]} == {HOME}
        async with logged_in(server, "admin") as admin:
            assert (await admin.get("/api/v1/commitments"))[0] == 403
    with psycopg.connect(seeded.url) as conn:
        audited = conn.execute(
            "SELECT actor, detail->>'hazard_source', detail->>'revision' FROM audit_log"
            " WHERE action = 'commitment_filed' ORDER BY id"
        ).fetchall()
    assert audited == [("qiye", LPG, "1"), ("qiye", LPG, "2")]


async def test_findings_list_missing_commitments_of_past_days_in_scope(seeded: Seeded) -> None:  # noqa: F811
    span = "from=2026-11-01&to=2026-11-02"
    with psycopg.connect(seeded.url, autocommit=True) as conn:  # registered before those days
        conn.execute("UPDATE hazard_sources SET created_at = '2026-10-31T00:00:00Z'")
    async with running(seeded.url) as (server, _):
        async with logged_in(server, "qiye") as qiye:
            status, body = await qiye.get(f"/api/v1/findings?{span}")
            assert status == 200
            got = [(f["day"], f["hazard_source_code"], f["late"]) for f in body["findings"]]
            assert got == [
                ("2026-11-01", LPG, False), ("2026-11-01", NH3, False),
                ("2026-11-02", LPG, False), ("2026-11-02", NH3, False),
            ]  # fmt: skip
            assert body["findings"][0]["deadline"] == "2026-11-01T02:00:00Z"  # 10:00 in Asia/Shanghai
            assert (await qiye.get(f"/api/v1/findings?{span}&enterprise={AWAY}"))[0] == 404
            assert (await qiye.get("/api/v1/findings?from=2026-11-02&to=2026-11-01"))[0] == 400
            assert (await qiye.get("/api/v1/findings?from=2026-01-01&to=2026-12-01"))[0] == 400
        async with logged_in(server, "jianguan") as regulator:
            status, body = await regulator.get(f"/api/v1/findings?{span}")
            assert len(body["findings"]) == 2 * 4
        async with logged_in(server, "admin") as admin:
            assert (await admin.get(f"/api/v1/findings?{span}"))[0] == 403


async def test_risk_levels_and_history_are_scoped(seeded: Seeded) -> None:  # noqa: F811
    raise_alarm(seeded.url, seeded.tags[f"{HOME}/LT101"])  # HH on the LPG farm: 一级
    with psycopg.connect(seeded.url) as conn:
        risk_tick(conn, datetime.now(UTC))
    async with running(seeded.url) as (server, _):
        async with logged_in(server, "qiye") as qiye:
            status, body = await qiye.get("/api/v1/risk")
            assert status == 200
            assert [e["enterprise_code"] for e in body["enterprises"]] == [HOME]
            lpg = next(h for h in body["hazard_sources"] if h["hazard_source_code"] == LPG)
            assert lpg["level"] <= 2  # raised from 三级 (黄) by the 一级 alarm
            assert lpg["level_name"] in ("红", "橙")
            assert lpg["factors"]["active_alarms"] == {"1": 1}
            assert {h["hazard_source_code"] for h in body["hazard_sources"]} == {LPG, NH3}
            status, body = await qiye.get("/api/v1/risk/history")
            assert status == 200
            assert {h["enterprise_code"] for h in body["history"]} == {HOME}
            assert all(h["from_level"] is None for h in body["history"])
            assert (await qiye.get(f"/api/v1/risk?enterprise={AWAY}"))[0] == 404
        async with logged_in(server, "jianguan") as regulator:
            status, body = await regulator.get("/api/v1/risk")
            assert {e["enterprise_code"] for e in body["enterprises"]} == {HOME, AWAY}
            assert len(body["hazard_sources"]) == 4
            status, body = await regulator.get(f"/api/v1/risk/history?enterprise={AWAY}")
            assert {h["enterprise_code"] for h in body["history"]} == {AWAY}
            assert len(body["history"]) == 3  # the enterprise and its two hazard sources
        async with logged_in(server, "admin") as admin:
            assert (await admin.get("/api/v1/risk"))[0] == 403
            assert (await admin.get("/api/v1/risk/history"))[0] == 403
