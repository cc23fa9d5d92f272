"""What live ingest did over a backtest's span, from the alarm journal: the level changes of every
rule-driven alarm, the levels active at the start, and when gateways were offline."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from rules.types import Condition, Subject

Conn = psycopg.Connection[tuple[object, ...]]
Key = tuple[Subject, int, str]  # subject, its id, condition

# what the rules raise (a backtest compares these); GATEWAY_OFFLINE and CLOCK_AHEAD follow no rule
CONDITIONS = frozenset(str(c) for c in (
    Condition.HIGH, Condition.LOW, Condition.FAULT, Condition.ROC, Condition.FROZEN, Condition.PREDICT,
    Condition.STALE, Condition.VOTE, Condition.SOURCE, Condition.DEVICE_COMM,
))  # fmt: skip
_ACTIONS = ["raise", "reactivate", "escalate", "deescalate", "clear"]  # a condition's level changed


@dataclass(frozen=True, slots=True)
class Change:
    """An alarm's condition went to ``level`` (0: cleared) at ``at_ms`` (source time)."""

    level: int
    at_ms: int


@dataclass(slots=True)
class History:
    changes: dict[Key, list[Change]] = field(default_factory=dict)  # within the span, in time order
    active_at_start: dict[Key, tuple[int, list[str]]] = field(default_factory=dict)  # level, devices
    offline: dict[int, tuple[list[int], list[bool]]] = field(default_factory=dict)  # per gateway

    def gateways_down(self, at_ms: int) -> set[int]:
        """The gateways whose GATEWAY_OFFLINE alarm was active at ``at_ms``."""
        down = set()
        for gateway, (times, states) in self.offline.items():
            i = bisect.bisect_right(times, at_ms)
            if i and states[i - 1]:
                down.add(gateway)
        return down


_ROWS = (
    "SELECT a.subject_kind, a.subject_id, a.condition, j.action, j.level,"
    " (extract(epoch FROM j.at) * 1000)::bigint, j.detail->'devices'"
    " FROM alarm_journal j JOIN alarms a ON a.id = j.alarm_id JOIN enterprises e ON e.id = a.enterprise_id"
    " WHERE e.code = ANY(%(enterprises)s) AND j.action = ANY(%(actions)s)"
    " AND a.condition = ANY(%(conditions)s)"
)
_AT_START = (
    "SELECT DISTINCT ON (a.subject_kind, a.subject_id, a.condition) a.subject_kind, a.subject_id,"
    " a.condition, j.action, j.level, (extract(epoch FROM j.at) * 1000)::bigint, j.detail->'devices'"
    " FROM alarm_journal j JOIN alarms a ON a.id = j.alarm_id JOIN enterprises e ON e.id = a.enterprise_id"
    " WHERE e.code = ANY(%(enterprises)s) AND j.action = ANY(%(actions)s)"
    " AND a.condition = ANY(%(conditions)s) AND j.at < %(start)s"
    " ORDER BY a.subject_kind, a.subject_id, a.condition, j.at DESC, j.id DESC"
)


def live_history(conn: Conn, enterprises: list[str], start: datetime, end: datetime) -> History:
    params = {"enterprises": enterprises, "actions": _ACTIONS, "start": start, "end": end,
              "conditions": [*CONDITIONS, str(Condition.GATEWAY_OFFLINE)]}  # fmt: skip
    history = History()
    levels: dict[Key, int] = {}
    for kind, subject_id, condition, action, level, at_ms, devices in conn.execute(_AT_START, params):
        key = (Subject(str(kind)), int(str(subject_id)), str(condition))
        if action != "clear":
            levels[key] = int(str(level))
            named = [str(d) for d in devices] if isinstance(devices, list) else []
            history.active_at_start[key] = (levels[key], named)
        if key[2] == Condition.GATEWAY_OFFLINE:
            history.offline[key[1]] = ([int(str(at_ms))], [action != "clear"])
    rows = conn.execute(_ROWS + " AND j.at >= %(start)s AND j.at < %(end)s ORDER BY j.at, j.id", params)
    for kind, subject_id, condition, action, level, at_ms, _ in rows:
        key = (Subject(str(kind)), int(str(subject_id)), str(condition))
        new = 0 if action == "clear" else int(str(level))
        at = int(str(at_ms))
        if key[2] == Condition.GATEWAY_OFFLINE:
            times, states = history.offline.setdefault(key[1], ([], []))
            times.append(at)
            states.append(new > 0)
        elif levels.get(key, 0) != new:
            levels[key] = new
            history.changes.setdefault(key, []).append(Change(new, at))
    return history
