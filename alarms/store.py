"""Alarm state changes in the database, each journaled in the same transaction.

The caller owns the transaction of :func:`apply_transitions`: ingest applies condition
transitions in the transaction that writes the readings which caused them, so a reading and its
alarm commit together. The workflow functions (acknowledge, shelve, feedback, review, …) open
their own transaction and lock the alarm row, so two users acting on one alarm at once are
serialized: the second gets :class:`InvalidTransition`, never a double journal entry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alarms.errors import AlarmNotFound, InvalidTransition
from alarms.policy import DEFAULT, Policy, kind_of
from alarms.states import MASKED, Action, AlarmState, Change, on_ack, on_condition, on_mask, on_unmask
from hazardwatch.clock import utc_from_ms
from rules.types import Subject, Transition

logger = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[object, ...]]
Row = dict[str, object]
SYSTEM_ACTOR = "system"
SYSTEM_ROLE = "rules"
FEEDBACK_REASONS = (
    "instrument_fault",  # 仪表故障
    "process_fluctuation",  # 工艺波动
    "maintenance_startup",  # 检维修/开停车
    "false_alarm_threshold",  # 误报/阈值设置
    "real_handled",  # 真实异常已处置
)
MAX_ATTACHMENT = 5 * 1024 * 1024
SUPPRESSION_KINDS = ("maintenance", "startup", "shutdown")  # 检维修, 开车, 停车


@dataclass(frozen=True, slots=True)
class Actor:
    name: str
    role: str


SYSTEM = Actor(SYSTEM_ACTOR, SYSTEM_ROLE)
WORKFLOW = Actor(SYSTEM_ACTOR, "workflow")


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    content_type: str
    data: bytes


def _int(value: object) -> int:
    return int(str(value))


def _journal(
    conn: Conn,
    alarm_id: int,
    actor: Actor,
    action: Action,
    from_state: str | None,
    to_state: str,
    level: int | None,
    value: float | None = None,
    comment: str = "",
    at: datetime | None = None,
    detail: dict[str, object] | None = None,
) -> None:
    conn.execute(
        "INSERT INTO alarm_journal (alarm_id, at, actor, role, action, from_state, to_state, level,"
        " value, comment, detail) VALUES (%s, coalesce(%s, now()), %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            alarm_id,
            at,
            actor.name,
            actor.role,
            action.value,
            from_state,
            to_state,
            level,
            value,
            comment,
            Jsonb(detail or {}),
        ),
    )


def _note(
    conn: Conn,
    alarm: dict[str, object],
    actor: Actor,
    action: Action,
    comment: str,
    detail: dict[str, object],
) -> None:
    """Journal an act of the regulatory loop on an alarm; its ISA state stays as it is."""
    state = str(alarm["state"])
    _journal(conn, _int(alarm["id"]), actor, action, state, state, _int(alarm["level"]), comment=comment,
             detail=detail)  # fmt: skip


def _journal_change(
    conn: Conn,
    alarm_id: int,
    actor: Actor,
    change: Change,
    from_state: str | None,
    value: float | None = None,
    comment: str = "",
    at: datetime | None = None,
    detail: dict[str, object] | None = None,
) -> None:
    _journal(
        conn,
        alarm_id,
        actor,
        change.action,
        from_state,
        change.state.value,
        change.level,
        value,
        comment,
        at,
        detail,
    )


# -- subjects ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Owner:
    """Where a subject sits in the ledger."""

    enterprise_id: int
    hazard_source_id: int | None
    equipment_id: int | None
    grade: int | None  # None: not a major hazard source (S < 1), no GB 18218 grade to lend
    in_service: bool = True


_OWNER_SQL = {
    Subject.TAG: "SELECT t.enterprise_id, t.hazard_source_id, t.equipment_id, hs.grade, t.in_service"
    " FROM tags t JOIN hazard_sources hs ON hs.id = t.hazard_source_id WHERE t.id = %s",
    Subject.CAMERA: "SELECT c.enterprise_id, c.hazard_source_id, c.equipment_id, hs.grade, true"
    " FROM cameras c JOIN hazard_sources hs ON hs.id = c.hazard_source_id WHERE c.id = %s",
    Subject.HAZARD_SOURCE: "SELECT enterprise_id, id, NULL, grade, true FROM hazard_sources WHERE id = %s",
    # a gateway serves several hazard sources: its alarms take the enterprise's gravest grade (none
    # when no source of it is a major hazard source)
    Subject.GATEWAY: "SELECT g.enterprise_id, NULL, NULL,"
    " (SELECT min(grade) FROM hazard_sources WHERE enterprise_id = g.enterprise_id), true"
    " FROM gateways g WHERE g.id = %s",
    Subject.VOTE_GROUP: "SELECT hs.enterprise_id, hs.id, v.equipment_id, hs.grade, v.in_service"
    " FROM vote_groups v JOIN hazard_sources hs ON hs.id = v.hazard_source_id WHERE v.id = %s",
}


def _owner(conn: Conn, subject: Subject, subject_id: int) -> _Owner:
    row = conn.execute(_OWNER_SQL[subject], (subject_id,)).fetchone()
    if row is None:
        raise AlarmNotFound(f"{subject.value} id {subject_id} is not in the ledger")
    return _Owner(
        _int(row[0]),
        None if row[1] is None else _int(row[1]),
        None if row[2] is None else _int(row[2]),
        None if row[3] is None else _int(row[3]),
        bool(row[4]),
    )


def _suppression_at(conn: Conn, owner: _Owner, at: datetime) -> int | None:
    """The declared suppression (maintenance, start-up) covering a subject at a time, if any."""
    if owner.hazard_source_id is None:
        return None
    row = conn.execute(
        "SELECT id FROM suppressions WHERE hazard_source_id = %s AND starts_at <= %s"
        " AND %s < coalesce(least(ended_at, ends_at), ends_at)"
        " AND (equipment_id IS NULL OR equipment_id = %s) ORDER BY id LIMIT 1",
        (owner.hazard_source_id, at, at, owner.equipment_id),
    ).fetchone()
    return None if row is None else _int(row[0])


# -- condition transitions from the rule engine and edge events ------------------------------
def apply_transitions(conn: Conn, transitions: Iterable[Transition], policy: Policy = DEFAULT) -> int:
    """Apply condition transitions in order; returns the number of journal rows."""
    journaled = 0
    for t in transitions:
        condition = str(t.condition)
        row = conn.execute(
            "SELECT a.id, a.state, a.active, a.level, a.disposition, hs.grade, a.peak_level FROM alarms a"
            " LEFT JOIN hazard_sources hs ON hs.id = a.hazard_source_id"
            " WHERE a.subject_kind = %s AND a.subject_id = %s AND a.condition = %s AND a.state <> 'NORMAL'"
            " FOR UPDATE OF a",
            (t.subject.value, t.subject_id, condition),
        ).fetchone()
        at = utc_from_ms(t.ts_ms)
        if row is None:
            if t.level <= 0:
                continue
            alarm_id, raised = _raise(conn, t, condition, at, policy)
            _journal_change(conn, alarm_id, SYSTEM, raised, None, t.value, at=at, detail=t.detail)
            journaled += 1
            continue
        alarm_id, state = _int(row[0]), AlarmState(str(row[1]))
        change = on_condition(state, bool(row[2]), _int(row[3]), t.level)
        if change is None:
            continue
        suppression = None
        if change.action == Action.REACTIVATE and state == AlarmState.RTN_UNACK:
            change, suppression = _into_mask(conn, t, at, change)
        grade = None if row[5] is None else _int(row[5])
        prio = policy.grading.priority(condition, change.level, grade)
        # the record keeps the worst the alarm reached: its value and limit change with a raise or
        # an escalation to its highest level yet, not when it falls back or clears
        worst = t.level > 0 and t.level >= _int(row[6])
        conn.execute(
            "UPDATE alarms SET state = %s, active = %s, level = %s, priority = least(priority, %s),"
            " peak_level = greatest(peak_level, %s),"
            " value = CASE WHEN %s THEN coalesce(%s, value) ELSE value END,"
            " limit_value = CASE WHEN %s THEN coalesce(%s, limit_value) ELSE limit_value END,"
            " cleared_at = CASE WHEN %s THEN NULL ELSE %s END,"
            " disposition = CASE WHEN disposition = 'not_required' AND %s AND state <> %s THEN 'due'"
            "   ELSE disposition END,"
            " detail = detail || %s, updated_at = now() WHERE id = %s",
            (
                change.state.value,
                change.active,
                change.level,
                prio,
                change.level,
                worst,
                t.value,
                worst,
                t.limit,
                change.active,
                at,
                policy.feedback_required(prio) and change.state not in MASKED,
                change.state.value,
                Jsonb(t.detail or {}),
                alarm_id,
            ),
        )
        if suppression is not None:
            conn.execute("UPDATE alarms SET suppression_id = %s WHERE id = %s", (suppression, alarm_id))
        _journal_change(conn, alarm_id, SYSTEM, change, state.value, t.value, at=at, detail=t.detail)
        journaled += 1
        if change.state == AlarmState.NORMAL:
            _maybe_close(conn, alarm_id, SYSTEM)
        elif change.state == AlarmState.SHELVED and change.active and prio not in policy.shelving.priorities:
            # a shelf hides only what the policy lets be shelved: escalated past it, the alarm is
            # annunciated now, not when the shelf runs out (up to max_hours later)
            comment = f"escalated to priority {prio}, which may not be shelved: the shelf ends"
            journaled += _unmask_where(conn, "a.id = %s", (alarm_id,), SYSTEM, comment, policy)
    return journaled


def _into_mask(conn: Conn, t: Transition, at: datetime, change: Change) -> tuple[Change, int | None]:
    """A cleared alarm left on the board for its acknowledgement (masks skip it) whose condition
    returns while its subject is out of service or under a declared suppression goes into that mask,
    as a new raise would, not onto the board; the suppression's id when it is one."""
    owner = _owner(conn, t.subject, t.subject_id)
    if not owner.in_service:
        return Change(change.action, AlarmState.OUT_OF_SERVICE, change.active, change.level), None
    suppression = _suppression_at(conn, owner, at)
    if suppression is None:
        return change, None
    return Change(change.action, AlarmState.SUPPRESSED, change.active, change.level), suppression


