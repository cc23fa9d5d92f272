"""The daily safety commitment, its 10:00 finding, and dynamic risk with its history — on a moved clock.

The sample plant's hazard sources: HS330110001-01 (LPG farm, 三级), HS330110001-02 (ammonia, 四级),
HS330281002-01 (chlorine store, 二级), HS330281002-02 (四级). Default policy weights.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from pydantic import ValidationError

from alarms.commitments import (
    CommitmentForm,
    commitments_of_day,
    deadline,
    file_commitment,
    findings,
    local_day,
    sync_alarms,
)
from alarms.policy import DEFAULT, Policy, Risk
from alarms.risk import RISK_LOCK, assess, risk_tick
from alarms.store import Actor, acknowledge, apply_transitions
from hazardwatch.clock import FakeClock
from ingest.service import run_risk
from rules.types import Condition, Subject, Transition

Conn = psycopg.Connection[tuple[object, ...]]
DAY = date(2026, 12, 1)
TEN = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai
QIYE = Actor("qiye", "enterprise")
LPG, NH3, CL2, HCL = "HS330110001-01", "HS330110001-02", "HS330281002-01", "HS330281002-02"


@pytest.fixture
def conn(conn: Conn) -> Conn:
    """The sample ledger, registered well before the days these tests play."""
    conn.execute("UPDATE hazard_sources SET created_at = %s", (TEN - timedelta(days=60),))
    return conn


def test_a_source_owes_no_commitment_for_the_days_before_it_was_registered(conn: Conn) -> None:
    conn.execute(
        "UPDATE hazard_sources SET created_at = %s WHERE code = %s", (TEN + timedelta(minutes=1), LPG)
    )
    after = TEN + timedelta(days=1, hours=1)  # both days' deadlines passed
    got = missing(conn, after, DAY, DAY + timedelta(days=1))
    assert (LPG, str(DAY), False) not in got  # registered a minute after the first day's deadline
    assert (LPG, str(DAY + timedelta(days=1)), False) in got
    assert (NH3, str(DAY), False) in got


def source(conn: Conn, code: str) -> int:
    row = conn.execute("SELECT id FROM hazard_sources WHERE code = %s", (code,)).fetchone()
    assert row is not None
    return int(str(row[0]))


def form(**changes: Any) -> CommitmentForm:
    fields: dict[str, Any] = {
        "unit_status": "running",
        "risk_level": 4,
        "commitment": "今日风险可控，承诺安全生产。",
    }
    return CommitmentForm(**{**fields, **changes})


def missing(conn: Conn, now: datetime, first: date = DAY, last: date = DAY) -> list[tuple[str, str, bool]]:
    return [
        (str(f["hazard_source_code"]), str(f["day"]), bool(f["late"]))
        for f in findings(conn, first, last, now)
    ]


def no_commitment_alarm(conn: Conn, code: str) -> tuple[Any, ...] | None:
    return conn.execute(
        "SELECT state, active, priority, kind, raised_at FROM alarms WHERE subject_kind = 'hazard_source'"
        " AND subject_id = %s AND condition = 'NO_COMMITMENT' ORDER BY id DESC LIMIT 1",
        (source(conn, code),),
    ).fetchone()


def test_the_day_and_deadline_are_local_and_stored_in_utc() -> None:
    assert local_day(datetime(2026, 11, 30, 16, 0, tzinfo=UTC)) == DAY  # 00:00 in Shanghai
    assert local_day(datetime(2026, 11, 30, 15, 59, tzinfo=UTC)) == DAY - timedelta(days=1)
    assert deadline(DAY) == TEN
    urumqi = Policy(risk=Risk(timezone="Asia/Urumqi", commitment_due="09:30"))
    assert deadline(DAY, urumqi) == datetime(2026, 12, 1, 3, 30, tzinfo=UTC)
    with pytest.raises(ValidationError):
        Risk(timezone="Mars/Olympus")
    with pytest.raises(ValidationError):
        Risk(commitment_due="25:00")
    with pytest.raises(ValidationError, match="fall strictly"):
        Risk(thresholds=(40, 60, 20))
    with pytest.raises(ValidationError, match="unknown"):
        form(special_operations={"juggling": 1})
    with pytest.raises(ValidationError):
        form(commitment="   ")


def test_a_commitment_missing_at_ten_is_a_finding_and_an_alarm_until_filed(conn: Conn) -> None:
    early = TEN - timedelta(minutes=30)
    filed = file_commitment(conn, source(conn, LPG), form(special_operations={"hot_work": 1}), QIYE, early)
    assert (filed["revision"], filed["day"], filed["late"], filed["principal"]) == (1, DAY, False, "陈建国")
    assert (filed["filed_by"], filed["filed_role"], filed["filed_at"]) == ("qiye", "enterprise", early)

    before = TEN - timedelta(microseconds=1)
    assert missing(conn, before) == []
    assert sync_alarms(conn, before) == 0
    statuses = {r["hazard_source_code"]: r["status"] for r in commitments_of_day(conn, DAY, before)}
    assert statuses == {LPG: "filed", NH3: "pending", CL2: "pending", HCL: "pending"}

    assert missing(conn, TEN) == [
        (NH3, "2026-12-01", False),
        (CL2, "2026-12-01", False),
        (HCL, "2026-12-01", False),
    ]
    with conn.transaction():
        assert sync_alarms(conn, TEN) == 3
    assert no_commitment_alarm(conn, NH3) == ("UNACK", True, 3, "data", TEN)  # 三级, stamped at the deadline
    assert no_commitment_alarm(conn, LPG) is None
    with conn.transaction():
        assert sync_alarms(conn, TEN + timedelta(minutes=1)) == 0  # idempotent

    late = TEN + timedelta(minutes=30)
    assert file_commitment(conn, source(conn, NH3), form(), QIYE, late)["late"] is True
    assert no_commitment_alarm(conn, NH3) == ("RTN_UNACK", False, 3, "data", TEN)  # cleared when filed
    assert missing(conn, late) == [
        (NH3, "2026-12-01", True),
        (CL2, "2026-12-01", False),
        (HCL, "2026-12-01", False),
    ]
    statuses = {r["hazard_source_code"]: r["status"] for r in commitments_of_day(conn, DAY, late)}
    assert statuses == {LPG: "filed", NH3: "late", CL2: "missing", HCL: "missing"}

    # a revision the same day replaces the figures, not the time it was first filed
    revised = file_commitment(conn, source(conn, LPG), form(unit_status="maintenance"), QIYE, late)
    assert revised["revision"] == 2
    lpg = next(r for r in commitments_of_day(conn, DAY, late) if r["hazard_source_code"] == LPG)
    assert (lpg["status"], lpg["commitment"]["revision"], lpg["commitment"]["unit_status"]) == (
        "filed", 2, "maintenance"
    )  # fmt: skip
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        conn.execute("UPDATE safety_commitments SET risk_level = 1")
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        conn.execute("DELETE FROM safety_commitments")

    # the next day starts over; yesterday's findings stay
    tomorrow = TEN + timedelta(days=1)
    assert (
        missing(conn, tomorrow - timedelta(hours=1), DAY + timedelta(days=1), DAY + timedelta(days=1)) == []
    )
    assert len(missing(conn, tomorrow, DAY, DAY + timedelta(days=1))) == 3 + 4
    scoped = findings(conn, DAY, DAY, late, ("e.code = %s", ["E330110001"]))
    assert [f["hazard_source_code"] for f in scoped] == [NH3]


def levels(conn: Conn) -> dict[str, int]:
    rows = conn.execute(
        "SELECT coalesce(hs.code, e.code), r.level FROM risk_levels r"
        " LEFT JOIN hazard_sources hs ON r.subject_kind = 'hazard_source' AND hs.id = r.subject_id"
        " LEFT JOIN enterprises e ON r.subject_kind = 'enterprise' AND e.id = r.subject_id"
    ).fetchall()
    return {str(code): int(str(level)) for code, level in rows}


def history(conn: Conn) -> list[tuple[str, int | None, int]]:
    rows = conn.execute(
        "SELECT coalesce(hs.code, e.code), h.from_level, h.level FROM risk_history h"
        " LEFT JOIN hazard_sources hs ON h.subject_kind = 'hazard_source' AND hs.id = h.subject_id"
        " LEFT JOIN enterprises e ON h.subject_kind = 'enterprise' AND e.id = h.subject_id ORDER BY h.id"
    ).fetchall()
    return [(str(c), None if f is None else int(str(f)), int(str(t))) for c, f, t in rows]


def raise_hh(conn: Conn, tag_code: str, at: datetime, level: int = 2) -> None:
    row = conn.execute("SELECT id FROM tags WHERE code = %s", (tag_code,)).fetchone()
    assert row is not None
    with conn.transaction():
        apply_transitions(
            conn,
            [Transition(int(str(row[0])), Condition.HIGH, level, int(at.timestamp() * 1000), 92.0, 90.0)],
        )


def test_risk_starts_from_the_grade_and_rises_with_live_factors(conn: Conn) -> None:
    nine = TEN - timedelta(hours=1)
    assert risk_tick(conn, nine) == 6  # first computation: every subject gets a history row
    inherent = {LPG: 3, NH3: 4, CL2: 2, HCL: 4, "E330110001": 3, "E330281002": 2}
    assert levels(conn) == inherent
    assert all(f is None for _, f, _ in history(conn))
    assert risk_tick(conn, nine + timedelta(minutes=1)) == 0  # nothing changed, nothing recorded

    raise_hh(conn, "LT101", nine)  # a 一级 alarm on the LPG farm: +20 → 橙
    assert risk_tick(conn, nine + timedelta(minutes=2)) == 2
    assert levels(conn)[LPG] == 2
    assert levels(conn)["E330110001"] == 2
    assert history(conn)[-2:] == [(LPG, 3, 2), ("E330110001", 3, 2)]

    # the ammonia farm declares 2 hot-work jobs and a start-up, and calls itself blue: 20 + 20 → 橙
    file_commitment(
        conn, source(conn, NH3), form(special_operations={"hot_work": 2}, startup=True), QIYE, nine
    )
    risk_tick(conn, nine + timedelta(minutes=3))
    assert levels(conn)[NH3] == 2
    factors = conn.execute(
        "SELECT factors FROM risk_levels WHERE subject_kind = 'hazard_source' AND subject_id = %s",
        (source(conn, NH3),),
    ).fetchone()
    assert factors is not None
    assert factors[0] == {
        "grade": 4, "inherent_points": 0.0, "special_operations": {"hot_work": 2},
        "special_operation_points": 20.0, "startup": 20.0, "declared_level": 4,
    }  # fmt: skip

    # 10:00: the three without a commitment get +20; the LPG farm (20 + 20 + 20) turns 红
    risk_tick(conn, TEN)
    assert levels(conn) == {LPG: 1, NH3: 2, CL2: 1, HCL: 3, "E330110001": 1, "E330281002": 1}

    # the alarm's feedback is overdue 30 min after its raise: +10
    lpg_id = source(conn, LPG)

    def lpg_score(at: datetime) -> float:
        return next(
            a.score for a in assess(conn, at) if (a.subject_kind, a.subject_id) == ("hazard_source", lpg_id)
        )

    assert lpg_score(nine + timedelta(minutes=29)) == 20.0 + 20.0
    assert lpg_score(nine + timedelta(minutes=31)) == 20.0 + 20.0 + 10.0
    assert lpg_score(TEN) == 20.0 + 20.0 + 10.0 + 20.0  # and the missing commitment

    # the enterprise declares the chlorine store 红 itself: the floor holds even when quiet
    file_commitment(conn, source(conn, CL2), form(risk_level=1), QIYE, TEN + timedelta(minutes=5))
    file_commitment(conn, source(conn, HCL), form(), QIYE, TEN + timedelta(minutes=5))
    file_commitment(conn, source(conn, LPG), form(), QIYE, TEN + timedelta(minutes=5))
    row = conn.execute("SELECT id FROM alarms WHERE condition = 'HIGH' AND state <> 'NORMAL'").fetchone()
    assert row is not None
    acknowledge(conn, int(str(row[0])), QIYE)
    raise_hh(conn, "LT101", TEN + timedelta(minutes=6), level=0)
    risk_tick(conn, TEN + timedelta(minutes=40))
    got = levels(conn)
    # LPG: back to 黄 with its feedback still overdue; the enterprise follows its gravest (ammonia, 橙)
    assert got == {LPG: 3, NH3: 2, CL2: 1, HCL: 4, "E330110001": 2, "E330281002": 1}
    assert [(f, t) for c, f, t in history(conn) if c == LPG] == [(None, 3), (3, 2), (2, 1), (1, 3)]
    assert [(f, t) for c, f, t in history(conn) if c == HCL] == [(None, 4), (4, 3), (3, 4)]
    since = conn.execute(
        "SELECT since, computed_at FROM risk_levels WHERE subject_kind = 'hazard_source' AND subject_id = %s",
        (source(conn, NH3),),
    ).fetchone()
    assert since == (nine + timedelta(minutes=3), TEN + timedelta(minutes=40))


def test_an_alarm_without_a_hazard_source_counts_for_its_enterprise(conn: Conn) -> None:
    gateway = conn.execute("SELECT id FROM gateways ORDER BY id LIMIT 1").fetchone()
    assert gateway is not None
    ms = int((TEN - timedelta(hours=1)).timestamp() * 1000)
    with conn.transaction():
        apply_transitions(
            conn,
            [Transition(int(str(gateway[0])), Condition.GATEWAY_OFFLINE, 1, ms, None, None, Subject.GATEWAY)],
        )
    row = conn.execute("SELECT enterprise_id FROM gateways WHERE id = %s", (gateway[0],)).fetchone()
    assert row is not None
    scores = {(a.subject_kind, a.subject_id): a for a in assess(conn, TEN - timedelta(minutes=30))}
    enterprise = scores[("enterprise", int(str(row[0])))]
    assert (enterprise.factors["active_alarms"], enterprise.factors["alarm_points"]) == ({"3": 1}, 2.0)
    assert enterprise.score == 20.0 + 2.0  # its gravest hazard source (the LPG farm, 三级) and the gateway
    assert enterprise.level == 3
    assert all(a.score in (0.0, 20.0, 40.0) for a in scores.values() if a.subject_kind == "hazard_source")


class OneTurn(threading.Event):
    """A stop event that ends the loop after its first turn (no waiting)."""

    def wait(self, timeout: float | None = None) -> bool:
        self.set()
        return True


def test_ingest_ticks_commitments_and_risk_on_its_clock(conn: Conn, database_url: str) -> None:
    run_risk(database_url, DEFAULT, OneTurn(), FakeClock(int(TEN.timestamp() * 1000)))
    # 10:00 and nobody has filed: +20 everywhere, and a NO_COMMITMENT alarm on each hazard source
    assert levels(conn) == {LPG: 2, NH3: 3, CL2: 1, HCL: 3, "E330110001": 2, "E330281002": 1}
    assert conn.execute("SELECT DISTINCT computed_at FROM risk_levels").fetchall() == [(TEN,)]
    assert conn.execute(
        "SELECT count(*) FROM alarms WHERE condition = 'NO_COMMITMENT' AND active"
    ).fetchone() == (4,)


def test_one_ticker_at_a_time_the_others_skip(conn: Conn, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (RISK_LOCK,))
        assert risk_tick(conn, TEN) == 0
        assert levels(conn) == {}
        # released here, not by closing: a closed session's backend lets go of its locks a moment later
        other.execute("SELECT pg_advisory_unlock(%s)", (RISK_LOCK,))
    assert risk_tick(conn, TEN) == 6


def test_the_weights_are_the_policys(conn: Conn) -> None:
    lenient = Policy(risk=Risk(missing_commitment=0.0, inherent={1: 60.0, 2: 20.0, 3: 0.0, 4: 0.0}))
    chlorine = source(conn, CL2)
    [default] = [
        a for a in assess(conn, TEN) if (a.subject_kind, a.subject_id) == ("hazard_source", chlorine)
    ]
    [custom] = [
        a for a in assess(conn, TEN, lenient) if (a.subject_kind, a.subject_id) == ("hazard_source", chlorine)
    ]
    assert (default.score, default.level, default.factors["missing_commitment"]) == (60.0, 1, 20.0)
    assert (custom.score, custom.level, custom.inherent) == (20.0, 3, 3)
    assert custom.factors["missing_commitment"] == 0.0  # still reported, weighing nothing
