"""Alarm state changes in the database, each journaled in the same transaction.

The caller owns the transaction: ingest applies condition transitions in the transaction
that writes the readings which caused them, so a reading and its alarm commit together.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import dict_row

from alarms.errors import AlarmNotFound
from alarms.grading import priority
from alarms.states import AlarmState, Change, on_ack, on_condition
from hazardwatch.clock import utc_from_ms
from rules.types import Transition

logger = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[object, ...]]
SYSTEM_ACTOR = "system"
SYSTEM_ROLE = "rules"


@dataclass(frozen=True, slots=True)
class Actor:
    name: str
    role: str


SYSTEM = Actor(SYSTEM_ACTOR, SYSTEM_ROLE)


def _journal(conn: Conn, alarm_id: int, actor: Actor, change: Change, from_state: str | None,
             value: float | None, comment: str = "", at: datetime | None = None) -> None:  # fmt: skip
    conn.execute(
        "INSERT INTO alarm_journal (alarm_id, at, actor, role, action, from_state, to_state, level,"
        " value, comment) VALUES (%s, coalesce(%s, now()), %s, %s, %s, %s, %s, %s, %s, %s)",
        (alarm_id, at, actor.name, actor.role, change.action.value, from_state, change.state.value,
         change.level, value, comment),
    )  # fmt: skip


def _raise(conn: Conn, t: Transition, change: Change) -> int:
    row = conn.execute(
        "SELECT t.enterprise_id, t.hazard_source_id, hs.grade FROM tags t"
        " JOIN hazard_sources hs ON hs.id = t.hazard_source_id WHERE t.id = %s",
        (t.tag_id,),
    ).fetchone()
    if row is None:
        raise AlarmNotFound(f"tag id {t.tag_id} is not in the ledger")
    enterprise_id, source_id, grade = (int(str(v)) for v in row)
    inserted = conn.execute(
        "INSERT INTO alarms (tag_id, enterprise_id, hazard_source_id, condition, level, priority,"
        " state, active, raised_at, value, limit_value)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, true, %s, %s, %s) RETURNING id",
        (t.tag_id, enterprise_id, source_id, t.condition.value, change.level,
         priority(t.condition.value, change.level, grade), change.state.value,
         utc_from_ms(t.ts_ms), t.value, t.limit),
    ).fetchone()  # fmt: skip
    assert inserted is not None  # noqa: S101 - INSERT … RETURNING
    return int(str(inserted[0]))


def apply_transitions(conn: Conn, transitions: Iterable[Transition]) -> int:
    """Apply the rule engine's transitions in order; returns the number of journal rows."""
    journaled = 0
    for t in transitions:
        row = conn.execute(
            "SELECT id, state, active, level FROM alarms"
            " WHERE tag_id = %s AND condition = %s AND state <> 'NORMAL' FOR UPDATE",
            (t.tag_id, t.condition.value),
        ).fetchone()
        state = None if row is None else AlarmState(str(row[1]))
        active = bool(row[2]) if row is not None else False
        level = int(str(row[3])) if row is not None else 0
        change = on_condition(state, active, level, t.level)
        if change is None:
            continue
        at = utc_from_ms(t.ts_ms)
        if row is None:
            alarm_id = _raise(conn, t, change)
        else:
            alarm_id = int(str(row[0]))
            grade_row = conn.execute(
                "SELECT hs.grade FROM alarms a JOIN hazard_sources hs ON hs.id = a.hazard_source_id"
                " WHERE a.id = %s",
                (alarm_id,),
            ).fetchone()
            grade = int(str(grade_row[0])) if grade_row else 4
            conn.execute(
                "UPDATE alarms SET state = %s, active = %s, level = %s, priority = least(priority, %s),"
                " value = coalesce(%s, value), limit_value = coalesce(%s, limit_value),"
                " cleared_at = CASE WHEN %s THEN NULL ELSE %s END,"
                " closed_at = CASE WHEN %s = 'NORMAL' THEN now() ELSE NULL END, updated_at = now()"
                " WHERE id = %s",
                (change.state.value, change.active, change.level,
                 priority(t.condition.value, change.level, grade), t.value, t.limit,
                 change.active, at, change.state.value, alarm_id),
            )  # fmt: skip
        _journal(conn, alarm_id, SYSTEM, change, state.value if state else None, t.value, at=at)
        journaled += 1
    return journaled


def acknowledge(conn: Conn, alarm_id: int, actor: Actor, comment: str = "") -> dict[str, object]:
    """Acknowledge one alarm; the caller has already checked the actor's right and scope.

    Two users acknowledging at once are serialized by the row lock: the second gets
    InvalidTransition (the alarm is already acknowledged), never a double journal entry.
    """
    with conn.transaction():
        row = conn.execute(
            "SELECT state, active, level, value FROM alarms WHERE id = %s FOR UPDATE", (alarm_id,)
        ).fetchone()
        if row is None:
            raise AlarmNotFound(f"no alarm {alarm_id}")
        state = AlarmState(str(row[0]))
        change = on_ack(state, bool(row[1]), int(str(row[2])))
        conn.execute(
            "UPDATE alarms SET state = %s, active = %s, acked_at = now(), acked_by = %s,"
            " closed_at = CASE WHEN %s = 'NORMAL' THEN now() ELSE closed_at END, updated_at = now()"
            " WHERE id = %s",
            (change.state.value, change.active, actor.name, change.state.value, alarm_id),
        )
        value = row[3]
        _journal(
            conn, alarm_id, actor, change, state.value, value if isinstance(value, float) else None, comment
        )
    with conn.cursor(row_factory=dict_row) as cur:
        result = cur.execute("SELECT * FROM alarms WHERE id = %s", (alarm_id,)).fetchone()
    assert result is not None  # noqa: S101 - the row was just locked and updated
    return result


def open_alarm_levels(conn: Conn) -> list[tuple[int, str, int, bool]]:
    """(tag id, condition, level, active) of every open alarm: the rule engine's restart state."""
    rows = conn.execute(
        "SELECT tag_id, condition, level, active FROM alarms WHERE state <> 'NORMAL'"
    ).fetchall()
    return [(int(str(r[0])), str(r[1]), int(str(r[2])), bool(r[3])) for r in rows]
