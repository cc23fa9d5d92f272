"""Dynamic risk: 红/橙/黄/蓝 (重大/较大/一般/低风险) of each hazard source and enterprise.

A hazard source's points are its inherent points (by GB 18218 grade) plus, at the moment:
its active alarms by priority (capped; the NO_COMMITMENT alarm is left out, the missing
commitment counts on its own; alarms of tags out of service are left out), the special
operations, start-up/shutdown, trial production and maintenance declared in today's commitment,
its alarms whose feedback is overdue (capped), and a missing commitment past today's deadline.
The points give the level (``Policy.risk.level``); a level the enterprise declared in its
commitment is a floor (by default). An enterprise takes the points of its gravest hazard source
plus those of its alarms that belong to no hazard source (a gateway offline), and is never less
grave than its gravest hazard source. Every weight is in the policy's ``risk`` section.

``risk_tick`` runs on the clock's tick (ingest's maintenance thread): it raises or clears the
NO_COMMITMENT alarms, then recomputes every level; ``risk_levels`` holds the current ones and
``risk_history`` gets a row whenever a level changes.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from alarms.commitments import CONDITION, deadline, local_day, sync_alarms, today_commitments
from alarms.policy import DEFAULT, Policy

logger = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[Any, ...]]
RISK_LOCK = 0x4857_0015  # one ticker at a time across ingest workers
LEVEL_NAMES = {1: "红", 2: "橙", 3: "黄", 4: "蓝"}
LEVEL_COLOURS = {1: "red", 2: "orange", 3: "yellow", 4: "blue"}


@dataclass(slots=True)
class Assessment:
    subject_kind: str  # "hazard_source" or "enterprise"
    subject_id: int
    enterprise_id: int
    inherent: int
    score: float
    level: int
    factors: dict[str, Any] = field(default_factory=dict)


def _alarm_points(policy: Policy, counts: dict[int, int]) -> float:
    points = sum(policy.risk.active_alarm.get(p, 0.0) * n for p, n in counts.items())  # type: ignore[call-overload]
    return min(points, policy.risk.active_alarm_cap)


def _counts(
    conn: Conn, column: str, where: str, params: tuple[object, ...]
) -> dict[int | None, dict[int, int]]:
    """Per ``column`` (hazard source or enterprise id): alarms by priority matching ``where``."""
    out: dict[int | None, dict[int, int]] = defaultdict(dict)
    for key, priority, n in conn.execute(
        f"SELECT {column}, priority, count(*) FROM alarms WHERE {where} GROUP BY 1, 2", params
    ).fetchall():
        out[None if key is None else int(key)][int(priority)] = int(n)
    return out


_ACTIVE = "active AND state NOT IN ('NORMAL', 'OUT_OF_SERVICE') AND condition <> %s"
# feedback owed past the escalation timer of the alarm's priority (policy.escalation.timers)
_OVERDUE = (
    "feedback_required AND closed_at IS NULL AND disposition IN ('due', 'returned')"
    " AND raised_at <= %s - interval '1 minute'"
    " * CASE priority WHEN 1 THEN %s::float8 WHEN 2 THEN %s::float8 ELSE %s::float8 END"
)


def assess(conn: Conn, now: datetime, policy: Policy = DEFAULT) -> list[Assessment]:
    """The level of every hazard source and enterprise at ``now``."""
    due = (now, *(policy.escalation.timers_for(p).feedback_minutes for p in (1, 2, 3)))
    alarms = _counts(conn, "hazard_source_id", _ACTIVE + " AND hazard_source_id IS NOT NULL", (CONDITION,))
    overdue = _counts(conn, "hazard_source_id", _OVERDUE + " AND hazard_source_id IS NOT NULL", due)
    loose_alarms = _counts(conn, "enterprise_id", _ACTIVE + " AND hazard_source_id IS NULL", (CONDITION,))
    loose_overdue = _counts(conn, "enterprise_id", _OVERDUE + " AND hazard_source_id IS NULL", due)
    commitments = today_commitments(conn, now, policy)
    past_deadline = now >= deadline(local_day(now, policy), policy)
    sources = conn.execute("SELECT id, enterprise_id, grade FROM hazard_sources ORDER BY id").fetchall()
    out: list[Assessment] = []
    by_enterprise: dict[int, list[Assessment]] = defaultdict(list)
    for source_id, enterprise_id, grade in sources:
        a = _assess_source(
            policy,
            int(source_id),
            int(enterprise_id),
            None if grade is None else int(grade),
            alarms.get(int(source_id), {}),
            sum(overdue.get(int(source_id), {}).values()),
            commitments.get(int(source_id)),
            past_deadline,
        )
        out.append(a)
        by_enterprise[a.enterprise_id].append(a)
    for (enterprise_id,) in conn.execute("SELECT id FROM enterprises ORDER BY id").fetchall():
        eid = int(enterprise_id)
        out.append(
            _assess_enterprise(
                policy,
                eid,
                by_enterprise.get(eid, []),
                loose_alarms.get(eid, {}),
                sum(loose_overdue.get(eid, {}).values()),
            )
        )
    return out


def _assess_source(
    policy: Policy,
    source_id: int,
    enterprise_id: int,
    grade: int | None,
    alarms: dict[int, int],
    overdue: int,
    commitment: dict[str, Any] | None,
    past_deadline: bool,
) -> Assessment:
    risk = policy.risk
    # a source with S < 1 is not a major hazard source: no GB 18218 grade, no inherent points
    inherent_points = 0.0 if grade is None else risk.inherent.get(grade, 0.0)  # type: ignore[call-overload]
    factors: dict[str, Any] = {"grade": grade, "inherent_points": inherent_points}
    score = inherent_points
    score += _live_points(policy, factors, alarms, overdue)
    declared: int | None = None
    if commitment is not None:
        operations: dict[str, int] = dict(commitment["special_operations"])
        if operations:
            ops = sum(risk.special_operation.get(k, 0.0) * n for k, n in operations.items())
            factors["special_operations"] = operations
            factors["special_operation_points"] = min(ops, risk.special_operation_cap)
            score += factors["special_operation_points"]
        for flag, points in (("startup", risk.startup), ("trial_production", risk.trial_production)):
            if commitment[flag]:
                factors[flag] = points
                score += points
        if commitment["unit_status"] == "maintenance":
            factors["maintenance"] = risk.maintenance
            score += risk.maintenance
        declared = int(commitment["risk_level"])
        factors["declared_level"] = declared
    elif past_deadline:
        factors["missing_commitment"] = risk.missing_commitment
        score += risk.missing_commitment
    inherent = risk.level(inherent_points)
    level = min(risk.level(score), inherent)
    if declared is not None and risk.declared_level_is_floor:
        level = min(level, declared)
    return Assessment("hazard_source", source_id, enterprise_id, inherent, score, level, factors)


def _live_points(policy: Policy, factors: dict[str, Any], alarms: dict[int, int], overdue: int) -> float:
    """The points of active alarms (by priority) and overdue feedback, noted in ``factors``."""
    risk, points = policy.risk, 0.0
    if alarms:
        factors["active_alarms"] = {str(p): n for p, n in sorted(alarms.items())}
        factors["alarm_points"] = _alarm_points(policy, alarms)
        points += factors["alarm_points"]
    if overdue:
        factors["overdue_feedback"] = overdue
        factors["overdue_points"] = min(overdue * risk.overdue_feedback, risk.overdue_feedback_cap)
        points += factors["overdue_points"]
    return points


def _assess_enterprise(
    policy: Policy, enterprise_id: int, sources: list[Assessment], alarms: dict[int, int], overdue: int
) -> Assessment:
    risk = policy.risk
    gravest = min(sources, key=lambda a: (a.level, -a.score), default=None)
    score = max((a.score for a in sources), default=0.0)
    factors: dict[str, Any] = {"hazard_sources": len(sources)}
    if gravest is not None:
        factors["gravest_hazard_source"] = gravest.subject_id
    score += _live_points(policy, factors, alarms, overdue)
    inherent = min((a.inherent for a in sources), default=4)
    level = min(risk.level(score), gravest.level if gravest is not None else 4)
    return Assessment("enterprise", enterprise_id, enterprise_id, inherent, score, level, factors)


def record(conn: Conn, assessments: list[Assessment], now: datetime) -> int:
    """Store the levels; a history row for each level that changed (or is new). Returns how many."""
    previous = {
        (str(kind), int(sid)): int(level)
        for kind, sid, level in conn.execute(
            "SELECT subject_kind, subject_id, level FROM risk_levels FOR UPDATE"
        ).fetchall()
    }
    changed = 0
    for a in assessments:
        before = previous.get((a.subject_kind, a.subject_id))
        moved = before != a.level
        conn.execute(
            "INSERT INTO risk_levels (subject_kind, subject_id, enterprise_id, level, inherent, score,"
            " factors, since, computed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (subject_kind, subject_id) DO UPDATE SET level = EXCLUDED.level,"
            " inherent = EXCLUDED.inherent, score = EXCLUDED.score, factors = EXCLUDED.factors,"
            " since = CASE WHEN risk_levels.level = EXCLUDED.level THEN risk_levels.since"
            " ELSE EXCLUDED.since END,"
            " computed_at = EXCLUDED.computed_at",
            (
                a.subject_kind,
                a.subject_id,
                a.enterprise_id,
                a.level,
                a.inherent,
                a.score,
                Jsonb(a.factors),
                now,
                now,
            ),
        )
        if moved:
            conn.execute(
                "INSERT INTO risk_history (subject_kind, subject_id, enterprise_id, at, from_level, level,"
                " score, factors) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    a.subject_kind,
                    a.subject_id,
                    a.enterprise_id,
                    now,
                    before,
                    a.level,
                    a.score,
                    Jsonb(a.factors),
                ),
            )
            changed += 1
    return changed


def risk_tick(conn: Conn, now: datetime, policy: Policy = DEFAULT) -> int:
    """The clock's turn for risk: NO_COMMITMENT alarms, then every level. Returns the level changes.

    Its own transaction; skipped (0) while another process ticks."""
    with conn.transaction():
        if conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (RISK_LOCK,)).fetchone() != (True,):
            return 0
        sync_alarms(conn, now, policy)
        changed = record(conn, assess(conn, now, policy), now)
    if changed:
        logger.info("risk levels: %d changed", changed)
    return changed
