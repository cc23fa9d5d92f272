"""A scripted day of alarms on the sample plant, from a seeded random script, and a database clock.

The script emits condition transitions a rule engine would emit for the sample plant's tags
(H, HH, L, LL limits with realistic values, instrument faults), operator acknowledgements and
enterprise feedback, all on one timeline; ``play`` drives them through alarms.store in time
order. Background noise, chattering and fleeting alarms, two standing alarms from the day before
and a flood (a gas leak cascading over the LPG farm) are in it.

alarms.store stamps workflow actions (acknowledge, feedback) with the database's ``now()``;
``DatabaseClock`` moves that clock: a ``now()`` of a test schema put before pg_catalog in the
search path returns the time the script sets.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from alarms.errors import InvalidTransition
from alarms.store import Actor, acknowledge, apply_transitions, file_feedback
from rules.types import Condition, Transition

Conn = psycopg.Connection[tuple[object, ...]]
START = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # 2026-12-01 00:00 Asia/Shanghai
END = START + timedelta(days=1)
FLOOD_AT = START + timedelta(hours=9)  # 09:00 local
FLOOD_FOR = timedelta(hours=2)
DUTY = Actor("duty", "duty_officer")
QIYE = {"E330110001": Actor("qiye", "enterprise"), "E330281002": Actor("qiye2", "enterprise")}
CLOCK_SQL = (
    "CREATE SCHEMA IF NOT EXISTS testclock;"
    " CREATE OR REPLACE FUNCTION testclock.now() RETURNS timestamptz LANGUAGE sql STABLE AS"
    " $$ SELECT coalesce(nullif(current_setting('hw.test_now', true), '')::timestamptz, pg_catalog.now()) $$"
)


@contextmanager
def clocked_connection(url: str) -> Iterator[Conn]:
    """An autocommit connection whose ``now()`` is the test's (``set_now``)."""
    with psycopg.connect(url, autocommit=True) as setup:
        setup.execute(CLOCK_SQL)
    with psycopg.connect(
        url, autocommit=True, options="-c search_path=testclock,public,pg_catalog -c synchronous_commit=off"
    ) as conn:
        yield conn


def set_now(conn: Conn, at: datetime) -> None:
    conn.execute("SELECT set_config('hw.test_now', %s, false)", (at.isoformat(),))


@dataclass(frozen=True, slots=True)
class TagInfo:
    id: int
    code: str
    enterprise: str
    kind: str
    low: float | None
    low_low: float | None
    high: float | None
    high_high: float | None


def plant_tags(conn: Conn) -> list[TagInfo]:
    rows = conn.execute(
        "SELECT t.id, t.code, e.code, t.kind, t.l, t.ll, t.h, t.hh FROM tags t"
        " JOIN enterprises e ON e.id = t.enterprise_id WHERE t.in_service ORDER BY t.id"
    ).fetchall()
    return [TagInfo(int(str(r[0])), str(r[1]), str(r[2]), str(r[3]), *r[4:]) for r in rows]  # type: ignore[arg-type]


@dataclass(order=True)
class Event:
    at: datetime
    seq: int
    kind: str = field(compare=False)  # "level", "ack", "feedback"
    tag: TagInfo = field(compare=False)
    condition: str = field(compare=False)
    level: int = field(compare=False, default=0)
    actor: Actor = field(compare=False, default=DUTY)