def _raise(conn: Conn, t: Transition, condition: str, at: datetime, policy: Policy) -> tuple[int, Change]:
    owner = _owner(conn, t.subject, t.subject_id)
    suppression = _suppression_at(conn, owner, at)
    mask = (
        AlarmState.OUT_OF_SERVICE
        if not owner.in_service
        else AlarmState.SUPPRESSED
        if suppression is not None
        else None
    )
    change = on_condition(None, False, 0, t.level, mask)
    assert change is not None  # noqa: S101 - a positive level always raises
    prio = policy.grading.priority(condition, change.level, owner.grade)
    required = policy.feedback_required(prio) and mask is None
    inserted = conn.execute(
        "INSERT INTO alarms (tag_id, subject_kind, subject_id, enterprise_id, hazard_source_id, equipment_id,"
        " condition, kind, level, peak_level, priority, state, active, raised_at, value, limit_value, detail,"
        " suppression_id, feedback_required, disposition)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, true, %s, %s, %s, %s, %s, %s, %s)"
        " RETURNING id",
        (
            t.subject_id if t.subject == Subject.TAG else None,
            t.subject.value,
            t.subject_id,
            owner.enterprise_id,
            owner.hazard_source_id,
            owner.equipment_id,
            condition,
            kind_of(condition),
            change.level,
            change.level,
            prio,
            change.state.value,
            at,
            t.value,
            t.limit,
            Jsonb(t.detail or {}),
            suppression,
            required,
            "due" if required else "not_required",
        ),
    ).fetchone()
    assert inserted is not None  # noqa: S101 - INSERT … RETURNING
    return _int(inserted[0]), change


