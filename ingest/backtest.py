"""Backtest: a rule set run over stored history, against the alarms live ingest actually raised.

An engineer changes a limit, a deadband, a delay or a window in a devices file (or a rules file
over it) and asks what it would have done over last month before applying it. The rule settings
come from the ledger sync itself, run in a transaction that is rolled back, so the engine gets
exactly the configuration ingest would load; nothing is written. The readings come out of the
database by binary COPY, a day at a time, and go through ``ingest.evaluate``: the very step live
ingest runs (devices down and their covered BAD_COMM readings, DEVICE_COMM, STALE on the clock's
tick, composites), with the clock's ticks replayed every ``TICK_MS``.

What stored history cannot tell is taken as the data allows (``NOTES``, in the report too):
readings keep their source time, not when they arrived; gateways' silence is taken from the
GATEWAY_OFFLINE alarms live raised; a tag's out-of-service period only from ``tags.oos_at``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
import psycopg

from hazardwatch.clock import utc_from_ms
from hazardwatch.ledger import Plant
from hazardwatch.quality import Quality
from ingest.backtest_history import CONDITIONS, Change, History, Key, live_history
from ingest.backtest_report import Report
from ingest.devices import DELAY_S, DeviceComm
from ingest.evaluate import carry_state, readings_step, tick_step
from ingest.ledger_sync import sync_ledger
from ingest.storage import read_readings
from ingest.tagindex import TagIndex
from rules.engine import RuleEngine
from rules.types import Condition, Subject, Transition

Conn = psycopg.Connection[tuple[object, ...]]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Q = npt.NDArray[np.int16]
CHUNK = timedelta(days=1)
NOT_YET = 2**62  # a gateway never heard from: its tags are not watched
TICK_MS = 5_000  # ingest's clock tick (ingest.consumer.CLOCK_TICK_S)
DEVICE_DELAY_MS = int(DELAY_S * 1000)
WARM_UP_MARGIN_MS = 60_000
MAX_WARM_UP_MS = 2 * 3_600_000
NEVER = np.iinfo(np.int64).min // 2
SEGMENT = 200_000  # readings looked at at once for a segment that may run as one step


def _tick_at_or_after(ms: I64 | int) -> I64:
    """The replayed clock ticks on every whole ``TICK_MS``."""
    ticks: I64 = -(-np.asarray(ms, np.int64) // TICK_MS) * TICK_MS
    return ticks


class _Replay:
    """The engine and the devices' state, fed stored readings and the clock's ticks in time order."""

    def __init__(self, index: TagIndex, oos_from: dict[int, int], start_ms: int, history: History,
                 contact_ms: dict[int, int] | None = None) -> None:  # fmt: skip
        """``contact_ms``: each gateway's first contact (ms); a tag's silence counts from then."""
        self._final = index
        self._oos = np.array([oos_from.get(int(t), np.iinfo(np.int64).max) for t in index.config.tag_id],
                             dtype=np.int64)  # fmt: skip
        # out of service since oos_at: in service before it (earlier periods are not kept)
        self._switches = sorted({int(t) for t in self._oos[~index.config.in_service] if t > start_ms})
        self.index = self._index_at(start_ms)
        self.engine = RuleEngine(self.index.config, self.index.composites)
        self.devices = DeviceComm(self.index)
        self._history = history
        self.heard = np.full(index.config.size, NEVER, np.int64)  # per tag: its last reading
        self._watch_from_contact(start_ms, contact_ms or {})
        self._first_tick = int(_tick_at_or_after(start_ms))
        self.last_tick = self._first_tick - TICK_MS
        self._ticked = False
        self.levels: dict[Key, int] = {}
        self.changes: dict[Key, list[Change]] = {}
        self.readings = 0
        self.seconds = 0.0

    def _watch_from_contact(self, start_ms: int, contact_ms: dict[int, int]) -> None:
        """Silence counts from a tag's gateway's first contact, as live's clock ran only from then: a
        gateway never heard (or not yet) is not watched, and the time before cannot go STALE."""
        gateways = [self.index.gateway_of_tag.get(int(t)) for t in self.index.config.tag_id]
        contact = np.array([contact_ms.get(g, NOT_YET) if g is not None else NOT_YET for g in gateways],
                           dtype=np.int64)  # fmt: skip
        late = contact > start_ms
        self.engine.state.watched_from[late] = contact[late]
        self.heard[late] = contact[late]

    def _index_at(self, at_ms: int) -> TagIndex:
        cfg = self._final.config
        in_service = cfg.in_service | (self._oos > at_ms)
        return dataclasses.replace(self._final, config=dataclasses.replace(cfg, in_service=in_service))

    def _switch_until(self, at_ms: int) -> None:
        """Tags that went out of service by ``at_ms`` leave the rules, as a reload of the ledger does."""
        if not self._switches or self._switches[0] > at_ms:
            return
        while self._switches and self._switches[0] <= at_ms:
            self._switches.pop(0)
        index = self._index_at(at_ms)
        engine = RuleEngine(index.config, index.composites)
        carry_state(self.engine, engine)
        devices = DeviceComm(index)
        devices.state = self.devices.state.copy()
        self.index, self.engine, self.devices = index, engine, devices

    # -- the state at the start ------------------------------------------------------------
    def seed(self, idx: I64, ts: I64, values: npt.NDArray[np.float64], quality: npt.NDArray[np.int16],
             active: dict[Key, tuple[int, list[str]]]) -> None:  # fmt: skip
        """Warm up from readings before the start and take the levels live had then, as a restart does."""
        self.engine.warm_up(idx, ts, values, quality)
        self.devices.observe(idx, ts, quality)
        np.maximum.at(self.heard, idx, ts)
        for key, (level, devices) in active.items():
            subject, subject_id, condition = key
            if subject == Subject.TAG:
                self.engine.seed(subject_id, Condition(condition), level)
            elif subject in (Subject.VOTE_GROUP, Subject.HAZARD_SOURCE):
                self.engine.seed_composite(subject, subject_id, level)
            elif condition == Condition.DEVICE_COMM:
                self.devices.state.alarmed[subject_id] = devices
            else:
                continue
            self.levels[key] = level
        self.devices.state.alarmed = {
            g: d for g, d in self.devices.state.alarmed.items()
            if (Subject.GATEWAY, g, str(Condition.DEVICE_COMM)) in self.levels
        }  # fmt: skip

    # -- time ------------------------------------------------------------------------------
    def _record(self, transitions: Iterable[Transition]) -> None:
        """The level changes an alarm would show (a transition to the level it has changes nothing)."""
        for t in transitions:
            if str(t.condition) not in CONDITIONS:
                continue
            key = (t.subject, t.subject_id, str(t.condition))
            if self.levels.get(key, 0) != t.level:
                self.levels[key] = t.level
                self.changes.setdefault(key, []).append(Change(t.level, t.ts_ms))

    def _next_tick(self) -> int:
        """The first tick after the last one run at which silence may raise something: no tick
        before it can (readings only put silence off), so the ticks in between are skipped."""
        if not self._ticked:
            return self._first_tick
        cfg = self.engine.config
        watched = cfg.in_service & (cfg.stale_ms > 0)
        since = self.devices.state.since
        ticks = np.concatenate([
            _tick_at_or_after(self.heard[watched] + cfg.stale_ms[watched] + 1),
            _tick_at_or_after(since[since >= 0] + DEVICE_DELAY_MS),
        ])  # fmt: skip
        ticks = ticks[ticks > self.last_tick]
        return int(ticks.min()) if ticks.size else int(np.iinfo(np.int64).max)

    def ticks_before(self, limit_ms: int) -> None:
        """Run the clock's ticks before ``limit_ms`` (a tick at T comes after the readings at T)."""
        while (at := self._next_tick()) < limit_ms:
            self._switch_until(at)
            self.last_tick = at
            down = self._history.gateways_down(at)
            outcome = tick_step(self.engine, self.devices, at, self.index.gateway_of_tag, down)
            if not self._ticked:  # silence counts from the first tick, for a tag not heard before
                self._ticked = True
                np.maximum(self.heard, at, out=self.heard)
            self._record(outcome.transitions)

    def step(
        self, idx: I64, ts: I64, values: npt.NDArray[np.float64], quality: npt.NDArray[np.int16]
    ) -> None:
        began = time.perf_counter()
        outcome = readings_step(self.engine, self.devices, idx, ts, values, quality, int(ts.max()))
        self.seconds += time.perf_counter() - began
        self.readings += int(idx.size)
        in_service = self.engine.config.in_service[idx]
        np.maximum.at(self.heard, idx[in_service], ts[in_service])
        self._record(outcome.transitions)

    # -- segments --------------------------------------------------------------------------
    def run(self, idx: I64, ts: I64, values: npt.NDArray[np.float64], quality: npt.NDArray[np.int16],
            end_ms: int) -> None:  # fmt: skip
        """Readings sorted by time, then the ticks up to ``end_ms`` (exclusive)."""
        comm = (quality == Quality.BAD_COMM) & (self.index.device_of[idx] >= 0)
        pos, n = 0, int(ts.size)
        while pos < n:
            self.ticks_before(int(ts[pos]))
            self._switch_until(int(ts[pos]))
            stop = self._segment_end(ts, comm, pos)
            self.step(idx[pos:stop], ts[pos:stop], values[pos:stop], quality[pos:stop])
            pos = stop
        self.ticks_before(end_ms)

    def _segment_end(self, ts: I64, comm: npt.NDArray[np.bool_], pos: int) -> int:
        """Where the step from ``pos`` ends: one source instant while a device is down or may go
        down (coverage follows each poll, as live's steps do); else up to the next tick that may
        raise something, the next BAD_COMM or the next change of service. Evaluating such a stretch
        at once gives what evaluating it instant by instant would: the engine is batch-invariant
        and no device changes in it."""
        instant_end = int(np.searchsorted(ts, ts[pos], "right"))
        state = self.devices.state
        if comm[pos] or (state.since >= 0).any() or state.alarmed:
            return instant_end
        stop = min(int(ts.size), pos + SEGMENT)
        bad = np.flatnonzero(comm[pos:stop])
        if bad.size:
            stop = int(np.searchsorted(ts, ts[pos + int(bad[0])], "left"))
        limit = self._next_tick()
        if self._switches:
            limit = min(limit, self._switches[0] - 1)
        stop = min(stop, int(np.searchsorted(ts, limit, "right")))
        if stop < ts.size:
            stop = int(np.searchsorted(ts, ts[stop], "left"))  # whole instants
        return max(stop, instant_end)


