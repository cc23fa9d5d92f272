"""Gateways that fall silent: GATEWAY_OFFLINE alarms, driven by the clock (owner: ingest).

A healthy gateway publishes a batch every ``publish_interval_s`` (even a dead device's readings
are BAD_COMM readings) and a heartbeat every 10 s, so silence is news. A gateway is **offline**
when its last will says so (``status: offline``) or when nothing of it — batch or heartbeat — has
arrived for ``SILENCE_S``; it is back when it is heard again. Only gateways heard at least once
are watched (a gateway in the ledger but never installed raises nothing).

While a gateway is offline its tags' own STALE alarms are not raised: the gateway's one alarm
says why they are silent (ISA-18.2 suppression of consequential alarms), and a flood of one
STALE per tag helps nobody. Tags already alarmed before the gateway went down keep theirs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta

import psycopg

from hazardwatch.clock import utc_from_ms
from rules.types import Condition, Subject, Transition

Conn = psycopg.Connection[tuple[object, ...]]
# no gateway's tag goes stale sooner (three polls, at least 10 s), so the gateway comes first
SILENCE_S = 10.0


def gateway_transitions(
    conn: Conn, gateway_ids: Sequence[int], now_ms: int, silence_s: float = SILENCE_S
) -> tuple[list[Transition], set[int]]:
    """The GATEWAY_OFFLINE changes of these gateways at ``now_ms``, and the gateways down now."""
    if not gateway_ids:
        return [], set()
    cut = utc_from_ms(now_ms) - timedelta(seconds=silence_s)
    rows = conn.execute(
        "SELECT g.id, g.status, extract(epoch FROM %s - greatest(g.last_seen_at, g.health_at)),"
        " g.status = 'offline' OR coalesce(greatest(g.last_seen_at, g.health_at) < %s, false),"
        " EXISTS (SELECT 1 FROM alarms a WHERE a.subject_kind = 'gateway' AND a.subject_id = g.id"
        "   AND a.condition = %s AND a.state <> 'NORMAL' AND a.active)"
        " FROM gateways g WHERE g.id = ANY(%s)"
        " AND greatest(g.last_seen_at, g.health_at, g.status_at) IS NOT NULL",
        (utc_from_ms(now_ms), cut, Condition.GATEWAY_OFFLINE.value, list(gateway_ids)),
    ).fetchall()
    transitions, down = [], set()
    for gateway_id, status, silent_s, is_down, alarmed in rows:
        gid = int(str(gateway_id))
        if is_down:
            down.add(gid)
        if bool(is_down) != bool(alarmed):
            detail: dict[str, object] = {"status": str(status)}
            if silent_s is not None:
                detail["silent_s"] = round(float(str(silent_s)), 1)
            transitions.append(
                Transition(
                    gid,
                    Condition.GATEWAY_OFFLINE,
                    1 if is_down else 0,
                    now_ms,
                    None,
                    None,
                    subject=Subject.GATEWAY,
                    detail=detail,
                )
            )
    return transitions, down


def without_consequential_stale(
    transitions: Iterable[Transition], gateway_of_tag: dict[int, int], down: set[int]
) -> list[Transition]:
    """Drop the raises of STALE of tags whose gateway is down (its alarm covers them)."""
    return [
        t
        for t in transitions
        if not (
            t.condition == Condition.STALE
            and t.level > 0
            and t.subject == Subject.TAG
            and gateway_of_tag.get(t.subject_id) in down
        )
    ]
