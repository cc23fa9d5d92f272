"""Escalation: an alarm not acknowledged, or without feedback, in time walks a chain of people.

Two parts, both idempotent and safe to run in several processes:

* :class:`EscalationTracker`, an outbox consumer, keeps one timer per alarm in
  ``alarm_escalations``: the stage being timed and since when. The stage comes from the alarm's
  *current* row — ``ack`` while it is unacknowledged (UNACK, RTN_UNACK), ``feedback`` while its
  feedback is due or was returned, ``paused`` while shelved, suppressed or out of service,
  ``done`` otherwise — so journal rows read in any order give the same timer. A stage's clock
  starts at the journal row that entered it (the raise, a re-alarm, a returned feedback); the
  feedback clock of an alarm acknowledged in time starts at its annunciation, since feedback is
  due a fixed time after the alarm.
* :func:`escalate_due`, the clock's turn: every timer past due whose alarm is still in that
  stage takes the next step of the chain — journaled as action ``escalation`` (who: the
  workflow; detail: the rung and the person or division told), which the notifier then sends.
  Step *n* (0-based) is due ``acknowledge_minutes`` (or ``feedback_minutes``) after the stage
  began, plus *n* × ``step_minutes``. Timers are locked with SKIP LOCKED: two processes never
  take one step twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from psycopg.types.json import Jsonb

from alarms.outbox import Conn, JournalRow
from alarms.policy import Policy
from alarms.workflow_policy import DIVISION_DIGITS, RUNG_NAMES, Escalation
from hazardwatch.clock import Clock, utc_from_ms

logger = logging.getLogger(__name__)

Stage = Literal["ack", "feedback", "paused", "done"]
ACTION = "escalation"
ACTOR, ROLE = "system", "workflow"
PRIORITY_NAMES = {1: "一级", 2: "二级", 3: "三级"}
_UNACKED = ("UNACK", "RTN_UNACK")
_MASKED = ("SHELVED", "SUPPRESSED", "OUT_OF_SERVICE")


def stage_of(state: str, disposition: str, closed: bool) -> Stage:
    """What an alarm in this state owes, from its current row."""
    if state in _UNACKED:
        return "ack"
    if state in _MASKED:
        return "paused"
    if not closed and disposition in ("due", "returned"):
        return "feedback"
    return "done"


def due_at(
    policy: Escalation, stage: str, priority: int, since: datetime, steps: int, rungs: int | None = None
) -> datetime | None:
    """When step ``steps`` (0-based) of the chain is due, or None when there is none.

    ``rungs`` is the length of the alarm's own chain when known (rungs that name nobody left out).
    """
    length = len(policy.chain) if rungs is None else rungs
    if not policy.enabled or stage not in ("ack", "feedback") or steps >= length:
        return None
    timers = policy.timers_for(priority)
    first = timers.acknowledge_minutes if stage == "ack" else timers.feedback_minutes
    return since + timedelta(minutes=first + steps * timers.step_minutes)


@dataclass(frozen=True, slots=True)
class Timer:
    stage: Stage
    since: datetime
    steps: int


def next_timer(existing: Timer | None, stage: Stage, row: JournalRow) -> Timer:
    """The timer after a journal row, given the alarm's current stage."""
    returned = stage == "feedback" and row.action == "return"  # due again, from the return
    if existing is not None and existing.stage == stage and not returned:
        return existing
    if stage == "feedback" and existing is not None and existing.stage == "ack" and not returned:
        return Timer(stage, existing.since, 0)  # feedback is due a fixed time after the alarm
    if stage in ("paused", "done") and existing is not None:
        return Timer(stage, existing.since, existing.steps)
    return Timer(stage, row.at, 0)


class EscalationTracker:
    """The outbox consumer that keeps ``alarm_escalations`` in step with the journal."""

    name = "escalation"

    def __init__(self, policy: Policy) -> None:
        self.policy = policy.escalation

    def handle(self, conn: Conn, rows: list[JournalRow]) -> None:
        for row in rows:
            self._track(conn, row)

    def _track(self, conn: Conn, row: JournalRow) -> None:
        alarm = conn.execute(
            "SELECT state, priority, disposition, closed_at IS NOT NULL FROM alarms WHERE id = %s",
            (row.alarm_id,),
        ).fetchone()
        if alarm is None:
            return
        stage = stage_of(str(alarm[0]), str(alarm[2]), bool(alarm[3]))
        priority = int(str(alarm[1]))
        found = conn.execute(
            "SELECT stage, since, steps FROM alarm_escalations WHERE alarm_id = %s FOR UPDATE",
            (row.alarm_id,),
        ).fetchone()
        existing = None
        if found is not None:
            assert isinstance(found[1], datetime)  # noqa: S101 - timestamptz column
            existing = Timer(_stage(found[0]), found[1], int(str(found[2])))
        if existing is None and stage == "done":
            return  # nothing was ever owed, nothing to time
        timer = next_timer(existing, stage, row)
        if timer == existing:
            conn.execute(  # the priority may have risen (H → HH): the next step may come sooner
                "UPDATE alarm_escalations SET priority = %s, next_at = %s, updated_at = now()"
                " WHERE alarm_id = %s AND priority <> %s",
                (
                    priority,
                    due_at(self.policy, stage, priority, timer.since, timer.steps),
                    row.alarm_id,
                    priority,
                ),
            )
            return
        conn.execute(
            "INSERT INTO alarm_escalations (alarm_id, stage, priority, since, steps, next_at)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (alarm_id) DO UPDATE SET stage = EXCLUDED.stage,"
            " priority = EXCLUDED.priority, since = EXCLUDED.since, steps = EXCLUDED.steps,"
            " next_at = EXCLUDED.next_at, updated_at = now()",
            (
                row.alarm_id,
                timer.stage,
                priority,
                timer.since,
                timer.steps,
                due_at(self.policy, timer.stage, priority, timer.since, timer.steps),
            ),
        )