def open_alarm_levels(conn: Conn) -> list[tuple[int, str, int, bool]]:
    """(tag id, condition, level, active) of every open tag alarm: the rule engine's restart state."""
    rows = conn.execute(
        "SELECT subject_id, condition, level, active FROM alarms"
        " WHERE state <> 'NORMAL' AND subject_kind = 'tag'"
    ).fetchall()
    return [(_int(r[0]), str(r[1]), _int(r[2]), bool(r[3])) for r in rows]


def refresh_active(conn: Conn, subject: Subject, subject_id: int, condition: str, value: float | None,
                   detail: dict[str, object]) -> bool:  # fmt: skip
    """Update what an active alarm reports (its value, its detail) where its state does not change:
    not a state change, so nothing is journaled. False when no such alarm is active."""
    row = conn.execute(
        "UPDATE alarms SET value = coalesce(%s, value), detail = detail || %s, updated_at = now()"
        " WHERE subject_kind = %s AND subject_id = %s AND condition = %s AND state <> 'NORMAL' AND active"
        " RETURNING id",
        (value, Jsonb(detail), subject.value, subject_id, condition),
    ).fetchone()
    return row is not None


# -- operator and enterprise actions ---------------------------------------------------------
def _lock(conn: Conn, alarm_id: int) -> dict[str, object]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM alarms WHERE id = %s FOR UPDATE", (alarm_id,)).fetchone()
    if row is None:
        raise AlarmNotFound(f"no alarm {alarm_id}")
    return row


