"""Composite conditions over the tags' condition levels, for a whole batch at once.

- **VOTE** (k out of n): a voting group of tags of one hazard source is at level 1 when at least
  ``k`` of its tags are at H or above (or L or below, for a group voting on LOW), at level 2 when
  at least ``k`` are at HH (LL).
- **SOURCE** (hazard-source warning): a hazard source is at level 1 while at least ``min_tags``
  distinct tags of it have one of the source's warning conditions active.

Both follow the tag conditions' changes of the batch in source-time order: all the changes at
one source time apply together, then the composite levels are taken (a composite never sees one
half of a simultaneous change). A composite changes at the source time of the tag change that
moved it, and never before its own previous change (late data of one tag does not move a
composite back in time). A composite whose level disagrees with its tags' levels with no tag
change in the batch (after a restart seeded it, or a reload of the ledger) takes its level at
the batch's newest time.

Everything is computed with sorts and cumulative sums over the batch's tag changes; the loops
are over the condition kinds, never over readings or groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from rules.types import Condition, Subject

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

# The per-reading conditions a composite can look at, by code (the column of a tag's levels).
TAG_CONDITIONS = (Condition.HIGH, Condition.LOW, Condition.FAULT, Condition.ROC, Condition.FROZEN,
                  Condition.PREDICT)  # fmt: skip
CODE = {c: i for i, c in enumerate(TAG_CONDITIONS)}
DEFAULT_SOURCE_CONDITIONS = (Condition.HIGH, Condition.LOW, Condition.ROC, Condition.PREDICT)


def _ints(n: int = 0) -> I64:
    return np.zeros(n, np.int64)


@dataclass(frozen=True, slots=True)
class CompositeConfig:
    """Voting groups and hazard-source warnings as arrays; tags by their engine index."""

    vote_id: I64 = field(default_factory=_ints)  # per group: its subject id (vote_groups.id)
    vote_k: I64 = field(default_factory=_ints)
    vote_low: Bools = field(default_factory=lambda: np.zeros(0, bool))  # votes on LOW, not HIGH
    member_group: I64 = field(default_factory=_ints)  # per membership: the group's index…
    member_tag: I64 = field(default_factory=_ints)  # …and the tag's engine index
    source_id: I64 = field(default_factory=_ints)  # per hazard source: hazard_sources.id
    source_min_tags: I64 = field(default_factory=_ints)  # 0: no warning
    source_conditions: Bools = field(default_factory=lambda: np.zeros((0, len(TAG_CONDITIONS)), bool))
    tag_source: I64 = field(default_factory=_ints)  # per tag: its hazard source's index (-1: none)

    @property
    def groups(self) -> int:
        return int(self.vote_id.size)

    @property
    def sources(self) -> int:
        return int(self.source_id.size)

    def source_of(self, n_tags: int) -> I64:
        """Each tag's hazard source index, -1 for none (also when ``tag_source`` was not given)."""
        return self.tag_source if self.tag_source.size == n_tags else np.full(n_tags, -1, np.int64)


@dataclass(slots=True)
class CompositeState:
    vote: I8
    vote_ts: I64  # the source time of the group's last change
    source: I8
    source_ts: I64
    # levels may disagree with the tags' without a tag change (after a seed or a reload): the next
    # batch compares them all; otherwise a batch without tag changes leaves the composites alone
    pending: bool = True

    @classmethod
    def empty(cls, groups: int, sources: int) -> CompositeState:
        low = np.iinfo(np.int64).min
        return cls(np.zeros(groups, np.int8), np.full(groups, low, np.int64), np.zeros(sources, np.int8),
                   np.full(sources, low, np.int64))  # fmt: skip

    def copy(self) -> CompositeState:
        return CompositeState(
            self.vote.copy(), self.vote_ts.copy(), self.source.copy(), self.source_ts.copy(), self.pending
        )


@dataclass(frozen=True, slots=True)
class TagChanges:
    """The batch's changes of tag condition levels: tag index, condition code, time, before, after."""

    tag: I64
    code: I64
    ts: I64
    before: I8
    after: I8


@dataclass(frozen=True, slots=True)
class CompositeChange:
    subject: Subject
    subject_id: int
    condition: Condition
    level: int
    ts_ms: int
    count: int  # tags voting, or tags with an active condition
    threshold: int  # k, or min_tags


