"""The alarm lifecycle in the database: ISA-18.2 states, masks and the regulatory loop.

Every test runs on a fresh database with the sample ledger and moves time by hand (the store
takes ``now`` and the transitions carry their source times): nothing sleeps.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from alarms.errors import InvalidTransition
from alarms.policy import Closure, Policy, Shelving, load_policy
from alarms.states import MASKED, Action, AlarmState, on_ack, on_condition, on_mask, on_unmask
from alarms.store import (
    Actor,
    Attachment,
    acknowledge,
    advance_hidden_danger,
    apply_transitions,
    declare_suppression,
    end_suppression,
    expire,
    feedback_of,
    file_feedback,
    open_hidden_danger,
    review_feedback,
    set_tag_service,
    shelve,
    unshelve,
)
from dashboard.queries import condition_code, peak_level
from hazardwatch.errors import ConfigError
from hazardwatch.ledger import Plant
from ingest.ledger_sync import sync_ledger
from rules.types import Condition, Transition
from tests.support import ROOT

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai
DUTY = Actor("duty", "duty_officer")
QIYE = Actor("qiye", "enterprise")
JIANGUAN = Actor("jianguan", "regulator")
Conn = psycopg.Connection[tuple[object, ...]]


# -- the pure state machine --------------------------------------------------------------
@pytest.mark.parametrize(
    ("state", "active", "level", "new_level", "expected"),
    [
        (None, False, 0, 1, (Action.RAISE, AlarmState.UNACK, True, 1)),
        (None, False, 0, 0, None),
        (AlarmState.UNACK, True, 1, 2, (Action.ESCALATE, AlarmState.UNACK, True, 2)),
        (AlarmState.ACKED, True, 1, 2, (Action.ESCALATE, AlarmState.UNACK, True, 2)),  # re-alarms
        (AlarmState.ACKED, True, 2, 1, (Action.DEESCALATE, AlarmState.ACKED, True, 1)),
        (AlarmState.UNACK, True, 1, 0, (Action.CLEAR, AlarmState.RTN_UNACK, False, 1)),
        (AlarmState.ACKED, True, 1, 0, (Action.CLEAR, AlarmState.NORMAL, False, 1)),
        (AlarmState.RTN_UNACK, False, 1, 1, (Action.REACTIVATE, AlarmState.UNACK, True, 1)),
        # masked: the condition is tracked, the state stays
        (AlarmState.SHELVED, True, 1, 0, (Action.CLEAR, AlarmState.SHELVED, False, 1)),
        (AlarmState.SUPPRESSED, False, 1, 2, (Action.REACTIVATE, AlarmState.SUPPRESSED, True, 2)),
        (AlarmState.OUT_OF_SERVICE, True, 1, 2, (Action.ESCALATE, AlarmState.OUT_OF_SERVICE, True, 2)),
        (AlarmState.SHELVED, True, 1, 1, None),
    ],
)
def test_condition_changes_move_the_state_machine(
    state: AlarmState | None, active: bool, level: int, new_level: int, expected: tuple[object, ...] | None
) -> None:
    change = on_condition(state, active, level, new_level)
    got = None if change is None else (change.action, change.state, change.active, change.level)
    assert got == expected


def test_masks_are_entered_and_left_by_the_rules() -> None:
    assert on_mask(AlarmState.UNACK, True, 1, AlarmState.SHELVED).state == AlarmState.SHELVED
    assert on_mask(AlarmState.SHELVED, True, 1, AlarmState.SUPPRESSED).state == AlarmState.SUPPRESSED
    with pytest.raises(InvalidTransition):
        on_mask(AlarmState.SUPPRESSED, True, 1, AlarmState.SHELVED)  # nothing to shelve on the board
    with pytest.raises(InvalidTransition):
        on_mask(AlarmState.NORMAL, False, 1, AlarmState.SHELVED)
    with pytest.raises(InvalidTransition):
        on_mask(AlarmState.OUT_OF_SERVICE, True, 1, AlarmState.SUPPRESSED)
    for mask in (AlarmState.SUPPRESSED, AlarmState.OUT_OF_SERVICE):  # cleared, awaiting its ack
        with pytest.raises(InvalidTransition, match="stays on the board"):
            on_mask(AlarmState.RTN_UNACK, False, 1, mask)
    assert on_mask(AlarmState.RTN_UNACK, False, 1, AlarmState.SHELVED).state == AlarmState.SHELVED
    for mask in MASKED:
        assert on_unmask(mask, True, 2).state == AlarmState.UNACK  # never silently active
        assert on_unmask(mask, False, 2).state == AlarmState.NORMAL
    with pytest.raises(InvalidTransition):
        on_unmask(AlarmState.ACKED, True, 1)
    with pytest.raises(InvalidTransition):
        on_ack(AlarmState.ACKED, True, 1)


# -- the database ----------------------------------------------------------------------------
def tag(conn: Conn, code: str) -> int:
    row = conn.execute("SELECT id FROM tags WHERE code = %s", (code,)).fetchone()
    assert row is not None
    return int(str(row[0]))


def source_of(conn: Conn, tag_code: str) -> tuple[int, int]:
    """(hazard source id, equipment id) of a tag."""
    row = conn.execute(
        "SELECT hazard_source_id, equipment_id FROM tags WHERE code = %s", (tag_code,)
    ).fetchone()
    assert row is not None
    return int(str(row[0])), int(str(row[1]))


def condition(conn: Conn, tag_id: int, level: int, at: datetime, cond: Condition = Condition.HIGH) -> None:
    with conn.transaction():
        apply_transitions(
            conn, [Transition(tag_id, cond, level, int(at.timestamp() * 1000), 50.0 + level, 50.0)]
        )


def alarm_of(conn: Conn, tag_id: int, cond: str = "HIGH") -> dict[str, object]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute(
            "SELECT * FROM alarms WHERE tag_id = %s AND condition = %s ORDER BY id DESC LIMIT 1",
            (tag_id, cond),
        ).fetchone()
    assert row is not None
    return row


def journal(conn: Conn, alarm_id: object) -> list[tuple[str, str, str, str | None, str]]:
    rows = conn.execute(
        "SELECT actor, role, action, from_state, to_state FROM alarm_journal WHERE alarm_id = %s ORDER BY id",
        (alarm_id,),
    ).fetchall()
    return [(str(a), str(r), str(x), None if f is None else str(f), str(t)) for a, r, x, f, t in rows]


def test_the_regulatory_loop_closes_an_alarm_only_when_cleared_and_its_feedback_accepted(conn: Conn) -> None:
    lt = tag(conn, "LT101")  # LPG sphere farm, 三级: HH is 一级 and owes feedback
    condition(conn, lt, 2, T0)
    alarm = alarm_of(conn, lt)
    assert (alarm["state"], alarm["priority"], alarm["disposition"]) == ("UNACK", 1, "due")
    with pytest.raises(InvalidTransition, match="acknowledge"):
        file_feedback(conn, int(str(alarm["id"])), QIYE, "real_handled", "closed the inlet valve")
    acknowledge(conn, int(str(alarm["id"])), QIYE, "seen")
    condition(conn, lt, 0, T0 + timedelta(minutes=3))
    alarm = alarm_of(conn, lt)
    assert (alarm["state"], alarm["closed_at"]) == ("NORMAL", None)  # cleared, feedback still due

    alarm_id = int(str(alarm["id"]))
    pdf = Attachment("处置记录.pdf", "application/pdf", b"%PDF-1.4 minimal")
    file_feedback(conn, alarm_id, QIYE, "process_fluctuation", "inlet valve throttled", pdf)
    with pytest.raises(InvalidTransition, match="already filed"):
        file_feedback(conn, alarm_id, QIYE, "process_fluctuation", "again")
    with pytest.raises(InvalidTransition, match="comment"):
        review_feedback(conn, alarm_id, JIANGUAN, accept=False)
    assert review_feedback(conn, alarm_id, JIANGUAN, accept=False, comment="说明进料阀处置时间")[
        "disposition"
    ] == ("returned")
    assert alarm_of(conn, lt)["closed_at"] is None
    file_feedback(conn, alarm_id, QIYE, "real_handled", "inlet valve closed at 10:02, level back at 10:03")
    closed = review_feedback(conn, alarm_id, JIANGUAN, accept=True, comment="同意")
    assert closed["disposition"] == "accepted"
    assert closed["closed_at"] is not None

    history = feedback_of(conn, alarm_id)
    assert [(f["reason"], f["review"], f["attachment_name"]) for f in history] == [
        ("process_fluctuation", "returned", "处置记录.pdf"),
        ("real_handled", "accepted", None),
    ]
    assert [(actor, action, to) for actor, _, action, _, to in journal(conn, alarm_id)] == [
        ("system", "raise", "UNACK"),
        ("qiye", "ack", "ACKED"),
        ("system", "clear", "NORMAL"),
        ("qiye", "feedback", "NORMAL"),
        ("jianguan", "return", "NORMAL"),
        ("qiye", "feedback", "NORMAL"),
        ("jianguan", "accept", "NORMAL"),
        ("jianguan", "close", "NORMAL"),
    ]
    with pytest.raises(InvalidTransition, match="no feedback waiting"):
        review_feedback(conn, alarm_id, JIANGUAN, accept=True)


def test_a_low_grade_alarm_closes_on_return_to_normal_unless_the_policy_asks_for_feedback(conn: Conn) -> None:
    lt = tag(conn, "LT201")  # ammonia farm, 四级: PREDICT is 三级
    condition(conn, lt, 1, T0, Condition.PREDICT)
    alarm = alarm_of(conn, lt, "PREDICT")
    assert (alarm["priority"], alarm["disposition"]) == (3, "not_required")
    acknowledge(conn, int(str(alarm["id"])), DUTY)
    condition(conn, lt, 0, T0 + timedelta(seconds=30), Condition.PREDICT)
    assert alarm_of(conn, lt, "PREDICT")["closed_at"] is not None

    strict = Policy(closure=Closure(feedback_required=[1, 2, 3]))
    with conn.transaction():
        ts = int(T0.timestamp() * 1000) + 60_000
        apply_transitions(conn, [Transition(lt, Condition.PREDICT, 1, ts, 1.0, 2.0)], strict)
    again = alarm_of(conn, lt, "PREDICT")
    assert again["disposition"] == "due"
    acknowledge(conn, int(str(again["id"])), DUTY)
    with conn.transaction():
        ts = int(T0.timestamp() * 1000) + 90_000
        apply_transitions(conn, [Transition(lt, Condition.PREDICT, 0, ts, 1.0, 2.0)], strict)
    assert alarm_of(conn, lt, "PREDICT")["closed_at"] is None


def test_escalation_to_hh_re_alarms_an_acknowledged_alarm_and_raises_its_priority(conn: Conn) -> None:
    lt = tag(conn, "LT201")  # 四级 source: H is 二级, HH 一级
    condition(conn, lt, 1, T0)
    alarm_id = int(str(alarm_of(conn, lt)["id"]))
    assert alarm_of(conn, lt)["priority"] == 2
    acknowledge(conn, alarm_id, DUTY)
    condition(conn, lt, 2, T0 + timedelta(seconds=40))
    alarm = alarm_of(conn, lt)
    assert (alarm["state"], alarm["level"], alarm["priority"]) == ("UNACK", 2, 1)
    condition(conn, lt, 1, T0 + timedelta(seconds=80))  # back to H: priority keeps its gravest
    assert (alarm_of(conn, lt)["state"], alarm_of(conn, lt)["priority"]) == ("UNACK", 1)
    assert [action for _, _, action, _, _ in journal(conn, alarm_id)] == [
        "raise",
        "ack",
        "escalate",
        "deescalate",
    ]


def test_the_record_keeps_the_worst_an_alarm_reached(conn: Conn) -> None:
    """Up to HH and back down: the value, limit and label stay HH's, not the clearing reading's."""
    lt = tag(conn, "LT201")

    def change(level: int, seconds: int, value: float, limit: float | None) -> None:
        with conn.transaction():
            ts = int((T0 + timedelta(seconds=seconds)).timestamp() * 1000)
            apply_transitions(conn, [Transition(lt, Condition.HIGH, level, ts, value, limit)])

    change(1, 0, 86.0, 85.0)
    change(2, 30, 91.0, 90.0)
    change(1, 60, 88.0, 85.0)
    change(0, 90, 80.0, None)
    alarm = alarm_of(conn, lt)
    assert (alarm["level"], alarm["peak_level"], alarm["value"], alarm["limit_value"]) == (1, 2, 91.0, 90.0)
    assert (alarm["state"], alarm["active"]) == ("RTN_UNACK", False)
    change(1, 120, 86.5, 85.0)  # back above H: the record still stands for HH
    assert (alarm_of(conn, lt)["value"], alarm_of(conn, lt)["limit_value"]) == (91.0, 90.0)
    assert condition_code("HIGH", peak_level(alarm)) == "HH"


def test_the_database_allows_one_open_alarm_per_subject_and_condition(conn: Conn) -> None:
    lt = tag(conn, "LT101")
    condition(conn, lt, 1, T0)
    condition(conn, lt, 1, T0 + timedelta(seconds=5))  # the same level again: nothing new
    assert conn.execute("SELECT count(*) FROM alarms WHERE tag_id = %s", (lt,)).fetchone() == (1,)
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "INSERT INTO alarms (tag_id, subject_kind, subject_id, enterprise_id, hazard_source_id,"
            " condition, level, priority, state, active, raised_at) SELECT id, 'tag', id, enterprise_id,"
            " hazard_source_id, 'HIGH', 1, 2, 'UNACK', true, now() FROM tags WHERE id = %s",
            (lt,),
        )


def test_an_escalation_past_what_may_be_shelved_ends_the_shelf(conn: Conn) -> None:
    """A shelved H (二级) that climbs to HH (一级, which the policy forbids to shelve) is on the board
    at once, not when the shelf runs out; where the policy lets 一级 be shelved, it stays shelved."""
    lt = tag(conn, "LT201")
    condition(conn, lt, 1, T0)
    alarm_id = int(str(alarm_of(conn, lt)["id"]))
    shelve(conn, alarm_id, DUTY, "level transmitter recalibration", T0 + timedelta(hours=8), T0)
    condition(conn, lt, 2, T0 + timedelta(minutes=10))
    back = alarm_of(conn, lt)
    assert (back["state"], back["level"], back["priority"], back["shelved_until"]) == ("UNACK", 2, 1, None)
    steps = conn.execute(
        "SELECT actor, action, to_state, coalesce(comment, '') FROM alarm_journal WHERE alarm_id = %s"
        " ORDER BY id DESC LIMIT 2",
        (alarm_id,),
    ).fetchall()[::-1]
    assert steps == [
        ("system", "escalate", "SHELVED", ""),
        ("system", "unshelve", "UNACK", "escalated to priority 1, which may not be shelved: the shelf ends"),
    ]

    lax = Policy(shelving=Shelving(priorities=[1, 2, 3]))
    other = tag(conn, "LT202")
    condition(conn, other, 1, T0)
    other_id = int(str(alarm_of(conn, other)["id"]))
    shelve(conn, other_id, DUTY, "noise", T0 + timedelta(hours=8), T0, lax)
    with conn.transaction():
        at = int((T0 + timedelta(minutes=10)).timestamp() * 1000)
        apply_transitions(conn, [Transition(other, Condition.HIGH, 2, at, 52.0, 50.0)], lax)
    assert (alarm_of(conn, other)["state"], alarm_of(conn, other)["level"]) == ("SHELVED", 2)


def test_shelving_follows_the_policy_and_ends_by_itself(conn: Conn) -> None:
    lt = tag(conn, "LT201")
    condition(conn, lt, 1, T0)
    alarm_id = int(str(alarm_of(conn, lt)["id"]))
    with pytest.raises(InvalidTransition, match="regulator may not shelve"):
        shelve(conn, alarm_id, JIANGUAN, "noise", T0 + timedelta(hours=1), T0)
    with pytest.raises(InvalidTransition, match="at most 8 h"):
        shelve(conn, alarm_id, DUTY, "noise", T0 + timedelta(hours=9), T0)
    with pytest.raises(InvalidTransition, match="reason"):
        shelve(conn, alarm_id, DUTY, "  ", T0 + timedelta(hours=1), T0)
    shelved = shelve(conn, alarm_id, DUTY, "level transmitter recalibration", T0 + timedelta(hours=1), T0)
    assert (shelved["state"], shelved["shelved_by"]) == ("SHELVED", "duty")
    with pytest.raises(InvalidTransition, match="already"):
        shelve(conn, alarm_id, DUTY, "again", T0 + timedelta(hours=1), T0)

    condition(conn, lt, 1, T0 + timedelta(minutes=5))  # still H under the shelf: nothing moves
    assert expire(conn, T0 + timedelta(minutes=59)) == 0
    assert expire(conn, T0 + timedelta(hours=1)) == 1
    back = alarm_of(conn, lt)
    assert (back["state"], back["level"], back["shelved_until"]) == ("UNACK", 1, None)  # re-annunciated
    assert expire(conn, T0 + timedelta(hours=2)) == 0  # idempotent
    condition(conn, lt, 2, T0 + timedelta(hours=1, minutes=10))

    # a 一级 alarm may not be shelved by default; a shelf ended by hand on a cleared alarm closes it
    with pytest.raises(InvalidTransition, match="priority 1"):
        shelve(conn, alarm_id, DUTY, "noise", T0 + timedelta(hours=3), T0 + timedelta(hours=2))
    lax = Policy(shelving=Shelving(priorities=[1, 2, 3]))
    shelve(conn, alarm_id, DUTY, "noise", T0 + timedelta(hours=3), T0 + timedelta(hours=2), lax)
    condition(conn, lt, 0, T0 + timedelta(hours=2, minutes=5))
    assert unshelve(conn, alarm_id, DUTY, "done")["state"] == "NORMAL"
    actions = [(actor, action) for actor, _, action, _, _ in journal(conn, alarm_id)]
    assert actions == [
        ("system", "raise"),
        ("duty", "shelve"),
        ("system", "unshelve"),
        ("system", "escalate"),
        ("duty", "shelve"),
        ("system", "clear"),
        ("duty", "unshelve"),
    ]


def test_a_declared_suppression_masks_its_alarms_and_re_annunciates_those_still_active(conn: Conn) -> None:
    lt, pt, other = tag(conn, "LT101"), tag(conn, "PT101"), tag(conn, "LT201")
    source, _ = source_of(conn, "LT101")
    condition(conn, lt, 1, T0)
    condition(conn, other, 1, T0)
    with pytest.raises(InvalidTransition):
        declare_suppression(conn, hazard_source_id=source, equipment_id=None, reason_kind="maintenance",
                            reason="x", starts_at=T0, ends_at=T0 - timedelta(hours=1),
                            actor=QIYE, now=T0)  # fmt: skip
    sid = declare_suppression(
        conn, hazard_source_id=source, equipment_id=None, reason_kind="maintenance",
        reason="1# 球罐检修", starts_at=T0, ends_at=T0 + timedelta(hours=4), actor=QIYE, now=T0,
    )  # fmt: skip
    assert alarm_of(conn, lt)["state"] == "SUPPRESSED"
    assert alarm_of(conn, other)["state"] == "UNACK"  # another hazard source is not covered

    condition(conn, pt, 1, T0 + timedelta(minutes=5))  # raised inside: born suppressed, owes nothing
    born = alarm_of(conn, pt)
    assert (born["state"], born["disposition"], born["suppression_id"]) == ("SUPPRESSED", "not_required", sid)
    condition(conn, lt, 0, T0 + timedelta(minutes=6))  # cleared during the maintenance

    assert end_suppression(conn, sid, QIYE) == 2
    assert alarm_of(conn, lt)["state"] == "NORMAL"
    after = alarm_of(conn, pt)
    assert (after["state"], after["disposition"]) == ("UNACK", "due")  # still active: on the board again
    with pytest.raises(InvalidTransition, match="not in force"):
        end_suppression(conn, sid, QIYE)


def test_a_cleared_alarm_awaiting_its_ack_stays_on_the_board_and_returns_into_the_suppression(
    conn: Conn,
) -> None:
    """A suppression leaves a cleared, unacknowledged alarm on the board; if its condition comes back
    during the maintenance, it goes into the suppression (as a new raise would), not onto the board."""
    lt = tag(conn, "LT101")
    source, _ = source_of(conn, "LT101")
    condition(conn, lt, 1, T0)
    condition(conn, lt, 0, T0 + timedelta(minutes=1))
    sid = declare_suppression(
        conn, hazard_source_id=source, equipment_id=None, reason_kind="maintenance",
        reason="1# 球罐检修", starts_at=T0 + timedelta(minutes=2), ends_at=T0 + timedelta(hours=4),
        actor=QIYE, now=T0 + timedelta(minutes=2),
    )  # fmt: skip
    assert alarm_of(conn, lt)["state"] == "RTN_UNACK"
    condition(conn, lt, 1, T0 + timedelta(minutes=10))
    back = alarm_of(conn, lt)
    assert (back["state"], back["active"], back["suppression_id"]) == ("SUPPRESSED", True, sid)
    assert end_suppression(conn, sid, QIYE) == 1
    assert alarm_of(conn, lt)["state"] == "UNACK"  # still active when the maintenance ends


def test_a_suppression_declared_ahead_starts_and_ends_on_the_clock(conn: Conn) -> None:
    lt = tag(conn, "LT101")
    source, equipment = source_of(conn, "LT101")
    sid = declare_suppression(
        conn, hazard_source_id=source, equipment_id=equipment, reason_kind="startup",
        reason="开车", starts_at=T0 + timedelta(hours=1), ends_at=T0 + timedelta(hours=2), actor=QIYE, now=T0,
    )  # fmt: skip
    condition(conn, lt, 1, T0 + timedelta(minutes=30))
    assert alarm_of(conn, lt)["state"] == "UNACK"
    assert expire(conn, T0 + timedelta(minutes=59)) == 0
    assert expire(conn, T0 + timedelta(hours=1)) == 1
    assert alarm_of(conn, lt)["suppression_id"] == sid
    assert expire(conn, T0 + timedelta(hours=2)) == 1
    assert alarm_of(conn, lt)["state"] == "UNACK"
    row = conn.execute(
        "SELECT ended_by, applied_at IS NOT NULL FROM suppressions WHERE id = %s", (sid,)
    ).fetchone()
    assert row == ("system", True)


def test_a_tag_out_of_service_masks_its_alarms_with_reason_person_and_time(conn: Conn) -> None:
    lt = tag(conn, "LT101")
    condition(conn, lt, 1, T0)
    with pytest.raises(InvalidTransition, match="reason"):
        set_tag_service(conn, lt, False, QIYE)
    assert set_tag_service(conn, lt, False, QIYE, "液位计更换") == 1
    row = conn.execute("SELECT in_service, oos_reason, oos_by FROM tags WHERE id = %s", (lt,)).fetchone()
    assert row == (False, "液位计更换", "qiye")
    assert alarm_of(conn, lt)["state"] == "OUT_OF_SERVICE"
    condition(conn, lt, 1, T0 + timedelta(minutes=1), Condition.FAULT)  # raised out of service
    assert alarm_of(conn, lt, "FAULT")["state"] == "OUT_OF_SERVICE"
    condition(conn, lt, 0, T0 + timedelta(minutes=2), Condition.FAULT)
    with pytest.raises(InvalidTransition, match="already out of service"):
        set_tag_service(conn, lt, False, QIYE, "again")
    assert set_tag_service(conn, lt, True, QIYE) == 2
    assert alarm_of(conn, lt)["state"] == "UNACK"  # HIGH is still active
    assert alarm_of(conn, lt, "FAULT")["state"] == "NORMAL"


def test_two_users_acknowledging_one_alarm_at_once_make_one_journal_entry(
    conn: Conn, database_url: str
) -> None:
    lt = tag(conn, "LT101")
    condition(conn, lt, 1, T0)
    alarm_id = int(str(alarm_of(conn, lt)["id"]))
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def ack(actor: Actor) -> None:
        with psycopg.connect(database_url, autocommit=True) as own:
            barrier.wait()
            try:
                acknowledge(own, alarm_id, actor)
                outcomes.append("ok")
            except InvalidTransition:
                outcomes.append("refused")

    threads = [threading.Thread(target=ack, args=(a,)) for a in (DUTY, QIYE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(outcomes) == ["ok", "refused"]
    assert [action for _, _, action, _, _ in journal(conn, alarm_id)].count("ack") == 1


def test_a_real_abnormality_opens_a_hidden_danger_tracked_to_closure(conn: Conn) -> None:
    lt = tag(conn, "LT101")
    condition(conn, lt, 2, T0)
    alarm_id = int(str(alarm_of(conn, lt)["id"]))
    acknowledge(conn, alarm_id, QIYE)
    file_feedback(conn, alarm_id, QIYE, "instrument_fault", "变送器漂移")
    with pytest.raises(InvalidTransition, match="real abnormality"):
        open_hidden_danger(conn, alarm_id, JIANGUAN, "x", T0 + timedelta(days=7), T0)
    review_feedback(conn, alarm_id, JIANGUAN, accept=False, comment="实为进料过量")
    file_feedback(conn, alarm_id, QIYE, "real_handled", "进料联锁失效，已手动切断")
    with pytest.raises(InvalidTransition, match="future"):
        open_hidden_danger(conn, alarm_id, JIANGUAN, "进料联锁失效", T0 - timedelta(days=1), T0)
    danger = open_hidden_danger(conn, alarm_id, JIANGUAN, "进料联锁失效", T0 + timedelta(days=7), T0)
    with pytest.raises(InvalidTransition, match="open to closed"):
        advance_hidden_danger(conn, danger, JIANGUAN, "closed")
    assert (
        advance_hidden_danger(conn, danger, QIYE, "rectified", "联锁回路修复并测试")["status"] == "rectified"
    )
    assert advance_hidden_danger(conn, danger, JIANGUAN, "open", "测试记录不全")["status"] == "open"
    advance_hidden_danger(conn, danger, QIYE, "rectified", "补充测试记录")
    closed = advance_hidden_danger(conn, danger, JIANGUAN, "closed")
    assert (closed["status"], closed["closed_by"]) == ("closed", "jianguan")
    actions = [action for _, _, action, _, _ in journal(conn, alarm_id)]
    assert actions.count("feedback") == 2
    assert actions.count("hidden_danger") == 1 + 4  # the opening and its four moves, on the alarm's journal


def test_an_operators_out_of_service_outlives_a_ledger_resync(conn: Conn, sample_plant: Plant) -> None:
    lt = tag(conn, "LT101")
    set_tag_service(conn, lt, False, QIYE, "液位计更换")
    with conn.transaction():
        sync_ledger(conn, sample_plant)
    assert conn.execute("SELECT in_service, oos_by FROM tags WHERE id = %s", (lt,)).fetchone() == (
        False,
        "qiye",
    )
    set_tag_service(conn, lt, True, QIYE)
    with conn.transaction():
        sync_ledger(conn, sample_plant)
    assert conn.execute("SELECT in_service, oos_origin FROM tags WHERE id = %s", (lt,)).fetchone() == (
        True,
        "ledger",
    )


def test_a_tag_returned_to_service_under_a_suppression_in_force_stays_suppressed(conn: Conn) -> None:
    lt = tag(conn, "LT101")
    source, _ = source_of(conn, "LT101")
    condition(conn, lt, 1, T0)
    set_tag_service(conn, lt, False, QIYE, "液位计更换")
    sid = declare_suppression(
        conn, hazard_source_id=source, equipment_id=None, reason_kind="maintenance",
        reason="检修", starts_at=T0, ends_at=T0 + timedelta(hours=4), actor=QIYE, now=T0,
    )  # fmt: skip
    assert alarm_of(conn, lt)["state"] == "OUT_OF_SERVICE"  # out of service outranks suppression
    set_tag_service(conn, lt, True, QIYE)
    back = alarm_of(conn, lt)
    assert (back["state"], back["suppression_id"]) == ("SUPPRESSED", sid)
    end_suppression(conn, sid, QIYE)
    assert alarm_of(conn, lt)["state"] == "UNACK"


def test_the_store_refuses_what_the_loop_does_not_allow(conn: Conn) -> None:
    source, _ = source_of(conn, "LT101")
    for kind, reason in (("holiday", "x"), ("maintenance", "  ")):
        with pytest.raises(InvalidTransition):
            declare_suppression(
                conn, hazard_source_id=source, equipment_id=None, reason_kind=kind, reason=reason,
                starts_at=T0, ends_at=T0 + timedelta(hours=1), actor=QIYE, now=T0,
            )  # fmt: skip
    lt = tag(conn, "LT201")
    condition(conn, lt, 1, T0, Condition.PREDICT)  # 三级: closes without feedback
    alarm_id = int(str(alarm_of(conn, lt, "PREDICT")["id"]))
    acknowledge(conn, alarm_id, DUTY)
    condition(conn, lt, 0, T0 + timedelta(seconds=30), Condition.PREDICT)
    with pytest.raises(InvalidTransition, match="closed"):
        file_feedback(conn, alarm_id, QIYE, "process_fluctuation", "nothing to say")

    hh = tag(conn, "LT101")
    condition(conn, hh, 2, T0)
    other = int(str(alarm_of(conn, hh)["id"]))
    acknowledge(conn, other, QIYE)
    file_feedback(conn, other, QIYE, "real_handled", "切断进料")
    danger = open_hidden_danger(conn, other, JIANGUAN, "联锁失效", T0 + timedelta(days=7), T0)
    advance_hidden_danger(conn, danger, QIYE, "rectified", "已修复")
    with pytest.raises(InvalidTransition, match="sent back"):
        advance_hidden_danger(conn, danger, JIANGUAN, "open")


def test_a_workflow_call_leaves_a_non_autocommit_connection_idle(database_url: str, conn: Conn) -> None:
    lt = tag(conn, "LT101")
    condition(conn, lt, 1, T0)
    alarm_id = int(str(alarm_of(conn, lt)["id"]))
    with psycopg.connect(database_url) as manual:
        assert acknowledge(manual, alarm_id, DUTY)["state"] == "ACKED"
        assert manual.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert alarm_of(conn, lt)["state"] == "ACKED"  # committed, seen from another connection


def test_the_policy_example_in_the_readme_is_a_valid_policy(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("```yaml\nversion: 1\ngrading:") + len("```yaml\n")
    example = tmp_path / "policy.yaml"
    example.write_text(text[start : text.index("```", start)], encoding="utf-8")
    policy = load_policy(example)
    assert policy.shelving.max_hours == 8
    assert policy.grading.priority("FIRE", 1, 4) == 1
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nshelving: {max_hourz: 8}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.yaml:2"):
        load_policy(broken)