def _ruled_index(
    conn: Conn, plant: Plant
) -> tuple[TagIndex, dict[int, int], dict[tuple[Subject, int], tuple[str, str]]]:
    """The tag index ingest would load once ``plant`` is synced, without keeping the sync; each
    tag out of service with the time it went out (-1: unknown), and every subject's codes."""
    codes = [e.code for e in plant.enterprises]
    with conn.transaction():
        sync_ledger(conn, plant)
        index = TagIndex.load(conn, codes)
        oos = {
            int(str(r[0])): int(str(r[1]))
            for r in conn.execute(
                "SELECT id, coalesce((extract(epoch FROM oos_at) * 1000)::bigint, -1) FROM tags"
                " WHERE NOT in_service"
            )
        }
        names = _names(conn)
        raise psycopg.Rollback()  # nothing of the sync is kept
    return index, oos, names


def _names(conn: Conn) -> dict[tuple[Subject, int], tuple[str, str]]:
    rows = conn.execute(
        "SELECT 'tag', t.id, e.code, t.code FROM tags t JOIN enterprises e ON e.id = t.enterprise_id"
        " UNION ALL SELECT 'vote_group', v.id, e.code, v.code FROM vote_groups v"
        "  JOIN hazard_sources h ON h.id = v.hazard_source_id JOIN enterprises e ON e.id = h.enterprise_id"
        " UNION ALL SELECT 'hazard_source', h.id, e.code, h.code FROM hazard_sources h"
        "  JOIN enterprises e ON e.id = h.enterprise_id"
        " UNION ALL SELECT 'gateway', g.id, e.code, g.code FROM gateways g"
        "  JOIN enterprises e ON e.id = g.enterprise_id"
    ).fetchall()
    return {(Subject(str(r[0])), int(str(r[1]))): (str(r[2]), str(r[3])) for r in rows}


