"""Alarm-system KPIs (ISA-18.2 / EEMUA 191) of one operator position over a time range.

An operator position is a region (a prefix of the administrative division code: what a duty
officer watches) or one enterprise. Everything is computed from the alarm journal, over the
half-open range [start, end), and only from what the journal knew by ``end``:

- **alarm** — an annunciation: a journal row putting an alarm into UNACK by ``raise``,
  ``reactivate``, ``escalate`` (H → HH re-alarms) or leaving a mask while active (``unshelve``,
  ``unsuppress``, ``return_to_service``). Alarms raised into a mask are not annunciated.
- **source** — what an alarm is about and its condition: (subject kind, subject id, condition).
- **rates** — counts per 10-minute and per 24-hour bucket, buckets aligned to ``start``; the
  average is the count over the range's length in those units, the peak the fullest bucket.
- **flood** — on the trailing 10-minute count c(t) = alarms in (t − 10 min, t]: a flood starts at
  the first instant c(t) > 10 and ends at the first instant after that c(t) < 5 (c only changes
  when an alarm arrives or leaves the window, so both instants are exact); an episode still
  running at ``end`` ends there. Alarms before ``start`` are not counted.
- **chattering** — a source with 3 alarms within 60 s (the first and the third at most 60 s apart).
- **fleeting** — an alarm whose condition cleared less than 10 s after it, from a source with no
  other alarm within 60 s before or after (DOMAIN.md §4: "< 10 s and not repeated").
- **stale** — at ``end``: an alarm on the board (UNACK or ACKED) whose condition has been active
  without a break for more than 24 h.
- **bad actors** — the 10 sources with the most alarms (ties: by enterprise, subject, condition),
  and their share of all alarms.
- **priority** — the alarms by their alarm's priority (the most urgent it reached).
- **time to acknowledge** — per alarm, to the alarm's next ``ack``; **time to feedback** — per
  alarm raised in the range that owes feedback, from its raise to its first disposal feedback.
  Percentiles are nearest-rank; those not done by ``end`` are counted as pending.
- **online rate** — ingest's (``ingest.storage.online_rates``), passed in by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np
import psycopg

from alarms.kpi_arrays import (
    DAY_US,
    I64,
    NOTHING_YET,
    TEN_MIN_US,
    US,
    Distribution,
    bucket_counts,
    chattering_sources,
    distribution,
    fleeting_count,
    flood_episodes,
)
from hazardwatch.clock import utc_from_ms

Conn = psycopg.Connection[tuple[Any, ...]]

ANNUNCIATING = ("raise", "reactivate", "escalate", "unshelve", "unsuppress", "return_to_service")
STALE_AFTER = timedelta(hours=24)
TOP = 10
MAX_SPAN = timedelta(days=92)


class OnlineCount(Protocol):
    """One enterprise's online rate, as ``ingest.storage.OnlineRate`` gives it."""

    @property
    def key(self) -> str: ...
    @property
    def expected(self) -> int: ...
    @property
    def received(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Selection:
    """The operator position: a division prefix ("" = everywhere) and optionally one enterprise.

    ``guard`` is an extra WHERE fragment on the ``enterprises`` alias ``e`` (the caller's scope).
    """

    division: str = ""
    enterprise_code: str | None = None
    guard: tuple[str, Sequence[object]] = ("true", ())

    def where(self) -> tuple[str, list[object]]:
        clause, params = self.guard
        return (
            f"e.division LIKE %s AND (%s::text IS NULL OR e.code = %s) AND ({clause})",
            [self.division + "%", self.enterprise_code, self.enterprise_code, *params],
        )


@dataclass(frozen=True, slots=True)
class Flood:
    start: datetime
    end: datetime
    alarms: int
    peak_10min: int
    ongoing: bool


@dataclass(frozen=True, slots=True)
class SourceCount:
    source: str  # "ENTERPRISE/SUBJECT CONDITION"
    enterprise_code: str
    subject_kind: str
    subject_id: int
    condition: str
    alarms: int
    subject_code: str = ""  # the subject's ledger code (LT101, GV101, CAM101, ...)


@dataclass(frozen=True, slots=True)
class Stale:
    alarm_id: int
    source: str
    state: str
    active_since: datetime


@dataclass(frozen=True, slots=True)
class Online:
    expected: int
    received: int

    @property
    def rate(self) -> float:
        return min(self.received / self.expected, 1.0) if self.expected else 1.0


@dataclass(slots=True)
class Kpis:
    start: datetime
    end: datetime
    division: str
    enterprise_code: str | None
    enterprises: list[str]
    alarms: int = 0
    per_10min_avg: float = 0.0
    per_10min_peak: int = 0
    per_day_avg: float = 0.0
    per_day_peak: int = 0
    floods: list[Flood] = field(default_factory=list)
    flood_time_pct: float = 0.0
    bad_actors: list[SourceCount] = field(default_factory=list)
    bad_actor_share_pct: float = 0.0
    chattering: list[SourceCount] = field(default_factory=list)
    chattering_alarms: int = 0
    fleeting: int = 0
    stale: list[Stale] = field(default_factory=list)
    priority: dict[int, int] = field(default_factory=lambda: {1: 0, 2: 0, 3: 0})
    time_to_ack: Distribution = NOTHING_YET
    time_to_feedback: Distribution = NOTHING_YET
    online: Online | None = None

    @property
    def priority_pct(self) -> dict[int, float]:
        return {p: 100.0 * n / self.alarms if self.alarms else 0.0 for p, n in self.priority.items()}

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["priority"] = {str(p): n for p, n in self.priority.items()}
        data["priority_pct"] = {str(p): v for p, v in self.priority_pct.items()}
        data["online"] = None if self.online is None else {**asdict(self.online), "rate": self.online.rate}
        return data


# -- from the database -------------------------------------------------------------------------
def _us(column: str) -> str:
    return f"(extract(epoch FROM {column}) * 1000000)::bigint"


_SUBJECT_JOINS = (
    " LEFT JOIN tags t ON a.subject_kind = 'tag' AND t.id = a.subject_id"
    " LEFT JOIN hazard_sources hs ON a.subject_kind = 'hazard_source' AND hs.id = a.subject_id"
    " LEFT JOIN gateways g ON a.subject_kind = 'gateway' AND g.id = a.subject_id"
    " LEFT JOIN cameras kc ON a.subject_kind = 'camera' AND kc.id = a.subject_id"
    " LEFT JOIN vote_groups kv ON a.subject_kind = 'vote_group' AND kv.id = a.subject_id"
)
# the subject's ledger code (LT101, GV101, CAM101, ...), whatever its kind
_SUBJECT_CODE = "coalesce(t.code, hs.code, g.code, kc.code, kv.code, a.subject_kind || ':' || a.subject_id)"


def _next(action: str, extra: str = "") -> str:
    """The time (µs) of the alarm's next journal row of an action, before the end."""
    return (
        f"(SELECT {_us('min(n.at)')} FROM alarm_journal n WHERE n.alarm_id = j.alarm_id AND n.id > j.id"
        f" AND n.action = '{action}'{extra} AND n.at < %(end)s)"
    )


def _named(where: str, params: list[object]) -> tuple[str, dict[str, object]]:
    """Positional ``%s`` of a selection as named parameters, to mix with the query's own."""
    named = {f"w{i}": value for i, value in enumerate(params)}
    parts = where.split("%s")
    text = "".join(part + (f"%(w{i})s" if i < len(params) else "") for i, part in enumerate(parts))
    return text, named


def _feedback_times(
    conn: Conn, start: datetime, end: datetime, where: str, params: dict[str, object]
) -> Distribution:
    rows = conn.execute(
        f"SELECT {_us('a.raised_at')}, (SELECT {_us('min(f.at)')} FROM alarm_journal f"
        " WHERE f.alarm_id = a.id AND f.action = 'feedback' AND f.detail ? 'reason' AND f.at < %(end)s)"
        " FROM alarms a JOIN enterprises e ON e.id = a.enterprise_id"
        f" WHERE a.raised_at >= %(start)s AND a.raised_at < %(end)s AND a.feedback_required AND {where}",
        {"start": start, "end": end, **params},
    ).fetchall()
    done = np.array([(f - r) / US for r, f in rows if f is not None], np.float64)
    return distribution(done, sum(1 for _, f in rows if f is None))


def _stale(conn: Conn, end: datetime, where: str, params: dict[str, object]) -> list[Stale]:
    rows = conn.execute(
        f"SELECT a.id, e.code || '/' || {_SUBJECT_CODE} || ' ' || a.condition, last.to_state, since.at"
        " FROM alarms a JOIN enterprises e ON e.id = a.enterprise_id"
        f"{_SUBJECT_JOINS}"
        " CROSS JOIN LATERAL (SELECT to_state FROM alarm_journal WHERE alarm_id = a.id AND at < %(end)s"
        "   ORDER BY id DESC LIMIT 1) last"
        " CROSS JOIN LATERAL (SELECT max(at) AS at FROM alarm_journal WHERE alarm_id = a.id"
        "   AND action = 'clear' AND at < %(end)s) clear"
        " CROSS JOIN LATERAL (SELECT min(at) AS at FROM alarm_journal WHERE alarm_id = a.id"
        "   AND action IN ('raise', 'reactivate') AND at < %(end)s"
        "   AND at > coalesce(clear.at, '-infinity')) since"
        " WHERE a.raised_at <= %(stale_before)s AND (a.closed_at IS NULL OR a.closed_at >= %(end)s)"
        f" AND last.to_state IN ('UNACK', 'ACKED') AND since.at <= %(stale_before)s AND {where}"
        " ORDER BY since.at, a.id",
        {"end": end, "stale_before": end - STALE_AFTER, **params},
    ).fetchall()
    return [Stale(int(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]


def _source_counts(
    keys: list[tuple[str, str, int, str, str]], counts: I64, chosen: Iterable[int]
) -> list[SourceCount]:
    out = []
    for i in chosen:
        enterprise, kind, subject_id, condition, code = keys[i]
        out.append(
            SourceCount(
                f"{enterprise}/{code} {condition}",
                enterprise,
                kind,
                subject_id,
                condition,
                int(counts[i]),
                code,
            )
        )
    return out


def compute(
    conn: Conn,
    start: datetime,
    end: datetime,
    selection: Selection = Selection(),
    online: Iterable[OnlineCount] | None = None,
) -> Kpis:
    """The KPIs of one operator position over [start, end) (times with a zone)."""
    if start >= end:
        raise ValueError("the range must start before it ends")
    if end - start > MAX_SPAN:
        raise ValueError(f"KPIs span at most {MAX_SPAN.days} days")
    where, positional = selection.where()
    named_where, params = _named(where, positional)
    codes = [
        str(r[0])
        for r in conn.execute(f"SELECT e.code FROM enterprises e WHERE {where} ORDER BY 1", positional)
    ]
    kpis = Kpis(start, end, selection.division, selection.enterprise_code, codes)
    if online is not None:
        chosen = [r for r in online if r.key in set(codes)]
        kpis.online = Online(sum(r.expected for r in chosen), sum(r.received for r in chosen))
    rows = _annunciations(conn, start, end, named_where, params)
    kpis.stale = _stale(conn, end, named_where, params)
    kpis.time_to_feedback = _feedback_times(conn, start, end, named_where, params)
    if rows:
        _fill(kpis, rows)
    return kpis


def _annunciations(
    conn: Conn, start: datetime, end: datetime, where: str, params: dict[str, object]
) -> list[tuple[Any, ...]]:
    return conn.execute(
        f"SELECT {_us('j.at')}, a.subject_kind, a.subject_id, a.condition, a.priority, e.code,"
        f" {_SUBJECT_CODE}, {_next('clear')}, {_next('ack')}"
        " FROM alarm_journal j JOIN alarms a ON a.id = j.alarm_id"
        f" JOIN enterprises e ON e.id = a.enterprise_id{_SUBJECT_JOINS}"
        " WHERE j.at >= %(start)s AND j.at < %(end)s AND j.to_state = 'UNACK'"
        f" AND j.action = ANY(%(actions)s) AND {where} ORDER BY j.at, j.id",
        {"start": start, "end": end, "actions": list(ANNUNCIATING), **params},
    ).fetchall()


def _fill(kpis: Kpis, rows: list[tuple[Any, ...]]) -> None:
    start_us = round(kpis.start.timestamp() * US)
    end_us = round(kpis.end.timestamp() * US)
    span_us = end_us - start_us
    times = np.array([r[0] for r in rows], np.int64)
    keys = [(str(r[5]), str(r[1]), int(r[2]), str(r[3]), str(r[6])) for r in rows]
    index: dict[tuple[str, str, int, str, str], int] = {}
    source = np.array([index.setdefault(k, len(index)) for k in keys], np.int64)
    unique_keys = list(index)
    cleared = np.array([-1 if r[7] is None else r[7] for r in rows], np.int64)
    acked = [r[8] for r in rows]

    kpis.alarms = int(times.size)
    per_10 = bucket_counts(times, start_us, end_us, TEN_MIN_US)
    per_day = bucket_counts(times, start_us, end_us, DAY_US)
    kpis.per_10min_avg = times.size * TEN_MIN_US / span_us
    kpis.per_10min_peak = int(per_10.max())
    kpis.per_day_avg = times.size * DAY_US / span_us
    kpis.per_day_peak = int(per_day.max())

    episodes = flood_episodes(times, end_us)
    kpis.floods = [
        Flood(utc_from_us(a), utc_from_us(b), n, peak, ongoing) for a, b, n, peak, ongoing in episodes
    ]
    kpis.flood_time_pct = 100.0 * sum(b - a for a, b, *_ in episodes) / span_us

    counts = np.bincount(source, minlength=len(unique_keys)).astype(np.int64)
    order = sorted(
        range(len(unique_keys)),
        key=lambda i: (
            -int(counts[i]),
            unique_keys[i][0],
            unique_keys[i][4],
            unique_keys[i][3],
            unique_keys[i][1],
            unique_keys[i][2],
        ),
    )
    top = order[:TOP]
    kpis.bad_actors = _source_counts(unique_keys, counts, top)
    kpis.bad_actor_share_pct = 100.0 * float(counts[top].sum()) / times.size

    chatter = sorted(chattering_sources(source, times).tolist(), key=order.index)
    kpis.chattering = _source_counts(unique_keys, counts, chatter)
    kpis.chattering_alarms = int(counts[chatter].sum()) if chatter else 0
    kpis.fleeting = fleeting_count(source, times, cleared)

    priority = np.bincount(np.array([int(r[4]) for r in rows], np.int64), minlength=4)
    kpis.priority = {p: int(priority[p]) for p in (1, 2, 3)}
    waited = np.array(
        [(a - t) / US for a, t in zip(acked, times.tolist(), strict=True) if a is not None], np.float64
    )
    kpis.time_to_ack = distribution(waited, sum(1 for a in acked if a is None))


def utc_from_us(us: int) -> datetime:
    return utc_from_ms(0) + timedelta(microseconds=us)
