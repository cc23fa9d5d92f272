"""Backtest: a rule set run over stored history, against the alarms actually raised.

An engineer changes a limit, a deadband, a delay or a window in a devices file and asks what
it would have done over last month before applying it. The readings come out of the database by
binary COPY, a day at a time, straight into numpy arrays, and go through the same vectorized
engine the ingest tier runs; nothing is written.

Composites (VOTE of a voting group, SOURCE of a hazard source) are evaluated as ingest does and
compared by group and hazard source code. STALE needs the clock of the time, which the history
does not keep: it is left out.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import psycopg

from hazardwatch.ledger import Plant
from hazardwatch.ledger.composites import SourceWarning
from ingest.storage import read_readings
from rules.composite import TAG_CONDITIONS, CompositeConfig
from rules.engine import RuleEngine, TagConfig
from rules.types import Subject

Conn = psycopg.Connection[tuple[object, ...]]
CHUNK = timedelta(days=1)

Key = tuple[str, str, str]  # enterprise code, tag (voting group, hazard source) code, condition


@dataclass
class Report:
    start: datetime
    end: datetime
    readings: int = 0
    seconds: float = 0.0
    would_raise: Counter[Key] = field(default_factory=Counter)
    raised: Counter[Key] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.readings / self.seconds if self.seconds else 0.0

    def rows(self) -> list[tuple[Key, int, int]]:
        """(key, actually raised, would raise) for every key either counts, most changed first."""
        keys = set(self.raised) | set(self.would_raise)
        rows = [(k, self.raised[k], self.would_raise[k]) for k in keys]
        return sorted(rows, key=lambda r: (-abs(r[2] - r[1]), r[0]))


def config_from_plant(plant: Plant, tag_ids: dict[tuple[str, str], int]) -> tuple[TagConfig, list[Key]]:
    """The engine configuration of a devices file's tags that exist in the database."""
    rows = []
    names: list[Key] = []
    for enterprise, _, _, tag in plant.iter_tags():
        tag_id = tag_ids.get((enterprise.code, tag.code))
        if tag_id is None:
            continue
        lim = tag.effective_limits
        on, off = tag.effective_delays_s
        roc, frozen, predict = tag.roc, tag.frozen, tag.predict
        rows.append((
            tag_id, _nan(lim.ll), _nan(lim.l), _nan(lim.h), _nan(lim.hh), tag.effective_deadband,
            tag.range[0], tag.range[1], tag.out_of_service is None, on, off,
            roc.limit if roc else np.nan, roc.period_s if roc else 0.0,
            frozen.epsilon if frozen else 0.0, frozen.window_s if frozen else 0.0,
            predict.window_s if predict else 0.0, predict.response_s if predict else 0.0,
        ))  # fmt: skip
        names.append((enterprise.code, tag.code, ""))
    cols = list(zip(*rows, strict=True)) if rows else [()] * 17

    def ms(i: int) -> np.ndarray:
        return np.round(np.array(cols[i], dtype=np.float64) * 1000).astype(np.int64)

    config = TagConfig(
        tag_id=np.array(cols[0], dtype=np.int64), ll=np.array(cols[1], dtype=np.float64),
        l=np.array(cols[2], dtype=np.float64), h=np.array(cols[3], dtype=np.float64),
        hh=np.array(cols[4], dtype=np.float64), deadband=np.array(cols[5], dtype=np.float64),
        range_low=np.array(cols[6], dtype=np.float64), range_high=np.array(cols[7], dtype=np.float64),
        in_service=np.array(cols[8], dtype=bool), on_delay_ms=ms(9), off_delay_ms=ms(10),
        roc_limit=np.array(cols[11], dtype=np.float64), roc_period_ms=ms(12),
        frozen_eps=np.array(cols[13], dtype=np.float64), frozen_window_ms=ms(14),
        predict_window_ms=ms(15), predict_response_ms=ms(16),
    )  # fmt: skip
    return config, names