def _fetch(conn: Conn, alarm_id: int) -> Row:
    with conn.cursor(row_factory=dict_row) as cur:
        result = cur.execute("SELECT * FROM alarms WHERE id = %s", (alarm_id,)).fetchone()
    if result is None:
        raise AlarmNotFound(f"no alarm {alarm_id}")
    return result


def _float(value: object) -> float | None:
    return value if isinstance(value, float) else None


def _set_state(
    conn: Conn, alarm_id: int, change: Change, extra_sql: str = "", extra: tuple[object, ...] = ()
) -> None:
    conn.execute(
        f"UPDATE alarms SET state = %s, active = %s, level = %s, updated_at = now(){extra_sql} WHERE id = %s",
        (change.state.value, change.active, change.level, *extra, alarm_id),
    )


def _maybe_close(conn: Conn, alarm_id: int, actor: Actor) -> bool:
    """Close an alarm back to NORMAL whose disposition allows it (journaled as ``close``)."""
    row = conn.execute(
        "UPDATE alarms SET closed_at = now(), updated_at = now() WHERE id = %s AND state = 'NORMAL'"
        " AND closed_at IS NULL AND disposition IN ('accepted', 'not_required') RETURNING level",
        (alarm_id,),
    ).fetchone()
    if row is None:
        return False
    _journal(conn, alarm_id, actor, Action.CLOSE, "NORMAL", "NORMAL", _int(row[0]))
    return True


def acknowledge(conn: Conn, alarm_id: int, actor: Actor, comment: str = "") -> Row:
    """Acknowledge one alarm; the caller has already checked the actor's right and scope."""
    with conn.transaction():
        row = _lock(conn, alarm_id)
        state = AlarmState(str(row["state"]))
        change = on_ack(state, bool(row["active"]), _int(row["level"]))
        _set_state(conn, alarm_id, change, ", acked_at = now(), acked_by = %s", (actor.name,))
        _journal_change(conn, alarm_id, actor, change, state.value, _float(row["value"]), comment)
        if change.state == AlarmState.NORMAL:
            _maybe_close(conn, alarm_id, actor)
        return _fetch(conn, alarm_id)


def shelve(
    conn: Conn,
    alarm_id: int,
    actor: Actor,
    reason: str,
    until: datetime,
    now: datetime,
    policy: Policy = DEFAULT,
) -> Row:
    """Shelve an annunciated alarm until a time (at most the policy's maximum), with a reason."""
    if actor.role not in policy.shelving.roles:
        raise InvalidTransition(
            f"a {actor.role} may not shelve alarms (policy: {', '.join(policy.shelving.roles)})"
        )
    if not reason.strip():
        raise InvalidTransition("shelving needs a reason")
    if until <= now:
        raise InvalidTransition("a shelf must end in the future")
    if until - now > timedelta(hours=policy.shelving.max_hours):
        raise InvalidTransition(f"a shelf may last at most {policy.shelving.max_hours:g} h")
    with conn.transaction():
        row = _lock(conn, alarm_id)
        if _int(row["priority"]) not in policy.shelving.priorities:
            raise InvalidTransition(f"priority {row['priority']} alarms may not be shelved")
        state = AlarmState(str(row["state"]))
        change = on_mask(state, bool(row["active"]), _int(row["level"]), AlarmState.SHELVED)
        _set_state(
            conn,
            alarm_id,
            change,
            ", shelved_until = %s, shelved_by = %s, shelve_reason = %s",
            (until, actor.name, reason.strip()),
        )
        _journal_change(
            conn,
            alarm_id,
            actor,
            change,
            state.value,
            _float(row["value"]),
            reason.strip(),
            detail={"until": until.isoformat()},
        )
        return _fetch(conn, alarm_id)


def unshelve(conn: Conn, alarm_id: int, actor: Actor, comment: str = "", policy: Policy = DEFAULT) -> Row:
    """End a shelf now: re-annunciate if still active."""
    with conn.transaction():
        row = _lock(conn, alarm_id)
        if row["state"] != AlarmState.SHELVED:
            raise InvalidTransition(f"the alarm is {row['state']}, not shelved")
        _unmask(conn, row, actor, comment, policy)
        return _fetch(conn, alarm_id)


