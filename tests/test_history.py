"""Alarm history through the API: filters, keyset pages, capped totals, CSV — inside the scope."""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from dashboard.history import _cell
from hazardwatch.ledger import Plant
from tests.test_dashboard_api import AWAY, HOME, Seeded, User, logged_in, running, seed

START = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def seeded(database_url: str, sample_plant: Plant) -> Seeded:
    return seed(database_url, sample_plant)


KINDS = ("limit", "predict", "data", "offline")
CONDITIONS = {"limit": "HIGH", "predict": "PREDICT", "data": "FAULT", "offline": "STALE"}


@dataclass(frozen=True)
class Made:
    enterprise: str
    hazard_source: str
    tag: str
    kind: str
    priority: int
    raised_at: datetime


def generate(url: str, n: int, seed: int = 7) -> list[Made]:
    """``n`` closed alarms spread over November on every tag, written as ingest would store them."""
    rng = random.Random(seed)
    with psycopg.connect(url) as conn:
        tags = conn.execute(
            "SELECT t.id, t.code, t.enterprise_id, t.hazard_source_id, t.equipment_id, e.code, hs.code"
            " FROM tags t JOIN enterprises e ON e.id = t.enterprise_id"
            " JOIN hazard_sources hs ON hs.id = t.hazard_source_id ORDER BY t.id"
        ).fetchall()
        made = []
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY alarms (tag_id, subject_kind, subject_id, enterprise_id, hazard_source_id,"
                " equipment_id, condition, kind, level, priority, state, active, raised_at, value,"
                " cleared_at, closed_at, disposition, feedback_required) FROM STDIN"
            ) as copy,
        ):
            for _ in range(n):
                tag_id, code, enterprise, source, equipment, e_code, hs_code = rng.choice(tags)
                kind = rng.choice(KINDS)
                raised = START + timedelta(seconds=rng.randrange(30 * 86400))
                priority = rng.choice((1, 2, 3))
                value = rng.choice((95.5, -1.0, 0.0))
                closes = (raised + timedelta(minutes=5), raised + timedelta(minutes=9))
                copy.write_row((tag_id, "tag", tag_id, enterprise, source, equipment, CONDITIONS[kind], kind,
                                1, priority, "NORMAL", False, raised, value, *closes, "not_required",
                                False))  # fmt: skip
                made.append(Made(str(e_code), str(hs_code), str(code), kind, priority, raised))
        conn.commit()
    return made


def _params(**query: str) -> str:
    return "&".join(f"{k}={v}" for k, v in query.items())