def composites_from_plant(plant: Plant, index: dict[tuple[str, str], int]
                          ) -> tuple[CompositeConfig, dict[tuple[Subject, int], Key]]:  # fmt: skip
    """A devices file's voting groups and hazard-source warnings over the engine's tags (``index``:
    engine index by enterprise and tag code), numbered here; their report keys by subject."""
    groups: list[tuple[int, bool, list[int]]] = []
    sources: list[tuple[int, list[bool]]] = []
    tag_source = np.full(len(index), -1, np.int64)
    keys: dict[tuple[Subject, int], Key] = {}
    for enterprise in plant.enterprises:
        for source in enterprise.hazard_sources:
            warning = source.source_warning
            counted = (warning or SourceWarning()).conditions
            sources.append((warning.min_tags if warning else 0, [str(c) in counted for c in TAG_CONDITIONS]))
            keys[(Subject.HAZARD_SOURCE, len(sources))] = (enterprise.code, source.code, "SOURCE")
            for _, tag in ((e, t) for e in source.equipment for t in e.tags):
                if (enterprise.code, tag.code) in index:
                    tag_source[index[(enterprise.code, tag.code)]] = len(sources) - 1
            for group in source.voting:
                members = [index[(enterprise.code, c)] for c in group.tags if (enterprise.code, c) in index]
                groups.append((group.k, group.condition == "LOW", members))
                keys[(Subject.VOTE_GROUP, len(groups))] = (enterprise.code, group.code, "VOTE")
    config = CompositeConfig(
        vote_id=np.arange(1, len(groups) + 1, dtype=np.int64),
        vote_k=np.array([g[0] for g in groups], dtype=np.int64),
        vote_low=np.array([g[1] for g in groups], dtype=bool),
        member_group=np.array([n for n, g in enumerate(groups) for _ in g[2]], dtype=np.int64),
        member_tag=np.array([m for g in groups for m in g[2]], dtype=np.int64),
        source_id=np.arange(1, len(sources) + 1, dtype=np.int64),
        source_min_tags=np.array([s[0] for s in sources], dtype=np.int64),
        source_conditions=np.array([s[1] for s in sources], dtype=bool).reshape(
            len(sources), len(TAG_CONDITIONS)
        ),
        tag_source=tag_source,
    )
    return config, keys


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def backtest(conn: Conn, plant: Plant, start: datetime, end: datetime) -> Report:
    id_rows = conn.execute(
        "SELECT t.id, e.code, t.code FROM tags t JOIN enterprises e ON e.id = t.enterprise_id"
    ).fetchall()
    tag_ids = {(str(e), str(c)): int(str(i)) for i, e, c in id_rows}
    config, names = config_from_plant(plant, tag_ids)
    engine_index = {(e, c): i for i, (e, c, _) in enumerate(names)}
    composites, composite_keys = composites_from_plant(plant, engine_index)
    engine = RuleEngine(config, composites)
    index = np.full(max(tag_ids.values(), default=0) + 1, -1, np.int64)
    index[config.tag_id] = np.arange(config.size)
    keys = {
        (Subject.TAG, int(t)): (e, c, "") for t, (e, c, _) in zip(config.tag_id.tolist(), names, strict=True)
    }
    keys.update(composite_keys)
    report = Report(start, end)
    levels: dict[tuple[Subject, int, str], int] = {}
    chunk_start = start
    while chunk_start < end:
        chunk_end = min(chunk_start + CHUNK, end)
        ts, tag, values, quality = read_readings(conn, chunk_start, chunk_end)
        began = time.perf_counter()
        idx = index[tag]
        known = idx >= 0
        transitions = engine.evaluate(idx[known], ts[known], values[known], quality[known])
        report.seconds += time.perf_counter() - began
        report.readings += int(known.sum())
        for t in transitions:
            before = levels.get((t.subject, t.subject_id, str(t.condition)), 0)
            levels[(t.subject, t.subject_id, str(t.condition))] = t.level
            if before == 0 and t.level > 0:
                enterprise, code, _ = keys[(t.subject, t.subject_id)]
                report.would_raise[(enterprise, code, str(t.condition))] += 1
        chunk_start = chunk_end
    for row in conn.execute(_RAISED, (start, end)).fetchall():
        if row[2] != "STALE":
            report.raised[(str(row[0]), str(row[1]), str(row[2]))] = int(str(row[3]))
    return report


# what ingest raised: tag conditions, VOTE of voting groups, SOURCE of hazard sources
_RAISED = (
    "SELECT e.code, coalesce(t.code, v.code, hs.code), a.condition, count(*) FROM alarm_journal j"
    " JOIN alarms a ON a.id = j.alarm_id JOIN enterprises e ON e.id = a.enterprise_id"
    " LEFT JOIN tags t ON a.subject_kind = 'tag' AND t.id = a.subject_id"
    " LEFT JOIN vote_groups v ON a.subject_kind = 'vote_group' AND v.id = a.subject_id"
    " LEFT JOIN hazard_sources hs ON a.subject_kind = 'hazard_source' AND hs.id = a.subject_id"
    " WHERE j.action IN ('raise', 'reactivate') AND j.at >= %s AND j.at < %s"
    " AND (a.subject_kind = 'tag' OR (a.subject_kind, a.condition) IN (('vote_group', 'VOTE'),"
    " ('hazard_source', 'SOURCE'))) GROUP BY 1, 2, 3"
)