def evaluate_composites(cfg: CompositeConfig, state: CompositeState, levels: I8, changes: TagChanges,
                        newest_ts: int) -> list[CompositeChange]:  # fmt: skip
    """Composite changes for a batch; ``levels`` are the tags' levels after it (tags × conditions).

    Updates ``state`` in place.
    """
    if changes.tag.size == 0 and not state.pending:
        return []
    state.pending = False
    out: list[CompositeChange] = []
    if cfg.groups:
        out += _votes(cfg, state, levels, changes, newest_ts)
    if cfg.sources:
        out += _sources(cfg, state, levels, changes, newest_ts)
    return out


def _runs(key: I64, ts: I64, deltas: list[I64], final: list[I64]) -> tuple[I64, I64, list[I64]]:
    """Counts after each (key, time) run of events: the final per-key counts less what follows.

    ``deltas`` are per-event changes of counts whose values after the whole batch are ``final``
    (per key). Returns the key and time of each run, sorted, and each count after the run.
    """
    if key.size == 0:
        return key, ts, [np.zeros(0, np.int64) for _ in deltas]
    order = np.lexsort((ts, key))
    key, ts = key[order], ts[order]
    last = np.append((key[1:] != key[:-1]) | (ts[1:] != ts[:-1]), True)
    first_of_key = np.searchsorted(key, key, side="left")
    counts = []
    for delta, total in zip(deltas, final, strict=True):
        d = delta[order]
        start = total - np.bincount(key, weights=d, minlength=total.size).astype(np.int64)
        cum = np.cumsum(d)
        before_key = np.where(first_of_key > 0, cum[first_of_key - 1], 0)
        counts.append((start[key] + cum - before_key)[last])
    return key[last], ts[last], counts


def _level_changes(key: I64, ts: I64, level: I8, count: I64, seed: I8, seed_ts: I64
                   ) -> tuple[I64, I64, I8, I64]:  # fmt: skip
    """Of key-sorted, time-ordered runs, those whose level differs from the previous run's (or the
    seed's), with their counts; updates ``seed`` and ``seed_ts``. A change's time is never before
    its key's previous change."""
    if key.size == 0:
        return key, ts, level, count
    first = np.append(True, key[1:] != key[:-1])
    previous = np.empty_like(level)
    previous[1:] = level[:-1]
    previous[first] = seed[key[first]]
    changed = level != previous
    k, t = key[changed], np.maximum(ts[changed], seed_ts[key[changed]])
    last = np.append(key[1:] != key[:-1], True)
    seed[key[last]] = level[last]
    if k.size:
        newest = np.append(k[1:] != k[:-1], True)
        seed_ts[k[newest]] = t[newest]
    return k, t, level[changed], count[changed]


def _reconcile(derived: I8, seed: I8, seed_ts: I64, touched: I64, newest_ts: int) -> tuple[I64, I64, I8]:
    """Keys no change touched whose level disagrees with their tags' (after a seed or a reload)."""
    off = derived != seed
    off[touched] = False
    keys = np.flatnonzero(off).astype(np.int64)
    ts = np.maximum(np.full(keys.size, newest_ts, np.int64), seed_ts[keys])
    seed[keys], seed_ts[keys] = derived[keys], ts
    return keys, ts, derived[keys]


