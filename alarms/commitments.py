"""The daily safety commitment (安全承诺公告) and the finding of a missing one.

Design (DOMAIN.md §5): each hazard source gets one commitment per local day, filed by its
enterprise on behalf of the principal (主要负责人): the unit's status (running, stopped, under
maintenance), the day's special operations by kind (动火, 受限空间, 盲板, 高处, 吊装, 临时用电, 动土,
断路), whether it is in trial production or start-up/shutdown, its major hidden dangers, the risk
level it declares and the commitment text. The enterprise's own figures (units running, stopped,
under maintenance; operations in all) are the sums over its hazard sources. Filing again the same
day adds a revision; the newest counts; nothing is ever changed or deleted (the table refuses
it), so each row says who filed what and when.

The day and its deadline are local (the policy's zone, Asia/Shanghai by default); times are
stored in UTC. A hazard source without a commitment by the deadline (10:00 by default) is a
finding — also when it is filed late. On the clock's tick, ``sync_alarms`` raises a
``NO_COMMITMENT`` alarm on each hazard source still without the day's commitment after the
deadline, stamped at the deadline, and clears it when the commitment is filed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from typing import Any, Literal
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, field_validator

from alarms.errors import AlarmNotFound
from alarms.policy import DEFAULT, SPECIAL_OPERATIONS, Policy
from alarms.store import Actor, apply_transitions
from hazardwatch.ledger.grading import grade_name_sql
from rules.types import Subject, Transition

Conn = psycopg.Connection[tuple[Any, ...]]
Row = dict[str, Any]
Scope = tuple[str, Sequence[object]]
EVERYWHERE: Scope = ("true", ())
CONDITION = "NO_COMMITMENT"
MAX_TEXT = 2000
MAX_FINDING_DAYS = 92


class CommitmentForm(BaseModel):
    """What the enterprise files for one hazard source and day."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    unit_status: Literal["running", "stopped", "maintenance"] = Field(description="运行 / 停产 / 检维修")
    special_operations: dict[str, int] = Field(
        default_factory=dict, description="special operations planned today, by kind (counts)"
    )
    trial_production: bool = Field(False, description="in trial production (试生产)")
    startup: bool = Field(False, description="start-up or shutdown (开停车) today")
    major_hidden_dangers: int = Field(0, ge=0, le=999, description="major hidden dangers (重大隐患) open")
    risk_level: Literal[1, 2, 3, 4] = Field(description="the level the enterprise declares: 1 红 … 4 蓝")
    commitment: str = Field(min_length=1, max_length=MAX_TEXT, description="the commitment text")
    principal: str | None = Field(
        None, max_length=64, description="who commits; default the hazard source's 主要负责人"
    )

    @field_validator("special_operations")
    @classmethod
    def _known_kinds(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(SPECIAL_OPERATIONS))
        if unknown:
            raise ValueError(f"unknown special operations {unknown}; known: {', '.join(SPECIAL_OPERATIONS)}")
        if any(not 0 <= n <= 999 for n in value.values()):
            raise ValueError("special operation counts must be between 0 and 999")
        return {k: n for k, n in value.items() if n}

    @field_validator("commitment")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the commitment text is empty")
        return value.strip()


def local_day(now: datetime, policy: Policy = DEFAULT) -> date:
    return now.astimezone(ZoneInfo(policy.risk.timezone)).date()


def deadline(day: date, policy: Policy = DEFAULT) -> datetime:
    """The day's deadline in UTC (10:00 local by default)."""
    hours, minutes = (int(x) for x in policy.risk.commitment_due.split(":"))
    local = datetime.combine(day, time(hours, minutes), ZoneInfo(policy.risk.timezone))
    return local.astimezone(UTC)