def _unmask(conn: Conn, row: dict[str, object], actor: Actor, comment: str, policy: Policy) -> None:
    """Leave a masked state; a re-annunciated alarm owes feedback if its priority asks for it."""
    alarm_id = _int(row["id"])
    state = AlarmState(str(row["state"]))
    change = on_unmask(state, bool(row["active"]), _int(row["level"]))
    suppression = None
    if state == AlarmState.OUT_OF_SERVICE and change.state == AlarmState.UNACK:
        # back in service while a declared suppression covers it: suppressed, not annunciated
        suppression = _in_force(conn, row)
        if suppression is not None:
            change = Change(change.action, AlarmState.SUPPRESSED, change.active, change.level)
    due = change.state == AlarmState.UNACK and policy.feedback_required(_int(row["priority"]))
    _set_state(
        conn,
        alarm_id,
        change,
        ", shelved_until = NULL, suppression_id = %s,"
        " disposition = CASE WHEN %s AND disposition = 'not_required' THEN 'due' ELSE disposition END,"
        " feedback_required = feedback_required OR %s",
        (suppression, due, due),
    )
    _journal_change(conn, alarm_id, actor, change, state.value, _float(row["value"]), comment)
    if change.state == AlarmState.NORMAL:
        _maybe_close(conn, alarm_id, actor)


def _in_force(conn: Conn, alarm: dict[str, object]) -> int | None:
    """A declared suppression in force now (started, not ended) covering an alarm's subject."""
    if alarm["hazard_source_id"] is None:
        return None
    row = conn.execute(
        "SELECT id FROM suppressions WHERE hazard_source_id = %s AND applied_at IS NOT NULL"
        " AND ended_at IS NULL AND (equipment_id IS NULL OR equipment_id = %s) ORDER BY id LIMIT 1",
        (alarm["hazard_source_id"], alarm["equipment_id"]),
    ).fetchone()
    return None if row is None else _int(row[0])


def _mask_open(
    conn: Conn,
    where: str,
    params: tuple[object, ...],
    mask: AlarmState,
    actor: Actor,
    comment: str,
    suppression_id: int | None = None,
) -> int:
    """Move the open alarms matching ``where`` into a masked state; returns how many moved."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT * FROM alarms a WHERE a.state <> 'NORMAL' AND a.state <> %s AND {where}"
            " ORDER BY a.id FOR UPDATE",
            (mask.value, *params),
        ).fetchall()
    moved = 0
    for row in rows:
        state = AlarmState(str(row["state"]))
        try:
            change = on_mask(state, bool(row["active"]), _int(row["level"]), mask)
        except InvalidTransition:
            continue
        _set_state(
            conn, _int(row["id"]), change, ", shelved_until = NULL, suppression_id = %s", (suppression_id,)
        )
        _journal_change(conn, _int(row["id"]), actor, change, state.value, _float(row["value"]), comment)
        moved += 1
    return moved


def _unmask_where(
    conn: Conn, where: str, params: tuple[object, ...], actor: Actor, comment: str, policy: Policy
) -> int:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT * FROM alarms a WHERE {where} ORDER BY a.id FOR UPDATE", params
        ).fetchall()
    for row in rows:
        _unmask(conn, row, actor, comment, policy)
    return len(rows)


# -- suppression by design and tags out of service --------------------------------------------
_COVERED = "a.hazard_source_id = %s AND (%s::integer IS NULL OR a.equipment_id = %s)"


def declare_suppression(
    conn: Conn,
    *,
    hazard_source_id: int,
    equipment_id: int | None,
    reason_kind: str,
    reason: str,
    starts_at: datetime,
    ends_at: datetime,
    actor: Actor,
    now: datetime,
) -> int:
    """The enterprise declares maintenance or start-up: its subjects' alarms are suppressed meanwhile."""
    if reason_kind not in SUPPRESSION_KINDS:
        raise InvalidTransition(f"reason_kind must be one of {', '.join(SUPPRESSION_KINDS)}")
    if not reason.strip():
        raise InvalidTransition("a suppression needs a reason")
    if ends_at <= starts_at or ends_at <= now:
        raise InvalidTransition("a suppression must end after it starts, and in the future")
    if ends_at - starts_at > timedelta(days=31):
        raise InvalidTransition("a suppression may last at most 31 days")
    with conn.transaction():
        row = conn.execute(
            "SELECT enterprise_id FROM hazard_sources WHERE id = %s", (hazard_source_id,)
        ).fetchone()
        if row is None:
            raise AlarmNotFound(f"no hazard source {hazard_source_id}")
        if (
            equipment_id is not None
            and conn.execute(
                "SELECT 1 FROM equipment WHERE id = %s AND hazard_source_id = %s",
                (equipment_id, hazard_source_id),
            ).fetchone()
            is None
        ):
            raise AlarmNotFound(f"no equipment {equipment_id} in hazard source {hazard_source_id}")
        inserted = conn.execute(
            "INSERT INTO suppressions (enterprise_id, hazard_source_id, equipment_id, reason_kind, reason,"
            " declared_by, starts_at, ends_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                row[0],
                hazard_source_id,
                equipment_id,
                reason_kind,
                reason.strip(),
                actor.name,
                starts_at,
                ends_at,
            ),
        ).fetchone()
        assert inserted is not None  # noqa: S101 - INSERT … RETURNING
        suppression_id = _int(inserted[0])
        if starts_at <= now:
            _start_suppression(conn, suppression_id, actor)
    return suppression_id


