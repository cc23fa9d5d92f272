"""Composite conditions (k-out-of-n VOTE, hazard-source SOURCE) against the plain reference."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.composite import DEFAULT_SOURCE_CONDITIONS, TAG_CONDITIONS, CompositeConfig
from rules.engine import RuleEngine, TagConfig
from rules.types import Condition, Subject, Transition
from tests.test_rules import agree_with_reference

# tags 0-3: gas detectors (H 25, HH 50 %LEL), tag 2 with a 3 s on-delay, tag 3 out of service;
# tag 4: a level (L 15, LL 10) with a rate of change of 20 per 5
N = 5


def tag_config() -> TagConfig:
    return TagConfig(
        tag_id=np.array([11, 12, 13, 14, 15], dtype=np.int64),
        ll=np.array([math.nan] * 4 + [10.0]), l=np.array([math.nan] * 4 + [15.0]),
        h=np.array([25.0] * 4 + [85.0]), hh=np.array([50.0] * 4 + [90.0]),
        deadband=np.full(N, 1.0), range_low=np.zeros(N), range_high=np.full(N, 100.0),
        in_service=np.array([True, True, True, False, True]),
        on_delay_ms=np.array([0, 0, 3, 0, 0], np.int64), off_delay_ms=np.array([0, 0, 2, 0, 0], np.int64),
        roc_limit=np.array([math.nan] * 4 + [20.0]), roc_period_ms=np.array([0, 0, 0, 0, 5], dtype=np.int64),
    )  # fmt: skip


def conditions(*names: Condition) -> list[bool]:
    return [c in names for c in TAG_CONDITIONS]


def composites(min_tags: tuple[int, int] = (2, 2)) -> CompositeConfig:
    """Group 701: 2oo3 of tags 0-2 on HIGH; group 702: 1oo2 of tags 3-4 on LOW; group 703: 2oo2 of
    tags 1 and 4 on HIGH. Hazard source 31: tags 0-2; hazard source 32: tags 3-4, counting FAULT too."""
    groups = [(701, 2, False, [0, 1, 2]), (702, 1, True, [3, 4]), (703, 2, False, [1, 4])]
    return CompositeConfig(
        vote_id=np.array([g[0] for g in groups], dtype=np.int64),
        vote_k=np.array([g[1] for g in groups], dtype=np.int64),
        vote_low=np.array([g[2] for g in groups]),
        member_group=np.array([n for n, g in enumerate(groups) for _ in g[3]], dtype=np.int64),
        member_tag=np.array([t for g in groups for t in g[3]], dtype=np.int64),
        source_id=np.array([31, 32], dtype=np.int64),
        source_min_tags=np.array(min_tags, dtype=np.int64),
        source_conditions=np.array([conditions(*DEFAULT_SOURCE_CONDITIONS),
                                    conditions(*DEFAULT_SOURCE_CONDITIONS, Condition.FAULT)]),
        tag_source=np.array([0, 0, 0, 1, 1], dtype=np.int64),
    )  # fmt: skip


reading = st.tuples(
    st.integers(0, N - 1),
    st.integers(0, 30),
    st.one_of(
        st.sampled_from([0.0, 5.0, 9.0, 12.0, 16.0, 24.0, 25.0, 26.0, 49.0, 50.0, 51.0, 86.0, 91.0]),
        st.floats(-5, 105),
        st.just(math.nan),
    ),
    st.sampled_from([0, 0, 0, 0, 0, 1, 3]),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.lists(reading, max_size=30), max_size=6), st.sampled_from([(2, 2), (1, 3), (0, 1)]))
def test_composites_match_reference(batches: list[list[tuple[int, int, float, int]]],
                                    min_tags: tuple[int, int]) -> None:  # fmt: skip
    agree_with_reference(tag_config(), batches, composites=composites(min_tags))


def _composite(got: list[Transition], subject: Subject | None = None
               ) -> list[tuple[str, int, str, int, int, float | None, float | None]]:  # fmt: skip
    return [(str(t.subject), t.subject_id, str(t.condition), t.level, t.ts_ms, t.value, t.limit)
            for t in got if t.subject != Subject.TAG and subject in (None, t.subject)]  # fmt: skip


def _run(engine: RuleEngine, *readings: tuple[int, int, float]) -> list[Transition]:
    n = len(readings)
    return engine.evaluate(
        np.array([r[0] for r in readings], np.int64), np.array([r[1] for r in readings], np.int64),
        np.array([r[2] for r in readings]), np.zeros(n, np.int16),
    )  # fmt: skip


def test_two_out_of_three_gas_detectors_vote_at_h_then_at_hh() -> None:
    engine = RuleEngine(tag_config(), composites(min_tags=(0, 0)))
    assert _composite(_run(engine, (0, 1, 30.0))) == []  # one detector at H: no vote
    assert _composite(_run(engine, (1, 2, 27.0))) == [("vote_group", 701, "VOTE", 1, 2, 2.0, 2.0)]
    assert _composite(_run(engine, (0, 3, 60.0))) == []  # one at HH, the other at H: still level 1
    assert _composite(_run(engine, (1, 4, 55.0))) == [("vote_group", 701, "VOTE", 2, 4, 2.0, 2.0)]
    assert _composite(_run(engine, (2, 4, 60.0))) == []  # tag 2 at HH, held from 4 for its 3 s on-delay
    # at one source time tag 2's on-delay ends and tag 1 leaves: the vote never drops in between
    assert _composite(_run(engine, (2, 7, 60.0), (1, 7, 10.0))) == []
    assert _composite(_run(engine, (0, 9, 5.0), (2, 9, 5.0), (2, 11, 5.0))) == [
        ("vote_group", 701, "VOTE", 0, 9, 1.0, 2.0)  # tag 2's off-delay: at HH until 11
    ]


def test_a_hazard_source_warns_on_two_distinct_tags_and_counts_a_tag_once() -> None:
    engine = RuleEngine(tag_config(), composites())
    assert _composite(_run(engine, (4, 1, 50.0), (4, 3, 75.0))) == []  # tag 4: ROC, alone in its source
    assert _composite(_run(engine, (4, 4, 95.0))) == []  # HIGH on the same tag: still one tag
    assert _composite(_run(engine, (0, 5, 30.0))) == []  # tag 0 is in the other hazard source
    both = _run(engine, (1, 6, 30.0))
    assert _composite(both, Subject.HAZARD_SOURCE) == [("hazard_source", 31, "SOURCE", 1, 6, 2.0, 2.0)]
    assert [t.subject_id for t in both if t.subject == Subject.VOTE_GROUP] == [701, 703]  # tags 0+1, 1+4
    assert _composite(_run(engine, (0, 7, 5.0)), Subject.HAZARD_SOURCE) == [
        ("hazard_source", 31, "SOURCE", 0, 7, 1.0, 2.0)
    ]


def test_fault_counts_only_where_configured_and_zero_turns_the_warning_off() -> None:
    engine = RuleEngine(tag_config(), composites(min_tags=(2, 1)))
    bad = engine.evaluate(np.array([0, 4]), np.array([1, 1]), np.array([math.nan, math.nan]),
                          np.array([2, 2], np.int16))  # fmt: skip
    assert _composite(bad) == [("hazard_source", 32, "SOURCE", 1, 1, 1.0, 1.0)]  # FAULT counts in 32 only
    off = RuleEngine(tag_config(), composites(min_tags=(0, 0)))
    assert _composite(_run(off, (0, 1, 30.0), (1, 1, 30.0), (2, 1, 30.0))) == [
        ("vote_group", 701, "VOTE", 1, 1, 2.0, 2.0)
    ]


def test_late_data_never_moves_a_composite_back_in_time() -> None:
    engine = RuleEngine(tag_config(), composites(min_tags=(0, 0)))
    _run(engine, (0, 10, 30.0), (1, 10, 30.0))  # voted at 10
    assert _composite(_run(engine, (0, 20, 5.0))) == [("vote_group", 701, "VOTE", 0, 20, 1.0, 2.0)]
    # tag 2 reports late, from time 5: the vote is back at once, but not before it ended
    assert _composite(_run(engine, (2, 5, 30.0), (2, 8, 30.0))) == [
        ("vote_group", 701, "VOTE", 1, 20, 2.0, 2.0)
    ]


def test_seeded_composites_raise_nothing_again_and_a_missing_one_comes_back() -> None:
    engine = RuleEngine(tag_config(), composites())
    for tag_id in (11, 12):
        engine.seed(tag_id, Condition.HIGH, 1)
    engine.seed_composite(Subject.VOTE_GROUP, 701, 1)
    engine.seed_composite(Subject.HAZARD_SOURCE, 31, 1)
    assert _composite(_run(engine, (0, 100, 31.0), (1, 100, 32.0))) == []  # no duplicate after a restart
    unseeded = RuleEngine(tag_config(), composites())
    for tag_id in (11, 12):
        unseeded.seed(tag_id, Condition.HIGH, 1)
    got = _composite(_run(unseeded, (4, 100, 50.0), (4, 101, 50.0)))  # no change of 0 or 1 in this batch
    assert got == [
        ("vote_group", 701, "VOTE", 1, 101, 2.0, 2.0),
        ("hazard_source", 31, "SOURCE", 1, 101, 2.0, 2.0),
    ]


def test_composite_levels_survive_a_reload_of_the_ledger() -> None:
    old = RuleEngine(tag_config(), composites())
    _run(old, (0, 1, 30.0), (1, 1, 30.0))
    new = RuleEngine(tag_config(), composites())
    for i in range(N):
        old.state.carry(i, new.state, i)
    new.carry_composites(old)
    assert (new.state.composite.vote == old.state.composite.vote).all()
    assert _composite(_run(new, (0, 2, 31.0))) == []
    assert _composite(_run(new, (0, 3, 5.0))) == [
        ("vote_group", 701, "VOTE", 0, 3, 1.0, 2.0),
        ("hazard_source", 31, "SOURCE", 0, 3, 1.0, 2.0),
    ]


def test_a_tag_out_of_service_counts_for_no_composite() -> None:
    engine = RuleEngine(tag_config(), composites(min_tags=(0, 1)))
    engine.seed(14, Condition.LOW, 1)  # tag 3 was at L when it was taken out of service
    assert _composite(_run(engine, (4, 1, 50.0))) == []  # group 702 (1oo2) and source 32 stay normal
    assert _composite(_run(engine, (4, 2, 12.0))) == [
        ("vote_group", 702, "VOTE", 1, 2, 1.0, 1.0),
        ("hazard_source", 32, "SOURCE", 1, 2, 1.0, 1.0),
    ]
