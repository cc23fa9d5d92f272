"""Alarm KPIs over a scripted day, recomputed independently from the journal in plain Python.

The day (tests.scripted_day) has thousands of alarms on the sample plant, with a flood in it; the
recomputation below replays the journal row by row and shares no code with alarms.kpi.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from alarms.kpi import Kpis, Selection, compute
from hazardwatch.cli import main
from hazardwatch.ledger import load_plant
from ingest.ledger_sync import sync_ledger
from ingest.migrate import migrate
from ingest.storage import online_rates
from tests.scripted_day import END, FLOOD_AT, FLOOD_FOR, START, clocked_connection, scripted_day
from tests.support import SAMPLE_DEVICES, private_database

Conn = psycopg.Connection[tuple[object, ...]]
MICROSECOND = timedelta(microseconds=1)
S = 1_000_000  # microseconds
ANNOUNCING = {"raise", "reactivate", "escalate", "unshelve", "unsuppress", "return_to_service"}


@dataclass(frozen=True)
class Row:
    id: int
    alarm_id: int
    at: datetime
    action: str
    to_state: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class AlarmInfo:
    source: tuple[str, str, int, str, str]  # enterprise, subject kind, subject id, condition, subject code
    division: str
    priority: int
    raised_at: datetime
    feedback_required: bool


@pytest.fixture(scope="module")
def day() -> Iterator[str]:
    """One scripted day for the module's tests (generating it is the slow part)."""
    with private_database() as url:
        migrate(url)
        with psycopg.connect(url) as conn:
            sync_ledger(conn, load_plant(SAMPLE_DEVICES))
            conn.commit()
        with clocked_connection(url) as conn:
            scripted_day(conn)
        yield url


def load(url: str) -> tuple[list[Row], dict[int, AlarmInfo]]:
    with psycopg.connect(url) as conn:
        rows = [
            Row(int(str(r[0])), int(str(r[1])), r[2], str(r[3]), str(r[4]), r[5])
            for r in conn.execute(
                "SELECT id, alarm_id, at, action, to_state, detail FROM alarm_journal ORDER BY id"
            ).fetchall()
        ]
        alarms = {
            int(str(r[0])): AlarmInfo(
                (str(r[1]), str(r[2]), int(str(r[3])), str(r[4]), str(r[5])),
                str(r[6]),
                int(str(r[7])),
                r[8],
                bool(r[9]),
            )
            for r in conn.execute(
                "SELECT a.id, e.code, a.subject_kind, a.subject_id, a.condition, t.code, e.division,"
                " a.priority, a.raised_at, a.feedback_required FROM alarms a"
                " JOIN enterprises e ON e.id = a.enterprise_id JOIN tags t ON t.id = a.tag_id"
            ).fetchall()
        }
    return rows, alarms


def rank(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct * len(ordered) / 100)) - 1]


