"""Escalation on an injected clock against a real PostgreSQL: each step of the chain when its
timer runs out, acknowledgement and feedback stopping it, a shelf pausing it, two processes at
once. Notifications go to a real loopback HTTP receiver. Nothing sleeps: the clock is moved."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import yaml

from alarms.escalation import ACTION, Timer, due_at, next_timer, stage_of, timers
from alarms.outbox import JournalRow
from alarms.policy import Policy, load_policy
from alarms.store import (
    Actor,
    acknowledge,
    apply_transitions,
    file_feedback,
    review_feedback,
    shelve,
    unshelve,
)
from alarms.workflows import Workflows
from hazardwatch.clock import FakeClock, utc_from_ms
from hazardwatch.ledger import Plant
from rules.types import Subject, Transition
from tests.workflow_support import (
    ENTERPRISE,
    ENVIRON,
    OPERATIONAL,
    PRINCIPAL,
    START_MS,
    TECHNICAL,
    Conn,
    Receiver,
    raise_alarm,
    receiving,
    seed,
    source_tags,
    webhook_policy,
)

QIYE = Actor("qiye", "enterprise")
JIANGUAN = Actor("jianguan", "regulator")
CHAIN = ["operational", "technical", "principal", "county", "city", "province"]


@pytest.fixture
def tags(database_url: str, sample_plant: Plant) -> dict[str, int]:
    return seed(database_url, sample_plant)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


@pytest.fixture
def conn(database_url: str, tags: dict[str, int]) -> Iterator[Conn]:
    with psycopg.connect(database_url, autocommit=True) as c:
        yield c


def steps_of(conn: Conn, alarm_id: int) -> list[tuple[str, str, object, str]]:
    """(rung, stage, person or division, journal time) of every escalation step of an alarm."""
    rows = conn.execute(
        "SELECT detail->>'rung', detail->>'stage', coalesce(detail->>'person', detail->>'division'), at"
        " FROM alarm_journal WHERE alarm_id = %s AND action = %s ORDER BY id",
        (alarm_id, ACTION),
    ).fetchall()
    return [
        (str(r[0]), str(r[1]), r[2], r[3].isoformat() if isinstance(r[3], datetime) else "") for r in rows
    ]


def journal_at(conn: Conn, alarm_id: int, action: str) -> datetime:
    """When the newest journal row of an action on an alarm was written (store workflows write
    the database's time, not the test's clock)."""
    row = conn.execute(
        "SELECT max(at) FROM alarm_journal WHERE alarm_id = %s AND action = %s", (alarm_id, action)
    ).fetchone()
    assert row is not None
    assert isinstance(row[0], datetime)
    return row[0]


def at(minutes: float) -> str:
    return utc_from_ms(START_MS + int(minutes * 60_000)).isoformat()


def test_an_unacknowledged_first_grade_alarm_walks_the_whole_chain(
    conn: Conn, tags: dict[str, int], receiver: Receiver
) -> None:
    clock = FakeClock(START_MS)
    flows = Workflows.from_environment(webhook_policy(receiver), clock, ENVIRON)
    alarm = raise_alarm(conn, source_tags(tags)[0], clock, level=2)  # HH → 一级
    assert conn.execute("SELECT priority FROM alarms WHERE id = %s", (alarm,)).fetchone() == (1,)

    flows.tick(conn)
    assert [r.path for r in receiver.requests] == ["/operational"]  # told of the raise at once
    clock.advance(5 * 60 - 1)
    assert flows.tick(conn).escalated == 0
    expected: list[tuple[str, str, object, str]] = []
    who = [OPERATIONAL, TECHNICAL, PRINCIPAL, "330110", "3301", "33"]
    for step, rung in enumerate(CHAIN):
        if step:
            clock.advance(5 * 60 - 1)
            assert flows.tick(conn).escalated == 0, f"step {step} came early"
        clock.advance(1)
        assert flows.tick(conn).escalated == 1
        expected.append((rung, "ack", who[step], at(5 + 5 * step)))
        assert steps_of(conn, alarm) == expected
        assert receiver.requests[-1].path == f"/{rung}"
    clock.advance(3600)
    assert flows.tick(conn).escalated == 0  # the chain is walked: nothing further
    assert timers(conn)[alarm] == ("ack", 6, None)
    assert [r.path for r in receiver.requests] == ["/operational", *(f"/{r}" for r in CHAIN)]
    assert all(r.signed for r in receiver.requests)
    last = receiver.requests[-1].json
    assert last["escalation"]["rung"] == "province"
    assert last["alarm_id"] == alarm
    assert "step 6 of 6" in last["text"]
    assert last["enterprise"] == ENTERPRISE


def test_acknowledgement_stops_it_and_the_feedback_timer_takes_over(
    conn: Conn, tags: dict[str, int], receiver: Receiver
) -> None:
    clock = FakeClock(START_MS)
    flows = Workflows.from_environment(webhook_policy(receiver), clock, ENVIRON)
    alarm = raise_alarm(conn, source_tags(tags)[0], clock, level=2)
    clock.advance(5 * 60)
    flows.tick(conn)
    clock.advance(2 * 60)
    acknowledge(conn, alarm, QIYE)
    flows.tick(conn)
    assert timers(conn)[alarm][0] == "feedback"
    clock.advance(20 * 60)  # 27 min after the raise: the ack chain would have gone 4 steps on
    assert flows.tick(conn).escalated == 0
    clock.advance(3 * 60)  # 30 min after the raise: feedback is overdue
    assert flows.tick(conn).escalated == 1
    assert steps_of(conn, alarm) == [
        ("operational", "ack", OPERATIONAL, at(5)),
        ("operational", "feedback", OPERATIONAL, at(30)),
    ]
    clock.advance(4 * 60)
    file_feedback(conn, alarm, QIYE, "process_fluctuation", "调整进料")
    flows.tick(conn)
    clock.advance(24 * 3600)
    assert flows.tick(conn).escalated == 0
    assert timers(conn)[alarm][0] == "done"
    # a returned feedback is due again, timed from the return (a process started at that time)
    review_feedback(conn, alarm, JIANGUAN, accept=False, comment="措施不具体")
    returned = journal_at(conn, alarm, "return")
    clock = FakeClock(int(returned.timestamp() * 1000) + 1)  # the journal keeps microseconds
    flows = Workflows.from_environment(webhook_policy(receiver), clock, ENVIRON)
    assert flows.tick(conn).escalated == 0
    assert timers(conn)[alarm] == ("feedback", 0, returned + timedelta(minutes=30))
    clock.advance(30 * 60)
    assert flows.tick(conn).escalated == 1
    assert steps_of(conn, alarm)[-1][:2] == ("operational", "feedback")
    assert len(steps_of(conn, alarm)) == 3


def test_second_grade_defaults_and_an_acknowledgement_before_the_timer(
    conn: Conn, tags: dict[str, int], receiver: Receiver
) -> None:
    clock = FakeClock(START_MS)
    policy = webhook_policy(receiver)
    flows = Workflows.from_environment(policy, clock, ENVIRON)
    late = raise_alarm(conn, source_tags(tags)[0], clock, level=1)  # H → 二级
    early = raise_alarm(conn, source_tags(tags)[1], clock, level=1)
    flows.tick(conn)
    clock.advance(14 * 60)
    acknowledge(conn, early, QIYE)
    assert flows.tick(conn).escalated == 0
    clock.advance(60)
    assert flows.tick(conn).escalated == 1  # 15 min: only the one still unacknowledged
    assert [s[0] for s in steps_of(conn, late)] == ["operational"]
    assert steps_of(conn, early) == []
    start = utc_from_ms(START_MS)
    assert due_at(policy.escalation, "ack", 2, start, 1) == start + timedelta(minutes=30)
    assert due_at(policy.escalation, "feedback", 3, start, 0) == start + timedelta(hours=24)


def test_a_shelf_pauses_the_timer_and_the_re_annunciation_restarts_it(
    conn: Conn, tags: dict[str, int], receiver: Receiver
) -> None:
    clock = FakeClock(START_MS)
    flows = Workflows.from_environment(webhook_policy(receiver), clock, ENVIRON)
    alarm = raise_alarm(conn, source_tags(tags)[0], clock, level=1)  # 二级: may be shelved
    flows.tick(conn)
    clock.advance(10 * 60)
    now = utc_from_ms(clock.now_ms())
    shelve(conn, alarm, QIYE, "仪表检修", now + timedelta(hours=1), now)
    flows.tick(conn)
    assert timers(conn)[alarm] == ("paused", 0, None)
    clock.advance(3600)
    assert flows.tick(conn).escalated == 0
    unshelve(conn, alarm, QIYE)
    flows.tick(conn)
    assert timers(conn)[alarm] == ("ack", 0, journal_at(conn, alarm, "unshelve") + timedelta(minutes=15))


def test_a_rise_to_first_grade_brings_the_next_step_forward(
    conn: Conn, tags: dict[str, int], receiver: Receiver
) -> None:
    clock = FakeClock(START_MS)
    flows = Workflows.from_environment(webhook_policy(receiver), clock, ENVIRON)
    alarm = raise_alarm(conn, source_tags(tags)[0], clock, level=1)  # 二级: first step at 15 min
    flows.tick(conn)
    clock.advance(2 * 60)
    raise_alarm(conn, source_tags(tags)[0], clock, level=2)  # HH: 一级, re-alarmed
    flows.tick(conn)
    clock.advance(3 * 60)  # 5 min after the raise
    assert flows.tick(conn).escalated == 1
    assert steps_of(conn, alarm) == [("operational", "ack", OPERATIONAL, at(5))]


def test_two_processes_take_each_step_once(
    database_url: str, conn: Conn, tags: dict[str, int], receiver: Receiver
) -> None:
    clock = FakeClock(START_MS)
    policy = webhook_policy(receiver, group_window_s=0, rate_limit={"max_messages": 1000})
    alarms = [raise_alarm(conn, tag, clock, level=2) for tag in source_tags(tags)]
    workers = [Workflows.from_environment(policy, clock, ENVIRON) for _ in range(2)]
    for minutes in (0, 5, 5, 5):
        clock.advance(60 * minutes)
        barrier = threading.Barrier(2)

        def work(flows: Workflows, barrier: threading.Barrier = barrier) -> None:
            with psycopg.connect(database_url, autocommit=True) as own:
                barrier.wait()
                for _ in range(3):
                    flows.tick(own)

        threads = [threading.Thread(target=work, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for alarm in alarms:
        assert [s[0] for s in steps_of(conn, alarm)] == CHAIN[:3]
    keys = [r.headers["x-hazardwatch-delivery"] for r in receiver.requests]
    assert len(keys) == len(set(keys))
    told = sorted(
        (r.path, item["journal_id"]) for r in receiver.requests for item in r.json.get("items", [r.json])
    )
    assert len(told) == len(set(told)) == len(alarms) * 4  # the raise and three steps, once each


def test_escalation_can_be_switched_off(conn: Conn, tags: dict[str, int], receiver: Receiver) -> None:
    clock = FakeClock(START_MS)
    base = webhook_policy(receiver)
    policy = Policy.model_validate(
        {"escalation": {"enabled": False}, "notifications": base.notifications.model_dump()}
    )
    flows = Workflows.from_environment(policy, clock, ENVIRON)
    alarm = raise_alarm(conn, source_tags(tags)[0], clock, level=2)
    flows.tick(conn)
    clock.advance(24 * 3600)
    assert flows.tick(conn).escalated == 0
    assert steps_of(conn, alarm) == []


def test_a_chain_and_timers_from_the_policy_file(
    conn: Conn, tags: dict[str, int], receiver: Receiver, tmp_path: Path
) -> None:
    notifications = webhook_policy(receiver).notifications.model_dump(mode="json")
    doc = {
        "escalation": {
            "chain": ["technical", "city"],
            "timers": {
                1: {"acknowledge_minutes": 2, "feedback_minutes": 10, "step_minutes": 3},
                2: {"acknowledge_minutes": 10, "feedback_minutes": 60, "step_minutes": 10},
                3: {"acknowledge_minutes": 30, "feedback_minutes": 600, "step_minutes": 30},
            },
        },
        "notifications": notifications,
    }
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    clock = FakeClock(START_MS)
    flows = Workflows.from_environment(load_policy(path), clock, ENVIRON)
    alarm = raise_alarm(conn, source_tags(tags)[0], clock, level=2)
    flows.tick(conn)
    for _ in range(12):
        clock.advance(30)
        flows.tick(conn)
    assert steps_of(conn, alarm) == [("technical", "ack", TECHNICAL, at(2)), ("city", "ack", "3301", at(5))]
    assert [r.path for r in receiver.requests] == ["/operational", "/technical", "/city"]


def test_a_gateway_alarm_names_no_person_and_goes_to_the_duty_officers(
    conn: Conn, tags: dict[str, int], receiver: Receiver
) -> None:
    clock = FakeClock(START_MS)
    flows = Workflows.from_environment(webhook_policy(receiver), clock, ENVIRON)
    row = conn.execute(
        "SELECT g.id FROM gateways g JOIN enterprises e ON e.id = g.enterprise_id WHERE e.code = %s LIMIT 1",
        (ENTERPRISE,),
    ).fetchone()
    assert row is not None
    with conn.transaction():
        offline = Transition(
            int(str(row[0])), "GATEWAY_OFFLINE", 1, clock.now_ms(), None, None, Subject.GATEWAY
        )
        apply_transitions(conn, [offline])
    alarm = int(str(conn.execute("SELECT max(id) FROM alarms").fetchone()[0]))  # type: ignore[index]
    flows.tick(conn)
    assert receiver.requests == []  # no 操作负责人 for a gateway: nobody is told of the raise
    for _ in range(4):  # 三级: 60 min, then a step an hour
        clock.advance(3600)
        flows.tick(conn)
    assert steps_of(conn, alarm) == [
        ("county", "ack", "330110", at(60)),
        ("city", "ack", "3301", at(120)),
        ("province", "ack", "33", at(180)),
    ]
    assert "step 3 of 3" in receiver.requests[-1].json["text"]


@pytest.mark.parametrize(
    ("state", "disposition", "closed", "stage"),
    [
        ("UNACK", "due", False, "ack"),
        ("RTN_UNACK", "not_required", False, "ack"),
        ("SHELVED", "due", False, "paused"),
        ("OUT_OF_SERVICE", "due", False, "paused"),
        ("ACKED", "due", False, "feedback"),
        ("NORMAL", "returned", False, "feedback"),
        ("ACKED", "filed", False, "done"),
        ("ACKED", "not_required", False, "done"),
        ("NORMAL", "accepted", True, "done"),
    ],
)
def test_the_stage_comes_from_the_alarm_row(state: str, disposition: str, closed: bool, stage: str) -> None:
    assert stage_of(state, disposition, closed) == stage


def _row(action: str, minute: int) -> JournalRow:
    return JournalRow(
        1, 1, 1, utc_from_ms(START_MS + minute * 60_000), "x", "y", action, None, "UNACK", 1, None, ""
    )


@pytest.mark.parametrize(
    ("existing", "stage", "action", "expected"),
    [
        (None, "ack", "raise", ("ack", 9, 0)),  # timed from the raise
        (("ack", 0, 2), "ack", "reactivate", ("ack", 0, 2)),  # still unacknowledged: the clock runs on
        (("ack", 0, 2), "feedback", "ack", ("feedback", 0, 0)),  # feedback is due from the alarm
        (("feedback", 0, 1), "feedback", "return", ("feedback", 9, 0)),  # due again from the return
        (("ack", 0, 1), "ack", "return", ("ack", 0, 1)),  # an old return row does not restart the ack
        (("ack", 0, 1), "paused", "shelve", ("paused", 0, 1)),
        (("paused", 0, 1), "ack", "unshelve", ("ack", 9, 0)),  # re-annunciated: a new clock
        (None, "feedback", "raise", ("feedback", 9, 0)),  # read late, already acknowledged
    ],
)
def test_next_timer(
    existing: tuple[str, int, int] | None, stage: str, action: str, expected: tuple[str, int, int]
) -> None:
    def timer(t: tuple[str, int, int]) -> Timer:
        return Timer(t[0], utc_from_ms(START_MS + t[1] * 60_000), t[2])  # type: ignore[arg-type]

    got = next_timer(None if existing is None else timer(existing), stage, _row(action, 9))  # type: ignore[arg-type]
    assert got == timer(expected)