def _stage(value: object) -> Stage:
    text = str(value)
    if text == "ack":
        return "ack"
    if text == "feedback":
        return "feedback"
    return "paused" if text == "paused" else "done"


_DUE_SQL = (
    "SELECT e.alarm_id, e.stage, e.since, e.steps, e.next_at, a.state, a.priority, a.disposition,"
    " a.closed_at IS NOT NULL, a.level, a.value, en.code, en.division, hs.operational, hs.technical,"
    " hs.principal FROM alarm_escalations e JOIN alarms a ON a.id = e.alarm_id"
    " JOIN enterprises en ON en.id = a.enterprise_id"
    " LEFT JOIN hazard_sources hs ON hs.id = a.hazard_source_id"
    " WHERE e.next_at <= %s ORDER BY e.next_at, e.alarm_id LIMIT %s FOR UPDATE OF e SKIP LOCKED"
)


def target(
    rung: str, enterprise: str, division: str, people: dict[str, str | None]
) -> dict[str, object] | None:
    """Who a rung of the chain is for this alarm: a named person or a division's duty desk."""
    if rung in DIVISION_DIGITS:
        return {"rung": rung, "division": division[: DIVISION_DIGITS[rung]]}
    person = people.get(rung)
    return None if person is None else {"rung": rung, "enterprise": enterprise, "person": person}


def escalate_due(conn: Conn, policy: Policy, clock: Clock, limit: int = 200) -> int:
    """Take every escalation step that is due; returns the number of steps journaled."""
    now = utc_from_ms(clock.now_ms())
    taken = 0
    with conn.transaction():
        for r in conn.execute(_DUE_SQL, (now, limit)).fetchall():
            taken += _walk(conn, policy.escalation, r, now)
    if taken:
        logger.info("took %d escalation steps", taken)
    return taken


def _walk(conn: Conn, policy: Escalation, r: tuple[object, ...], now: datetime) -> int:
    alarm_id, stage, since, steps = int(str(r[0])), str(r[1]), r[2], int(str(r[3]))
    assert isinstance(since, datetime)  # noqa: S101 - timestamptz column
    state, priority = str(r[5]), int(str(r[6]))
    if stage_of(state, str(r[7]), bool(r[8])) != stage:
        return 0  # the alarm moved on and the tracker has not read that yet: it will re-time it
    people = {"operational": _text(r[13]), "technical": _text(r[14]), "principal": _text(r[15])}
    # a rung that names nobody (a gateway serves no single hazard source) is left out
    chain = [who for rung in policy.chain if (who := target(rung, str(r[11]), str(r[12]), people))]
    level = None if r[9] is None else int(str(r[9]))
    value = r[10] if isinstance(r[10], float) else None
    taken = 0
    due = due_at(policy, stage, priority, since, steps, len(chain))
    while due is not None and due <= now:
        who = chain[steps]
        _journal_step(conn, alarm_id, state, level, value, now, stage, priority, steps, len(chain), who, due)
        steps += 1
        taken += 1
        due = due_at(policy, stage, priority, since, steps, len(chain))
    conn.execute(
        "UPDATE alarm_escalations SET steps = %s, next_at = %s, updated_at = now() WHERE alarm_id = %s",
        (steps, due, alarm_id),
    )
    return taken


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _journal_step(
    conn: Conn,
    alarm_id: int,
    state: str,
    level: int | None,
    value: float | None,
    now: datetime,
    stage: str,
    priority: int,
    step: int,
    of: int,
    who: dict[str, object],
    due: datetime,
) -> None:
    rung = str(who["rung"])
    named = who.get("person") or who.get("division")
    owed = "acknowledged" if stage == "ack" else "given feedback"
    comment = f"{PRIORITY_NAMES.get(priority, priority)} alarm not {owed} in time: step {step + 1} of {of}"
    comment += f", {RUNG_NAMES[rung]} {named}"
    detail: dict[str, object] = {**who, "stage": stage, "step": step, "due_at": due.isoformat()}
    conn.execute(
        "INSERT INTO alarm_journal (alarm_id, at, actor, role, action, from_state, to_state, level, value,"
        " comment, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (alarm_id, now, ACTOR, ROLE, ACTION, state, state, level, value, comment, Jsonb(detail)),
    )


def timers(conn: Conn) -> dict[int, tuple[str, int, datetime | None]]:
    """(stage, steps taken, next due) of every alarm's timer, for the API and tests."""
    rows = conn.execute("SELECT alarm_id, stage, steps, next_at FROM alarm_escalations").fetchall()
    out: dict[int, tuple[str, int, datetime | None]] = {}
    for alarm_id, stage, steps, next_at in rows:
        out[int(str(alarm_id))] = (
            str(stage),
            int(str(steps)),
            next_at if isinstance(next_at, datetime) else None,
        )
    return out