def file_commitment(
    conn: Conn,
    hazard_source_id: int,
    form: CommitmentForm,
    actor: Actor,
    now: datetime,
    policy: Policy = DEFAULT,
) -> Row:
    """File (or revise) today's commitment of a hazard source; the caller has checked the right."""
    day = local_day(now, policy)
    with conn.transaction():
        source = conn.execute(
            "SELECT enterprise_id, principal FROM hazard_sources WHERE id = %s FOR UPDATE",
            (hazard_source_id,),
        ).fetchone()
        if source is None:
            raise AlarmNotFound(f"no hazard source {hazard_source_id}")
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                "INSERT INTO safety_commitments (enterprise_id, hazard_source_id, day, revision, unit_status,"
                " special_operations, trial_production, startup, major_hidden_dangers, risk_level,"
                " commitment, principal, filed_by, filed_role, filed_at) SELECT %s, %s, %s,"
                " coalesce(max(revision), 0) + 1, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s"
                " FROM safety_commitments WHERE hazard_source_id = %s AND day = %s RETURNING *",
                (
                    source[0],
                    hazard_source_id,
                    day,
                    form.unit_status,
                    Jsonb(form.special_operations),
                    form.trial_production,
                    form.startup,
                    form.major_hidden_dangers,
                    form.risk_level,
                    form.commitment,
                    (form.principal or "").strip() or str(source[1]),
                    actor.name,
                    actor.role,
                    now,
                    hazard_source_id,
                    day,
                ),
            ).fetchone()
        assert row is not None  # noqa: S101 - INSERT … RETURNING
        _clear_alarm(conn, hazard_source_id, now, policy)
    row["late"] = now > deadline(day, policy)
    return row


def _clear_alarm(conn: Conn, hazard_source_id: int, now: datetime, policy: Policy) -> None:
    if conn.execute(
        "SELECT 1 FROM alarms WHERE subject_kind = 'hazard_source' AND subject_id = %s AND condition = %s"
        " AND state <> 'NORMAL' AND active",
        (hazard_source_id, CONDITION),
    ).fetchone():
        ms = int(now.timestamp() * 1000)
        apply_transitions(
            conn, [Transition(hazard_source_id, CONDITION, 0, ms, None, None, Subject.HAZARD_SOURCE)], policy
        )


def sync_alarms(conn: Conn, now: datetime, policy: Policy = DEFAULT) -> int:
    """Raise NO_COMMITMENT on hazard sources without today's commitment past the deadline; clear
    those that have it. Runs in the caller's transaction; returns the journal rows written."""
    day = local_day(now, policy)
    due = deadline(day, policy)
    rows = conn.execute(
        "SELECT hs.id, EXISTS (SELECT 1 FROM safety_commitments c WHERE c.hazard_source_id = hs.id"
        " AND c.day = %s), EXISTS (SELECT 1 FROM alarms a WHERE a.subject_kind = 'hazard_source'"
        " AND a.subject_id = hs.id AND a.condition = %s AND a.state <> 'NORMAL' AND a.active)"
        " FROM hazard_sources hs ORDER BY hs.id",
        (day, CONDITION),
    ).fetchall()
    transitions = []
    for source_id, filed, alarmed in rows:
        if not filed and not alarmed and now >= due:
            detail: dict[str, object] = {"day": day.isoformat(), "deadline": due.isoformat()}
            ms = int(due.timestamp() * 1000)
            transitions.append(
                Transition(int(source_id), CONDITION, 1, ms, None, None, Subject.HAZARD_SOURCE, detail)
            )
        elif filed and alarmed:
            ms = int(now.timestamp() * 1000)
            transitions.append(
                Transition(int(source_id), CONDITION, 0, ms, None, None, Subject.HAZARD_SOURCE)
            )
    return apply_transitions(conn, transitions, policy) if transitions else 0


_SOURCES = " FROM hazard_sources hs JOIN enterprises e ON e.id = hs.enterprise_id"
_SOURCE_COLUMNS = (
    "hs.id AS hazard_source_id, hs.code AS hazard_source_code, hs.name AS hazard_source_name,"
    f" hs.grade, {grade_name_sql('hs')} AS grade_name,"
    " e.id AS enterprise_id, e.code AS enterprise_code, e.name AS enterprise_name, e.division"
)