def _start_suppression(conn: Conn, suppression_id: int, actor: Actor) -> int:
    row = conn.execute(
        "UPDATE suppressions SET applied_at = now() WHERE id = %s"
        " RETURNING hazard_source_id, equipment_id, reason_kind, reason",
        (suppression_id,),
    ).fetchone()
    assert row is not None  # noqa: S101 - the caller found it
    source, equipment = _int(row[0]), row[1]
    return _mask_open(
        conn,
        _COVERED,
        (source, equipment, equipment),
        AlarmState.SUPPRESSED,
        actor,
        f"{row[2]}: {row[3]}",
        suppression_id,
    )


def end_suppression(conn: Conn, suppression_id: int, actor: Actor, policy: Policy = DEFAULT) -> int:
    """End a suppression now; its alarms still active re-annunciate. Returns how many were released."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE suppressions SET ended_at = now(), ended_by = %s WHERE id = %s AND ended_at IS NULL"
            " RETURNING ended_at",
            (actor.name, suppression_id),
        ).fetchone()
        if row is None:
            raise InvalidTransition(f"suppression {suppression_id} is not in force")
        assert isinstance(row[0], datetime)  # noqa: S101 - timestamptz
        return _release_suppression(conn, suppression_id, row[0], actor, "suppression ended", policy)


def _release_suppression(
    conn: Conn, suppression_id: int, at: datetime, actor: Actor, comment: str, policy: Policy
) -> int:
    """Release the alarms of a suppression that ended at ``at``; returns how many re-annunciated.

    An alarm another declared suppression still covers (overlapping maintenance and start-up)
    moves to that one and stays SUPPRESSED: it is released when the last one ends."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM alarms a WHERE a.suppression_id = %s AND a.state = 'SUPPRESSED'"
            " ORDER BY a.id FOR UPDATE",
            (suppression_id,),
        ).fetchall()
    released = 0
    for row in rows:
        source, equipment = row["hazard_source_id"], row["equipment_id"]
        where = _Owner(  # the grade plays no part in finding a suppression
            _int(row["enterprise_id"]),
            None if source is None else _int(source),
            None if equipment is None else _int(equipment),
            4,
        )
        other = _suppression_at(conn, where, at)
        if other is not None:
            conn.execute(
                "UPDATE alarms SET suppression_id = %s, updated_at = now() WHERE id = %s", (other, row["id"])
            )
            continue
        _unmask(conn, row, actor, comment, policy)
        released += 1
    return released


def set_tag_service(
    conn: Conn, tag_id: int, in_service: bool, actor: Actor, reason: str = "", policy: Policy = DEFAULT
) -> int:
    """Take a tag out of service (reason, person, time) or return it; its open alarms follow."""
    with conn.transaction():
        row = conn.execute("SELECT in_service FROM tags WHERE id = %s FOR UPDATE", (tag_id,)).fetchone()
        if row is None:
            raise AlarmNotFound(f"no tag {tag_id}")
        if bool(row[0]) == in_service:
            raise InvalidTransition(f"the tag is already {'in' if in_service else 'out of'} service")
        if not in_service and not reason.strip():
            raise InvalidTransition("taking a tag out of service needs a reason")
        conn.execute(
            "UPDATE tags SET in_service = %s, oos_reason = %s, oos_by = %s, oos_at = now(),"
            " oos_origin = %s, updated_at = now() WHERE id = %s",
            (
                in_service,
                None if in_service else reason.strip(),
                None if in_service else actor.name,
                "ledger" if in_service else "operator",
                tag_id,
            ),
        )
        if in_service:
            return _unmask_where(
                conn,
                "a.tag_id = %s AND a.state = 'OUT_OF_SERVICE'",
                (tag_id,),
                actor,
                "returned to service",
                policy,
            )
        return _mask_open(conn, "a.tag_id = %s", (tag_id,), AlarmState.OUT_OF_SERVICE, actor, reason.strip())