def _sorted(index: TagIndex, ts: I64, tag: I64, values: F64, quality: Q) -> tuple[I64, I64, F64, Q]:
    """Stored readings of the index's tags by source time, with engine indexes for tag ids."""
    lookup = np.full(max(int(index.config.tag_id.max(initial=0)), int(tag.max(initial=0))) + 1, -1, np.int64)
    lookup[index.config.tag_id] = np.arange(index.config.size)
    rows = lookup[tag]
    known = np.flatnonzero(rows >= 0)
    order = known[np.argsort(ts[known], kind="stable")]
    return rows[order], ts[order], values[order], quality[order]


def backtest(conn: Conn, plant: Plant, start: datetime, end: datetime) -> Report:
    """Run ``plant``'s rules over the readings stored in [start, end) and set them against live's alarms."""
    index, oos, names = _ruled_index(conn, plant)
    start_ms = int(start.timestamp() * 1000)
    history = live_history(conn, [e.code for e in plant.enterprises], start, end)
    contact = {
        int(str(g)): int(str(ms))
        for g, ms in conn.execute(
            "SELECT id, (extract(epoch FROM first_seen_at) * 1000)::bigint FROM gateways"
            " WHERE first_seen_at IS NOT NULL"
        ).fetchall()
    }
    replay = _Replay(index, oos, start_ms, history, contact)
    longest = max(replay.engine.warm_up_ms, int(index.config.stale_ms.max(initial=0)))
    span = min(longest + WARM_UP_MARGIN_MS, MAX_WARM_UP_MS) if longest else 0
    idx, ts, values, quality = _sorted(index, *read_readings(conn, utc_from_ms(start_ms - span), start))
    replay.seed(idx, ts, values, quality, history.active_at_start)
    seeded = dict(replay.levels)
    chunk_start = start
    while chunk_start < end:
        chunk_end = min(chunk_start + CHUNK, end)
        idx, ts, values, quality = _sorted(index, *read_readings(conn, chunk_start, chunk_end))
        replay.run(idx, ts, values, quality, int(chunk_end.timestamp() * 1000))
        chunk_start = chunk_end
    return Report.build(start, end, names, seeded, history.changes, replay.changes, replay.readings,
                        replay.seconds)  # fmt: skip