async def _all_pages(user: User, query: str, limit: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = ""
    while True:
        status, body = await user.get(f"/api/v1/history?{query}&limit={limit}{cursor}")
        assert status == 200, body
        rows += body["alarms"]
        if body["next"] is None:
            return rows
        cursor = f"&cursor={body['next']}"


@pytest.mark.parametrize("username", ["duty", "county", "qiye"])
async def test_every_page_of_a_search_stays_in_scope_and_visits_each_alarm_once(
    seeded: Seeded, username: str
) -> None:
    made = generate(seeded.url, 1200)
    expected = [
        a for a in made if (username == "duty" or a.enterprise == HOME) and a.kind in ("limit", "data")
    ]
    async with running(seeded.url) as (server, _), logged_in(server, username) as user:
        rows = await _all_pages(user, "kind=limit,data", 97)
        assert len(rows) == len(expected)
        assert len({r["id"] for r in rows}) == len(rows)
        keys = [(r["raised_at"], r["id"]) for r in rows]
        assert keys == sorted(keys, reverse=True)  # newest first, across pages
        assert {r["kind"] for r in rows} <= {"limit", "data"}
        if username != "duty":
            assert {r["enterprise_code"] for r in rows} == {HOME}
        status, first = await user.get("/api/v1/history?kind=limit,data&limit=10")
        assert (status, first["total"], first["total_capped"]) == (200, len(expected), False)

        # a filter never widens the scope: another enterprise's code finds nothing
        status, other = await user.get(f"/api/v1/history?enterprise={AWAY}")
        assert status == 200
        away = sum(1 for a in made if a.enterprise == AWAY) if username == "duty" else 0
        assert (min(len(other["alarms"]), 1), other["total"]) == (min(away, 1), away)


async def test_filters_combine_and_the_time_range_is_half_open(seeded: Seeded) -> None:
    made = generate(seeded.url, 800, seed=11)
    since, until = START + timedelta(days=3), START + timedelta(days=9)
    expected = [
        a for a in made if a.enterprise == HOME and a.priority in (1, 2) and since <= a.raised_at < until
    ]
    span = {"from": "2026-11-04T08:00:00+08:00", "to": "2026-11-10T00:00:00Z"}
    query = _params(enterprise=HOME, priority="1,2", **span)
    async with running(seeded.url) as (server, _), logged_in(server, "jianguan") as user:
        rows = await _all_pages(user, query, 500)
        assert len({r["id"] for r in rows}) == len(rows)
        assert len(rows) == len(expected)
        assert {r["priority"] for r in rows} <= {1, 2}
        hs = made[0].hazard_source
        only = await _all_pages(user, _params(hazard_source=hs), 500)
        assert len(only) == sum(1 for a in made if a.hazard_source == hs)
        tagged = await _all_pages(user, _params(tag=made[0].tag), 500)
        assert tagged
        assert {r["tag_code"] for r in tagged} == {made[0].tag}


async def test_the_total_is_capped_and_bad_queries_are_refused(seeded: Seeded) -> None:
    generate(seeded.url, 10_050, seed=3)
    async with running(seeded.url) as (server, _), logged_in(server, "duty") as user:
        status, body = await user.get("/api/v1/history?limit=5")
        assert (status, body["total"], body["total_capped"], len(body["alarms"])) == (200, 10_000, True, 5)
        bad_queries = ("priority=4", "kind=weather", "division=33x", "from=2026-11-01T00:00:00",
                       "cursor=nonsense", "enterprise=a'b", "closed=maybe", "limit=0",
                       "state=OPEN", "from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z")  # fmt: skip
        for bad in bad_queries:
            status, body = await user.get(f"/api/v1/history?{bad}")
            assert status == 400, bad
            assert body["error"] == "bad_request"
    async with running(seeded.url) as (server, _), logged_in(server, "admin") as admin:
        assert (await admin.get("/api/v1/history"))[0] == 403
        async with admin.session.get("/api/v1/history.csv") as response:
            assert response.status == 403


async def test_csv_export_has_chinese_headers_local_times_and_no_formulas(seeded: Seeded) -> None:
    made = generate(seeded.url, 300, seed=5)
    mine = [a for a in made if a.enterprise == HOME]
    async with running(seeded.url) as (server, _), logged_in(server, "qiye") as user:
        async with user.session.get("/api/v1/history.csv") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/csv")
            assert "attachment" in response.headers["Content-Disposition"]
            raw = await response.read()
        async with user.session.get("/api/v1/history.csv?lang=en") as response:
            english = (await response.read()).decode("utf-8-sig")
    assert raw.startswith("\ufeff".encode())
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    header, rows = table[0], table[1:]
    assert header[:3] == ["报警编号", "报警时间 (Asia/Shanghai)", "级别"]
    assert english.startswith("Alarm id,Raised (Asia/Shanghai),Priority")
    assert len(rows) == len(mine)
    assert {r[header.index("企业编码")] for r in rows} == {HOME}
    newest = max(a.raised_at for a in mine)
    assert rows[0][1] == newest.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S")
    values = {r[header.index("报警值")] for r in rows}
    assert values <= {"95.5", "-1", "0"}  # numbers stay numbers (not quoted), rounded as on the board
    # codes read as the dashboard's words, in the export's language; the subject is always named
    assert {r[header.index("级别")] for r in rows} <= {"一级", "二级", "三级"}
    states = {"未确认", "已确认", "已恢复未确认", "已恢复已确认", "已搁置", "设计抑制", "停用"}
    assert {r[header.index("状态")] for r in rows} <= states
    assert all(r[header.index("位号/对象")] for r in rows)
    english_rows = list(csv.reader(io.StringIO(english)))
    assert {r[2] for r in english_rows[1:]} <= {"P1", "P2", "P3"}


def test_a_cell_a_spreadsheet_would_run_as_a_formula_is_quoted() -> None:
    zone = ZoneInfo("Asia/Shanghai")
    assert _cell('=HYPERLINK("http://x")', zone) == '\'=HYPERLINK("http://x")'
    assert _cell("@SUM(A1)", zone) == "'@SUM(A1)"
    assert _cell("-12.5", zone) == "-12.5"
    assert _cell(-12.5, zone) == "-12.5"
    assert _cell(None, zone) == ""
    assert _cell(datetime(2026, 12, 1, 2, 0, tzinfo=UTC), zone) == "2026-12-01 10:00:00"


@pytest.mark.parametrize(
    ("value", "cell"),
    [(86.39220620800006, "86.39"), (123.456, "123.5"), (1.23456, "1.235"), (90.0, "90"),
     (-0.0001, "0"), (-12.345, "-12.35"), (0.1 + 0.2, "0.3")],
)  # fmt: skip
def test_a_value_in_the_csv_is_rounded_as_the_board_shows_it(value: float, cell: str) -> None:
    assert _cell(value, ZoneInfo("Asia/Shanghai")) == cell