def recompute(rows: list[Row], alarms: dict[int, AlarmInfo], keep: Any) -> dict[str, Any]:
    """Every KPI from the journal, the slow and obvious way."""
    chosen = {i for i, a in alarms.items() if keep(a)}
    later: dict[int, list[Row]] = defaultdict(list)
    for r in rows:
        if r.alarm_id in chosen and r.at < END:
            later[r.alarm_id].append(r)
    announced = [r for r in rows if r.alarm_id in chosen and START <= r.at < END
                 and r.to_state == "UNACK" and r.action in ANNOUNCING]  # fmt: skip
    announced.sort(key=lambda r: (r.at, r.id))
    times = [(r.at - START) // MICROSECOND for r in announced]  # exact: whole microseconds
    total = len(announced)
    out: dict[str, Any] = {"alarms": total}

    def next_of(r: Row, action: str) -> Row | None:
        return next((n for n in later[r.alarm_id] if n.id > r.id and n.action == action), None)

    per10 = Counter(t // (600 * S) for t in times)
    perday = Counter(t // (86400 * S) for t in times)
    out["per_10min_peak"] = max(per10.values())
    out["per_10min_avg"] = total / 144
    out["per_day_peak"] = max(perday.values())

    # floods: walk every instant where the trailing 10-minute count can change
    instants = sorted(set(times) | {t + 600 * S for t in times if t + 600 * S < 86400 * S})
    floods, flooding, begin, peak = [], False, 0, 0
    for p in instants:
        count = sum(1 for t in times if p - 600 * S < t <= p)
        if not flooding and count > 10:
            flooding, begin, peak = True, p, count
        elif flooding:
            peak = max(peak, count) if count >= 5 else peak
            if count < 5:
                floods.append((begin, p, sum(1 for t in times if begin <= t < p), peak))
                flooding = False
    if flooding:
        floods.append((begin, 86400 * S, sum(1 for t in times if begin <= t), peak))
    out["floods"] = [(a / S, b / S, n, top) for a, b, n, top in floods]
    out["flood_time_pct"] = 100 * sum(b - a for a, b, _, _ in floods) / (86400 * S)

    by_source: dict[tuple[str, str, int, str, str], list[Row]] = defaultdict(list)
    for r in announced:
        by_source[alarms[r.alarm_id].source].append(r)
    ranking = sorted(by_source, key=lambda s: (-len(by_source[s]), s[0], s[4], s[3], s[1], s[2]))
    out["bad_actors"] = [(f"{s[0]}/{s[4]} {s[3]}", len(by_source[s])) for s in ranking[:10]]
    out["bad_actor_share_pct"] = 100 * sum(len(by_source[s]) for s in ranking[:10]) / total

    chatter = set()
    for s, got in by_source.items():
        ts = [r.at for r in got]
        if any(ts[i + 2] - ts[i] <= timedelta(seconds=60) for i in range(len(ts) - 2)):
            chatter.add(f"{s[0]}/{s[4]} {s[3]}")
    out["chattering"] = chatter

    fleeting = 0
    for got in by_source.values():
        for i, r in enumerate(got):
            clear = next_of(r, "clear")
            if clear is None or clear.at - r.at >= timedelta(seconds=10):
                continue
            near = [o for j, o in enumerate(got) if j != i and abs((o.at - r.at).total_seconds()) <= 60]
            fleeting += not near
    out["fleeting"] = fleeting

    stale = []
    for alarm_id in sorted(chosen):
        active, since, state = False, None, None
        for r in later[alarm_id]:
            state = r.to_state
            if r.action in ("raise", "reactivate") and not active:
                active, since = True, r.at
            elif r.action == "clear":
                active = False
        if (
            active
            and state in ("UNACK", "ACKED")
            and since is not None
            and since <= END - timedelta(hours=24)
        ):
            stale.append(alarm_id)
    out["stale"] = stale

    out["priority"] = {p: sum(1 for r in announced if alarms[r.alarm_id].priority == p) for p in (1, 2, 3)}
    waits = [(a.at - r.at).total_seconds() for r in announced if (a := next_of(r, "ack")) is not None]
    out["tta"] = (len(waits), rank(waits, 50), rank(waits, 90), max(waits), total - len(waits))
    owed = [i for i in chosen if alarms[i].feedback_required and START <= alarms[i].raised_at < END]
    filed = []
    for i in owed:
        first = next((r for r in later[i] if r.action == "feedback" and "reason" in r.detail), None)
        if first is not None:
            filed.append((first.at - alarms[i].raised_at).total_seconds())
    out["ttf"] = (len(filed), rank(filed, 50), rank(filed, 90), max(filed), len(owed) - len(filed))
    return out


def seconds(span: timedelta) -> float:
    return round(span.total_seconds(), 3)


def check(kpis: Kpis, expected: dict[str, Any]) -> None:
    assert kpis.alarms == expected["alarms"]
    assert kpis.per_10min_peak == expected["per_10min_peak"]
    assert kpis.per_10min_avg == pytest.approx(expected["per_10min_avg"])
    assert kpis.per_day_peak == expected["per_day_peak"] == expected["alarms"]
    assert kpis.per_day_avg == pytest.approx(expected["alarms"])
    got_floods = [
        (seconds(f.start - START), seconds(f.end - START), f.alarms, f.peak_10min) for f in kpis.floods
    ]
    assert got_floods == [(round(a, 3), round(b, 3), n, peak) for a, b, n, peak in expected["floods"]]
    assert kpis.flood_time_pct == pytest.approx(expected["flood_time_pct"])
    assert [(b.source, b.alarms) for b in kpis.bad_actors] == expected["bad_actors"]
    assert kpis.bad_actor_share_pct == pytest.approx(expected["bad_actor_share_pct"])
    assert {c.source for c in kpis.chattering} == expected["chattering"]
    assert kpis.fleeting == expected["fleeting"]
    assert [s.alarm_id for s in kpis.stale] == expected["stale"]
    assert kpis.priority == expected["priority"]
    tta = kpis.time_to_ack
    assert (tta.count, tta.p50, tta.p90, tta.max, tta.pending) == pytest.approx(expected["tta"])
    ttf = kpis.time_to_feedback
    assert (ttf.count, ttf.p50, ttf.p90, ttf.max, ttf.pending) == pytest.approx(expected["ttf"])


def test_a_scripted_day_gives_the_kpis_the_journal_gives(day: str) -> None:
    rows, alarms = load(day)
    with psycopg.connect(day) as conn:
        rates = online_rates(conn, START, END, "enterprise")
        kpis = compute(conn, START, END, Selection("33"), rates)
    expected = recompute(rows, alarms, lambda a: a.division.startswith("33"))
    check(kpis, expected)

    # the day is what it says: thousands of alarms, the gas-leak flood among the floods
    assert kpis.alarms >= 2000
    flood = next(f for f in kpis.floods if f.start <= FLOOD_AT + timedelta(minutes=5) <= f.end)
    assert flood.alarms > 300
    assert flood.end >= FLOOD_AT + FLOOD_FOR - timedelta(minutes=5)
    assert kpis.chattering
    assert kpis.fleeting > 0
    assert len(kpis.stale) == 2  # the two raised the evening before; the one from 04:00 is 20 h old
    assert kpis.time_to_ack.count > 1000
    assert kpis.time_to_feedback.count > 100
    assert sum(kpis.priority.values()) == kpis.alarms
    assert kpis.enterprises == ["E330110001", "E330281002"]
    assert kpis.online is not None
    assert kpis.online.expected == sum(r.expected for r in rates)
    assert kpis.online.received == sum(r.received for r in rates)


@pytest.mark.parametrize(
    ("selection", "keep"),
    [
        (Selection("330281"), lambda a: a.division.startswith("330281")),
        (Selection("", "E330110001"), lambda a: a.source[0] == "E330110001"),
    ],
)
def test_kpis_of_one_operator_position_count_only_its_alarms(
    day: str, selection: Selection, keep: Any
) -> None:
    rows, alarms = load(day)
    with psycopg.connect(day) as conn:
        kpis = compute(conn, START, END, selection)
    check(kpis, recompute(rows, alarms, keep))
    assert kpis.enterprises == [selection.enterprise_code or "E330281002"]


def test_an_empty_or_bad_range(day: str) -> None:
    with psycopg.connect(day) as conn:
        quiet = compute(conn, START - timedelta(days=3), START - timedelta(days=2), Selection("33"))
        assert (quiet.alarms, quiet.floods, quiet.bad_actors, quiet.time_to_ack.count) == (0, [], [], 0)
        assert quiet.time_to_ack.p50 is None
        with pytest.raises(ValueError, match="before"):
            compute(conn, END, START)
        with pytest.raises(ValueError, match="92 days"):
            compute(conn, START, START + timedelta(days=93))


def test_the_command_line_prints_the_kpis_in_local_time_or_as_json(
    day: str, capsys: pytest.CaptureFixture[str]
) -> None:
    span = ["--database-url", day, "--from", START.isoformat(), "--to", END.isoformat()]
    with psycopg.connect(day) as conn:
        kpis = compute(conn, START, END, Selection("330110"))
    assert main(["kpi", *span, "--division", "330110", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["alarms"], data["division"], data["enterprises"]) == (kpis.alarms, "330110", ["E330110001"])
    assert len(data["floods"]) == len(kpis.floods)
    assert data["time_to_ack"]["p90"] == kpis.time_to_ack.p90
    assert data["online"]["expected"] > 0
    assert datetime.fromisoformat(data["floods"][0]["start"]).utcoffset() is not None  # ISO 8601 times

    assert main(["kpi", *span, "--enterprise", "E330110001"]) == 0
    text = capsys.readouterr().out
    assert (
        "KPIs of enterprise E330110001 from 2026-12-01 00:00:00 to 2026-12-02 00:00:00 (Asia/Shanghai)"
        in text
    )
    assert f"  alarms                 {kpis.alarms}\n" in text
    assert f"{kpis.bad_actors[0].source}" in text
    assert "一级" in text
    assert main(["kpi", "--database-url", day, "--from", "yesterday", "--to", END.isoformat()]) == 2
    assert main(["kpi", *span, "--enterprise", "E999"]) == 2  # not in the ledger: not "no alarms"
    assert "no enterprise 'E999'" in capsys.readouterr().err


def test_bad_actors_are_named_by_their_ledger_code_whatever_their_kind(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    """A voting group and a camera are GV101 and CAM101 to the duty officer, not vote_group:1."""
    from alarms.store import apply_transitions
    from rules.types import Condition, Subject, Transition

    group = conn.execute("SELECT id FROM vote_groups WHERE code = 'GV101'").fetchone()
    camera = conn.execute("SELECT id FROM cameras WHERE code = 'CAM101'").fetchone()
    assert group is not None
    assert camera is not None
    at = datetime.now(UTC) - timedelta(hours=1)
    ms = int(at.timestamp() * 1000)
    apply_transitions(conn, [
        Transition(int(str(group[0])), Condition.VOTE, 1, ms, 2.0, 2.0, subject=Subject.VOTE_GROUP),
        Transition(int(str(camera[0])), "TAMPER", 1, ms + 1, None, None, subject=Subject.CAMERA),
    ])  # fmt: skip
    kpis = compute(conn, at - timedelta(minutes=1), at + timedelta(minutes=1), Selection("33"))
    assert sorted(b.source for b in kpis.bad_actors) == ["E330110001/CAM101 TAMPER", "E330110001/GV101 VOTE"]