def commitments_of_day(
    conn: Conn, day: date, now: datetime, scope: Scope = EVERYWHERE, policy: Policy = DEFAULT
) -> list[Row]:
    """Each hazard source in scope with its effective (newest) commitment of the day, or None, and a
    status: filed (by the deadline), late, missing (past the deadline) or pending (before it)."""
    clause, params = scope
    due = deadline(day, policy)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {_SOURCE_COLUMNS}, to_jsonb(c) - 'enterprise_id' - 'hazard_source_id' AS commitment,"
            " first.filed_at AS first_filed_at"
            f"{_SOURCES}"
            " LEFT JOIN LATERAL (SELECT * FROM safety_commitments WHERE hazard_source_id = hs.id AND day = %s"
            "   ORDER BY revision DESC LIMIT 1) c ON true"
            " LEFT JOIN LATERAL (SELECT min(filed_at) AS filed_at FROM safety_commitments"
            "   WHERE hazard_source_id = hs.id AND day = %s) first ON true"
            f" WHERE {clause} ORDER BY e.code, hs.code",
            [day, day, *params],
        ).fetchall()
    for row in rows:
        first = row.pop("first_filed_at")
        row["day"] = day
        row["deadline"] = due
        row["status"] = (
            ("filed" if first <= due else "late")
            if first is not None
            else ("missing" if now >= due else "pending")
        )
    return rows


def findings(
    conn: Conn,
    first_day: date,
    last_day: date,
    now: datetime,
    scope: Scope = EVERYWHERE,
    policy: Policy = DEFAULT,
) -> list[Row]:
    """Missing commitments: each (hazard source, day) in scope from ``first_day`` to ``last_day``
    whose deadline has passed by ``now`` without a commitment filed by then (late ones included,
    with the time they came); none for the days whose deadline passed before the source entered
    the ledger."""
    if last_day < first_day:
        raise ValueError("the last day comes before the first")
    if (last_day - first_day).days >= MAX_FINDING_DAYS:
        raise ValueError(f"findings span at most {MAX_FINDING_DAYS} days")
    clause, params = scope
    hours, minutes = (int(x) for x in policy.risk.commitment_due.split(":"))
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT 'commitment_missing' AS kind, d.day::date AS day, d.due AS deadline, first.filed_at,"
            f" {_SOURCE_COLUMNS}"
            " FROM generate_series(%s::date, %s::date, interval '1 day') AS g(day)"
            " CROSS JOIN LATERAL (SELECT g.day::date AS day,"
            "   (g.day::date + make_time(%s, %s, 0)) AT TIME ZONE %s AS due) d"
            f" CROSS JOIN hazard_sources hs JOIN enterprises e ON e.id = hs.enterprise_id"
            " LEFT JOIN LATERAL (SELECT min(filed_at) AS filed_at FROM safety_commitments"
            "   WHERE hazard_source_id = hs.id AND day = d.day) first ON true"
            # a source owes the commitments whose deadline came after it entered the ledger
            f" WHERE d.due <= %s AND d.due > hs.created_at"
            f" AND (first.filed_at IS NULL OR first.filed_at > d.due) AND ({clause})"
            " ORDER BY d.day, e.code, hs.code",
            [first_day, last_day, hours, minutes, policy.risk.timezone, now, *params],
        ).fetchall()
    for row in rows:
        row["late"] = row["filed_at"] is not None
    return rows


def today_commitments(conn: Conn, now: datetime, policy: Policy = DEFAULT) -> dict[int, Row]:
    """The effective commitment of today (local) of each hazard source that has one."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT DISTINCT ON (hazard_source_id) * FROM safety_commitments WHERE day = %s"
            " ORDER BY hazard_source_id, revision DESC",
            (local_day(now, policy),),
        ).fetchall()
    return {int(r["hazard_source_id"]): r for r in rows}