def suppress_by_design(conn: Conn, subject: Subject, subject_id: int, conditions: Iterable[str],
                       suppress: bool, reason: str, policy: Policy = DEFAULT) -> int:  # fmt: skip
    """Suppress by design (or release) the open alarms of some conditions of one subject: a
    camera's intrusion alarms while the camera itself is tampered or offline (the tamper is the
    alarm). The caller owns the transaction; returns the alarms moved."""
    where = "a.subject_kind = %s AND a.subject_id = %s AND a.condition = ANY(%s)"
    params: tuple[object, ...] = (subject.value, subject_id, list(conditions))
    if suppress:
        return _mask_open(conn, where, params, AlarmState.SUPPRESSED, SYSTEM, reason)
    where += " AND a.state = 'SUPPRESSED' AND a.suppression_id IS NULL"
    return _unmask_where(conn, where, params, SYSTEM, reason, policy)


def expire(conn: Conn, now: datetime, policy: Policy = DEFAULT) -> int:
    """The clock's turn: end shelves past their time, start and end declared suppressions.

    Idempotent and safe to call from several processes (rows are locked). Returns the alarms moved.
    """
    moved = 0
    with conn.transaction():
        moved += _unmask_where(
            conn, "a.state = 'SHELVED' AND a.shelved_until <= %s", (now,), WORKFLOW, "shelf expired", policy
        )
        ended = conn.execute(
            "UPDATE suppressions SET ended_at = ends_at, ended_by = 'system' WHERE ended_at IS NULL"
            " AND ends_at <= %s RETURNING id",
            (now,),
        ).fetchall()
        for (sid,) in ended:
            moved += _release_suppression(conn, _int(sid), now, WORKFLOW, "suppression period over", policy)
        starting = conn.execute(
            "SELECT id FROM suppressions WHERE ended_at IS NULL AND applied_at IS NULL AND starts_at <= %s"
            " AND ends_at > %s ORDER BY id FOR UPDATE",
            (now, now),
        ).fetchall()
        for (sid,) in starting:
            moved += _start_suppression(conn, _int(sid), WORKFLOW)
    return moved


# -- the regulatory loop: feedback, review, closure, hidden dangers ---------------------------
def file_feedback(
    conn: Conn, alarm_id: int, actor: Actor, reason: str, measures: str, attachment: Attachment | None = None
) -> Row:
    """The enterprise files disposal feedback (处置反馈) on an acknowledged alarm."""
    if reason not in FEEDBACK_REASONS:
        raise InvalidTransition(f"reason must be one of {', '.join(FEEDBACK_REASONS)}")
    if not measures.strip():
        raise InvalidTransition("feedback needs the measures taken")
    if attachment is not None and len(attachment.data) > MAX_ATTACHMENT:
        raise InvalidTransition(f"an attachment may have at most {MAX_ATTACHMENT // (1024 * 1024)} MiB")
    with conn.transaction():
        row = _lock(conn, alarm_id)
        state = str(row["state"])
        if state in (AlarmState.UNACK, AlarmState.RTN_UNACK):
            raise InvalidTransition("acknowledge the alarm before filing feedback")
        if row["disposition"] in ("filed", "accepted"):
            raise InvalidTransition(f"feedback is already {row['disposition']}")
        if row["closed_at"] is not None:
            raise InvalidTransition("the alarm is closed; it needs no feedback")
        conn.execute(
            "INSERT INTO alarm_feedback (alarm_id, reason, measures, attachment_name, attachment_type,"
            " attachment, filed_by) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                alarm_id,
                reason,
                measures.strip(),
                attachment.name if attachment else None,
                attachment.content_type if attachment else None,
                attachment.data if attachment else None,
                actor.name,
            ),
        )
        conn.execute("UPDATE alarms SET disposition = 'filed', updated_at = now() WHERE id = %s", (alarm_id,))
        _note(conn, row, actor, Action.FEEDBACK, measures.strip(),
              {"reason": reason, "attachment": attachment.name if attachment else None})  # fmt: skip
        return _fetch(conn, alarm_id)


def review_feedback(conn: Conn, alarm_id: int, actor: Actor, accept: bool, comment: str = "") -> Row:
    """The regulator accepts or returns (with a comment) the pending feedback of an alarm."""
    if not accept and not comment.strip():
        raise InvalidTransition("returning feedback needs a comment saying why")
    with conn.transaction():
        row = _lock(conn, alarm_id)
        pending = conn.execute(
            "SELECT id FROM alarm_feedback WHERE alarm_id = %s AND review = 'pending' FOR UPDATE", (alarm_id,)
        ).fetchone()
        if pending is None:
            raise InvalidTransition("the alarm has no feedback waiting for review")
        verdict = "accepted" if accept else "returned"
        conn.execute(
            "UPDATE alarm_feedback SET review = %s, reviewed_by = %s, reviewed_at = now(),"
            " review_comment = %s WHERE id = %s",
            (verdict, actor.name, comment.strip(), pending[0]),
        )
        conn.execute(
            "UPDATE alarms SET disposition = %s, updated_at = now() WHERE id = %s", (verdict, alarm_id)
        )
        _note(conn, row, actor, Action.ACCEPT if accept else Action.RETURN, comment.strip(),
              {"feedback_id": _int(pending[0])})  # fmt: skip
        if accept:
            _maybe_close(conn, alarm_id, actor)
        return _fetch(conn, alarm_id)