def _votes(cfg: CompositeConfig, state: CompositeState, levels: I8, changes: TagChanges,
           newest_ts: int) -> list[CompositeChange]:  # fmt: skip
    voted = np.where(cfg.vote_low, CODE[Condition.LOW], CODE[Condition.HIGH])  # per group
    member_level = levels[cfg.member_tag, voted[cfg.member_group]]
    final1 = np.bincount(cfg.member_group, weights=member_level >= 1, minlength=cfg.groups).astype(np.int64)
    final2 = np.bincount(cfg.member_group, weights=member_level >= 2, minlength=cfg.groups).astype(np.int64)
    # every change of a member's voted condition, once per group the tag is a member of
    by_tag = np.argsort(cfg.member_tag, kind="stable")
    tags_sorted = cfg.member_tag[by_tag]
    lo = np.searchsorted(tags_sorted, changes.tag, side="left")
    hi = np.searchsorted(tags_sorted, changes.tag, side="right")
    per_change = hi - lo
    event = np.repeat(np.arange(changes.tag.size), per_change)
    offset = np.arange(event.size) - np.repeat(np.cumsum(per_change) - per_change, per_change)
    membership = by_tag[lo[event] + offset]
    group = cfg.member_group[membership]
    relevant = changes.code[event] == voted[group]
    event, group = event[relevant], group[relevant]
    before, after = changes.before[event], changes.after[event]
    d1 = (after >= 1).astype(np.int64) - (before >= 1)
    d2 = (after >= 2).astype(np.int64) - (before >= 2)
    key, ts, (c1, c2) = _runs(group, changes.ts[event], [d1, d2], [final1, final2])
    k = cfg.vote_k[key]
    level = np.where(c2 >= k, 2, np.where(c1 >= k, 1, 0)).astype(np.int8)
    g, t, lv, count = _level_changes(key, ts, level, np.where(level == 2, c2, c1), state.vote, state.vote_ts)
    derived = np.where(final2 >= cfg.vote_k, 2, np.where(final1 >= cfg.vote_k, 1, 0)).astype(np.int8)
    rg, rt, rl = _reconcile(derived, state.vote, state.vote_ts, key, newest_ts)
    g, t, lv = np.concatenate([g, rg]), np.concatenate([t, rt]), np.concatenate([lv, rl])
    count = np.concatenate([count, np.where(rl == 2, final2[rg], final1[rg])])
    return [
        CompositeChange(Subject.VOTE_GROUP, subject, Condition.VOTE, level_, ts_, n, threshold)
        for subject, level_, ts_, n, threshold in zip(
            cfg.vote_id[g].tolist(),
            lv.tolist(),
            t.tolist(),
            count.tolist(),
            cfg.vote_k[g].tolist(),
            strict=True,
        )
    ]


def _sources(cfg: CompositeConfig, state: CompositeState, levels: I8, changes: TagChanges,
             newest_ts: int) -> list[CompositeChange]:  # fmt: skip
    n_tags = levels.shape[0]
    tag_source = cfg.source_of(n_tags)
    watched_tag = tag_source >= 0
    counted = np.zeros(levels.shape, bool)  # per tag and condition: counts for its hazard source
    counted[watched_tag] = cfg.source_conditions[tag_source[watched_tag]]
    counted &= (cfg.source_min_tags > 0)[np.maximum(tag_source, 0)][:, None] & watched_tag[:, None]
    active_final = ((levels > 0) & counted).sum(axis=1).astype(np.int64)  # per tag
    # tag activity: a tag is active while any counted condition is; its changes in time order
    keep = counted[changes.tag, changes.code]
    tag, ts = changes.tag[keep], changes.ts[keep]
    delta = (changes.after[keep] > 0).astype(np.int64) - (changes.before[keep] > 0)
    t_key, t_ts, (active_after,) = _runs(tag, ts, [delta], [active_final])
    is_active = (active_after > 0).astype(np.int8)
    first = np.append(True, t_key[1:] != t_key[:-1]) if t_key.size else np.zeros(0, bool)
    was = np.empty_like(is_active)
    if t_key.size:
        was[1:] = is_active[:-1]
        start = active_final - np.bincount(tag, weights=delta, minlength=n_tags).astype(np.int64)
        was[first] = start[t_key[first]] > 0
    moved = is_active != was
    s_delta = is_active[moved].astype(np.int64) - was[moved]
    s_key, s_ts = tag_source[t_key[moved]], t_ts[moved]
    final = np.bincount(tag_source[watched_tag], weights=active_final[watched_tag] > 0,
                        minlength=cfg.sources).astype(np.int64)  # fmt: skip
    key, run_ts, (count,) = _runs(s_key, s_ts, [s_delta], [final])
    on = cfg.source_min_tags > 0
    level = ((count >= cfg.source_min_tags[key]) & on[key]).astype(np.int8)
    s, t, lv, at_change = _level_changes(key, run_ts, level, count, state.source, state.source_ts)
    derived = ((final >= cfg.source_min_tags) & on).astype(np.int8)
    rs, rt, rl = _reconcile(derived, state.source, state.source_ts, key, newest_ts)
    s, t, lv = np.concatenate([s, rs]), np.concatenate([t, rt]), np.concatenate([lv, rl])
    at_change = np.concatenate([at_change, final[rs]])
    return [
        CompositeChange(Subject.HAZARD_SOURCE, subject, Condition.SOURCE, level_, ts_, n, threshold)
        for subject, level_, ts_, n, threshold in zip(
            cfg.source_id[s].tolist(),
            lv.tolist(),
            t.tolist(),
            at_change.tolist(),
            cfg.source_min_tags[s].tolist(),
            strict=True,
        )
    ]