class Script:
    """The day's timeline. Episodes of one (tag, condition) never overlap."""

    def __init__(self, tags: list[TagInfo], seed: int = 20261201) -> None:
        self.rng = random.Random(seed)
        self.tags = tags
        self.events: list[Event] = []
        self._busy: dict[tuple[int, str], datetime] = {}
        self._plans: list[tuple[datetime, int, TagInfo, str, list[tuple[float, int]]]] = []
        self._seq = 0

    def _push(
        self, at: datetime, kind: str, tag: TagInfo, condition: str, level: int = 0, actor: Actor = DUTY
    ) -> None:
        self._seq += 1
        self.events.append(Event(at, self._seq, kind, tag, condition, level, actor))

    def _slot(self, tag: TagInfo, condition: str, at: datetime) -> datetime:
        free = self._busy.get((tag.id, condition))
        return max(at, free + timedelta(seconds=1)) if free is not None else at

    def episode(self, tag: TagInfo, condition: str, at: datetime, steps: list[tuple[float, int]]) -> None:
        """Plan levels after delays in seconds (ending at 0, or never for a standing alarm)."""
        self._plans.append((at, len(self._plans), tag, condition, steps))

    def build(self) -> None:
        """Lay the planned episodes on the timeline in time order, each after the last of its kind."""
        for at, _, tag, condition, steps in sorted(self._plans, key=lambda p: (p[0], p[1])):
            self._lay(tag, condition, at, steps)

    def _lay(self, tag: TagInfo, condition: str, at: datetime, steps: list[tuple[float, int]]) -> None:
        """The episode's levels, and an acknowledgement (most of the time) and feedback (often)."""
        at = self._slot(tag, condition, at)
        if at >= END:
            return
        t = at
        for delay, level in steps:
            t += timedelta(seconds=delay)
            self._push(t, "level", tag, condition, level)
        standing = steps[-1][1] > 0
        self._busy[(tag.id, condition)] = END + timedelta(days=1) if standing else t
        if standing:
            self._push(at + timedelta(minutes=3), "ack", tag, condition)
        elif self.rng.random() < 0.9:
            wait = self.rng.lognormvariate(4.0, 1.0)  # median ~55 s
            actor = DUTY if self.rng.random() < 0.4 else QIYE[tag.enterprise]
            ack_at = at + timedelta(seconds=steps[0][0] + wait)
            self._push(ack_at, "ack", tag, condition, actor=actor)
            if self.rng.random() < 0.8:
                self._push(ack_at + timedelta(minutes=self.rng.uniform(3, 90)), "feedback", tag, condition,
                           actor=QIYE[tag.enterprise])  # fmt: skip

    def _limit_condition(self, tag: TagInfo) -> tuple[str, bool]:
        if tag.low is not None and self.rng.random() < 0.25:
            return Condition.LOW, tag.low_low is not None
        return Condition.HIGH, tag.high_high is not None

    def background(self, episodes: int) -> None:
        for offset in sorted(self.rng.uniform(0, 86_000) for _ in range(episodes)):
            tag = self.rng.choice(self.tags)
            at = START + timedelta(seconds=offset)
            roll = self.rng.random()
            if roll < 0.08:  # fleeting: back within seconds
                self.episode(tag, Condition.HIGH, at, [(0, 1), (self.rng.uniform(0.2, 8), 0)])
            elif roll < 0.18:  # chattering around the limit
                steps = [(0.0, 1)]
                for _ in range(self.rng.randint(3, 6)):
                    steps += [(self.rng.uniform(2, 12), 0), (self.rng.uniform(2, 12), 1)]
                self.episode(tag, Condition.HIGH, at, [*steps, (self.rng.uniform(5, 30), 0)])
            elif roll < 0.24:  # transmitter fault
                self.episode(tag, Condition.FAULT, at, [(0, 1), (self.rng.uniform(30, 900), 0)])
            else:
                condition, two = self._limit_condition(tag)
                steps = [(0.0, 1)]
                if two and self.rng.random() < 0.25:  # H → HH → H
                    steps += [(self.rng.uniform(20, 600), 2), (self.rng.uniform(20, 600), 1)]
                self.episode(tag, condition, at, [*steps, (self.rng.lognormvariate(4.5, 1.0), 0)])

    def flood(self, alarms: int) -> None:
        """A gas leak on the LPG farm: gas, pressure and temperature alarms cascade for two hours."""
        farm = [t for t in self.tags if t.enterprise == "E330110001"]
        for offset in sorted(self.rng.uniform(0, FLOOD_FOR.total_seconds()) for _ in range(alarms)):
            tag = self.rng.choice(farm)
            at = FLOOD_AT + timedelta(seconds=offset)
            steps = [(0.0, 1)]
            if tag.high_high is not None and self.rng.random() < 0.4:
                steps += [(self.rng.uniform(5, 60), 2)]
            self.episode(tag, Condition.HIGH, at, [*steps, (self.rng.uniform(10, 120), 0)])

    def standing(self) -> None:
        """Two alarms raised the evening before and never cleared (stale), one for only 20 h."""
        for i, tag in enumerate(self.tags[:3]):
            at = START - timedelta(hours=2) if i < 2 else START + timedelta(hours=4)
            self.episode(tag, Condition.HIGH, at, [(0.0, 1)])


def value_for(tag: TagInfo, condition: str, level: int) -> tuple[float | None, float | None]:
    if condition == Condition.HIGH:
        limit = tag.high_high if level >= 2 and tag.high_high is not None else tag.high
        return (None if limit is None else limit * 1.02 + 0.1), limit
    if condition == Condition.LOW:
        limit = tag.low_low if level >= 2 and tag.low_low is not None else tag.low
        return (None if limit is None else limit * 0.98 - 0.1), limit
    return 3.2, None  # mA below NAMUR NE 43's failure edge


def play(conn: Conn, script: Script) -> None:
    """Drive the timeline through alarms.store, in time order, the clock moved for each event."""
    queue = list(script.events)
    heapq.heapify(queue)
    feedback_of: dict[tuple[int, str], int] = {}
    while queue:
        event = heapq.heappop(queue)
        set_now(conn, event.at)
        key = (event.tag.id, event.condition)
        if event.kind == "level":
            value, limit = value_for(event.tag, event.condition, event.level)
            ts_ms = int(event.at.timestamp() * 1000)
            with conn.transaction():
                apply_transitions(
                    conn, [Transition(event.tag.id, event.condition, event.level, ts_ms, value, limit)]
                )
            continue
        if event.kind == "ack":
            row = conn.execute(
                "SELECT id, state FROM alarms WHERE tag_id = %s AND condition = %s AND state <> 'NORMAL'", key
            ).fetchone()
            if row is not None and row[1] in ("UNACK", "RTN_UNACK"):
                acknowledge(conn, int(str(row[0])), event.actor)
                feedback_of[key] = int(str(row[0]))
            continue
        alarm_id = feedback_of.pop(key, None)
        owed = alarm_id is not None and conn.execute(
            "SELECT feedback_required AND disposition IN ('due', 'returned') FROM alarms WHERE id = %s",
            (alarm_id,),
        ).fetchone() == (True,)
        if alarm_id is None or not owed:
            continue
        try:
            file_feedback(conn, alarm_id, event.actor, "process_fluctuation", "adjusted the process")
        except InvalidTransition:
            continue  # re-annunciated (UNACK) or feedback not owed in that state


def scripted_day(conn: Conn, seed: int = 20261201) -> Script:
    # the plant was installed and heard from well before the day (online rates count from then)
    conn.execute("UPDATE tags SET created_at = %s", (START - timedelta(days=30),))
    conn.execute("UPDATE gateways SET first_seen_at = %s", (START - timedelta(days=30),))
    script = Script(plant_tags(conn), seed)
    script.standing()
    script.background(900)
    script.flood(1200)
    script.build()
    play(conn, script)
    set_now(conn, END + timedelta(hours=1))
    return script