def feedback_of(conn: Conn, alarm_id: int) -> list[Row]:
    """Every feedback filed on an alarm, oldest first (attachments by name only)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, reason, measures, attachment_name, attachment_type, filed_by, filed_at, review,"
            " reviewed_by, reviewed_at, review_comment FROM alarm_feedback WHERE alarm_id = %s ORDER BY id",
            (alarm_id,),
        ).fetchall()


def open_hidden_danger(
    conn: Conn, alarm_id: int, actor: Actor, description: str, deadline: datetime, now: datetime
) -> int:
    """Open a hidden-danger (隐患) rectification record from a real abnormality confirmed in feedback."""
    if not description.strip():
        raise InvalidTransition("a hidden danger needs a description")
    if deadline <= now:
        raise InvalidTransition("the rectification deadline must be in the future")
    with conn.transaction():
        row = _lock(conn, alarm_id)
        real = conn.execute(
            "SELECT 1 FROM alarm_feedback WHERE alarm_id = %s AND reason = 'real_handled'"
            " AND review <> 'returned'",
            (alarm_id,),
        ).fetchone()
        if real is None:
            raise InvalidTransition("only a real abnormality confirmed in feedback opens a hidden danger")
        inserted = conn.execute(
            "INSERT INTO hidden_dangers (alarm_id, enterprise_id, hazard_source_id, description, deadline,"
            " opened_by) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (
                alarm_id,
                row["enterprise_id"],
                row["hazard_source_id"],
                description.strip(),
                deadline,
                actor.name,
            ),
        ).fetchone()
        assert inserted is not None  # noqa: S101 - INSERT … RETURNING
        _note(conn, row, actor, Action.HIDDEN_DANGER, description.strip(),
              {"hidden_danger_id": _int(inserted[0]), "status": "open"})  # fmt: skip
    return _int(inserted[0])


def advance_hidden_danger(conn: Conn, danger_id: int, actor: Actor, to_status: str, text: str = "") -> Row:
    """open → rectified (the enterprise, with what it did) → closed (the regulator verifies);
    a regulator may send a rectified one back to open with a comment."""
    moves = {("open", "rectified"), ("rectified", "closed"), ("rectified", "open")}
    with conn.transaction():
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                "SELECT * FROM hidden_dangers WHERE id = %s FOR UPDATE", (danger_id,)
            ).fetchone()
        if row is None:
            raise AlarmNotFound(f"no hidden danger {danger_id}")
        if (row["status"], to_status) not in moves:
            raise InvalidTransition(f"a hidden danger cannot go from {row['status']} to {to_status}")
        if (row["status"], to_status) == ("rectified", "open") and not text.strip():
            raise InvalidTransition("say why the rectification is sent back")
        if to_status == "rectified":
            if not text.strip():
                raise InvalidTransition("say what was rectified")
            conn.execute(
                "UPDATE hidden_dangers SET status = 'rectified', rectification = %s, rectified_by = %s,"
                " rectified_at = now() WHERE id = %s",
                (text.strip(), actor.name, danger_id),
            )
        elif to_status == "closed":
            conn.execute(
                "UPDATE hidden_dangers SET status = 'closed', closed_by = %s, closed_at = now()"
                " WHERE id = %s",
                (actor.name, danger_id),
            )
        else:
            conn.execute("UPDATE hidden_dangers SET status = 'open' WHERE id = %s", (danger_id,))
        if row["alarm_id"] is not None:
            alarm = _lock(conn, _int(row["alarm_id"]))
            _note(conn, alarm, actor, Action.HIDDEN_DANGER, text.strip(),
                  {"hidden_danger_id": danger_id, "status": to_status})  # fmt: skip
        with conn.cursor(row_factory=dict_row) as cur:
            result = cur.execute("SELECT * FROM hidden_dangers WHERE id = %s", (danger_id,)).fetchone()
        assert result is not None  # noqa: S101 - locked above
        return result
