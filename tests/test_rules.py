"""The vectorized limit engine against a plain per-reading reference, on random streams."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.composite import CompositeConfig
from rules.engine import RuleEngine, TagConfig
from rules.types import Condition
from tests.reference_rules import CompositeReference, Reference

LIMITS = [  # ll, l, h, hh, deadband, range
    (10.0, 15.0, 85.0, 90.0, 2.0, (0.0, 100.0)),
    (math.nan, 0.2, 1.6, 1.77, 0.05, (0.0, 2.5)),
    (math.nan, math.nan, 25.0, 50.0, 1.0, (0.0, 100.0)),
]


DELAYS = [(0, 0), (3, 2), (5, 0)]  # on-delay, off-delay (in the tests' time unit)


def config(in_service: list[bool] | None = None, delays: list[tuple[int, int]] | None = None) -> TagConfig:
    n = len(LIMITS)
    col = list(zip(*LIMITS, strict=True))
    on_off = delays or [(0, 0)] * n
    return TagConfig(
        tag_id=np.arange(100, 100 + n, dtype=np.int64),
        ll=np.array(col[0]), l=np.array(col[1]), h=np.array(col[2]), hh=np.array(col[3]),
        deadband=np.array(col[4]),
        range_low=np.array([r[0] for r in col[5]]), range_high=np.array([r[1] for r in col[5]]),
        in_service=np.array(in_service or [True] * n),
        on_delay_ms=np.array([d[0] for d in on_off], dtype=np.int64),
        off_delay_ms=np.array([d[1] for d in on_off], dtype=np.int64),
    )  # fmt: skip


def agree_with_reference(cfg: TagConfig, batches: list[list[tuple[int, int, float, int]]],
                         ticks: list[int] | None = None, composites: CompositeConfig | None = None
                         ) -> None:  # fmt: skip
    """Batch by batch, the engine's transitions are the reference's, reading by reading (and its
    composites', source time by source time); after each batch the clock ticks (at the given times)
    when ``ticks`` are given."""
    engine, ref = RuleEngine(cfg, composites), Reference(cfg)
    composite_ref = CompositeReference(composites or CompositeConfig(), cfg.tag_id.tolist())
    for n, batch in enumerate(batches):
        if ticks is not None and n < len(ticks):
            got_tick = engine.tick(ticks[n])
            assert [(t.subject_id, str(t.condition), t.level, t.ts_ms) for t in got_tick] == ref.tick(
                ticks[n]
            )
        tag_changes = []
        for i, ts, value, q in sorted(batch, key=lambda r: (r[0], r[1])):
            tag_changes += ref.step(i, ts, value, q)
        expected = [("tag", *change) for change in tag_changes] + composite_ref.step(tag_changes)
        arr = np.array(batch, dtype=np.float64).reshape(-1, 4)
        got = engine.evaluate(
            arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64), arr[:, 2], arr[:, 3].astype(np.int16)
        )
        assert sorted(
            (str(t.subject), t.subject_id, str(t.condition), t.level, t.ts_ms) for t in got
        ) == sorted(expected)
        assert [t.ts_ms for t in got] == sorted(t.ts_ms for t in got)  # in time order


reading = st.tuples(
    st.integers(0, len(LIMITS) - 1),
    st.integers(0, 40),
    st.one_of(
        st.floats(-10, 110),
        st.sampled_from([math.nan, math.inf, -math.inf]),
        st.sampled_from([84.0, 85.0, 83.0, 89.99, 90.0, 88.0]),
    ),
    st.sampled_from([0, 0, 0, 0, 1, 2, 3]),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(reading, max_size=30), max_size=6), st.booleans())
def test_vectorized_engine_matches_reference(batches: list[list[tuple[int, int, float, int]]],
                                             with_delays: bool) -> None:  # fmt: skip
    agree_with_reference(config(delays=DELAYS if with_delays else None), batches)


def test_deadband_holds_the_alarm_until_the_value_moves_back() -> None:
    engine = RuleEngine(config())
    values = np.array([80.0, 85.0, 84.0, 83.5, 82.9])
    got = engine.evaluate(np.zeros(5, np.int64), np.arange(5, dtype=np.int64), values, np.zeros(5, np.int16))
    assert [(t.condition, t.level, t.ts_ms, t.limit) for t in got] == [
        (Condition.HIGH, 1, 1, 85.0),
        (Condition.HIGH, 0, 4, None),
    ]


def test_out_of_service_tags_are_not_evaluated() -> None:
    engine = RuleEngine(config(in_service=[False, True, True]))
    got = engine.evaluate(np.array([0]), np.array([1]), np.array([99.0]), np.array([0], np.int16))
    assert got == []


def test_seeded_state_suppresses_a_duplicate_raise() -> None:
    engine = RuleEngine(config())
    engine.seed(100, Condition.HIGH, 2)
    got = engine.evaluate(np.array([0]), np.array([1]), np.array([95.0]), np.array([0], np.int16))
    assert got == []


def delayed_tag_0() -> Callable[..., list[tuple[str, int, int]]]:
    """An engine whose tag 0 (H 85, HH 90) has a 60 s on-delay and a 30 s off-delay; the returned
    function evaluates (second, value) readings of tag 0 and gives (condition, level, second)."""
    engine = RuleEngine(config(delays=[(60_000, 30_000), (0, 0), (0, 0)]))
    s = 1000

    def run(*readings: tuple[int, float]) -> list[tuple[str, int, int]]:
        ts = np.array([t * s for t, _ in readings], dtype=np.int64)
        values = np.array([v for _, v in readings])
        got = engine.evaluate(
            np.zeros(len(readings), np.int64), ts, values, np.zeros(len(readings), np.int16)
        )
        return [(str(t.condition), t.level, t.ts_ms // s) for t in got]

    return run


def test_on_delay_ignores_a_fleeting_excursion_and_off_delay_holds_the_alarm() -> None:
    run = delayed_tag_0()
    assert run((0, 86.0), (30, 86.0), (40, 80.0)) == []  # above H for 40 s only: nothing
    assert run((50, 86.0), (100, 86.0), (110, 87.0)) == [("HIGH", 1, 110)]  # held 60 s: raised
    assert run((120, 80.0), (140, 86.0), (150, 80.0), (170, 80.0)) == []  # normal not held 30 s yet
    assert run((180, 80.0)) == [("HIGH", 0, 180)]  # normal since 150: cleared after the off-delay


def test_each_limit_has_its_own_delays_so_a_climb_from_h_to_hh_still_raises_h() -> None:
    """The overfill seen on a plant: above H 83 s, above HH 33 s of it, a 60 s on-delay: H at 60 s."""
    run = delayed_tag_0()
    assert run((0, 86.0), (25, 88.0), (50, 91.0), (59, 92.0)) == []  # H crossed at 0, HH at 50
    assert run((60, 92.0)) == [("HIGH", 1, 60)]  # H held 60 s, though HH came in between
    assert run((83, 80.0), (100, 80.0)) == []  # HH never held its 60 s; normal not held 30 s yet
    assert run((113, 80.0)) == [("HIGH", 0, 113)]
    # up to HH and back to H: HH holds for its off-delay, then H stays while the value is above H
    assert run((200, 95.0), (260, 95.0)) == [("HIGH", 2, 260)]
    assert run((270, 87.0), (290, 87.0)) == []
    assert run((300, 87.0)) == [("HIGH", 1, 300)]


def window_config() -> TagConfig:
    """Tag 0: ROC 20 per 5; tag 1: frozen within 0.5 for 6; tag 2: predicts H/HH within 8 from a 10 window."""
    base = config(delays=DELAYS)
    return replace(
        base,
        roc_limit=np.array([20.0, np.nan, np.nan]),
        roc_period_ms=np.array([5, 0, 0], dtype=np.int64),
        frozen_eps=np.array([0.0, 0.5, 0.0]),
        frozen_window_ms=np.array([0, 6, 0], dtype=np.int64),
        predict_window_ms=np.array([0, 0, 10], dtype=np.int64),
        predict_response_ms=np.array([0, 0, 8], dtype=np.int64),
    )


integer_reading = st.tuples(
    st.integers(0, len(LIMITS) - 1),
    st.integers(0, 40),
    st.one_of(st.integers(-5, 105).map(float), st.integers(0, 3).map(float), st.just(math.nan)),
    st.sampled_from([0, 0, 0, 0, 1, 3]),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(integer_reading, max_size=40), max_size=6))
def test_window_conditions_match_reference(batches: list[list[tuple[int, int, float, int]]]) -> None:
    agree_with_reference(window_config(), batches)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(reading, max_size=20), max_size=6), st.lists(st.integers(0, 60), max_size=6))
def test_stale_matches_reference(batches: list[list[tuple[int, int, float, int]]], ticks: list[int]) -> None:
    cfg = replace(config(in_service=[True, True, False]), stale_ms=np.array([5, 0, 5], dtype=np.int64))
    agree_with_reference(cfg, batches, sorted(ticks))


def test_a_silent_tag_goes_stale_on_the_clock_and_comes_back_with_a_reading() -> None:
    engine = RuleEngine(replace(config(), stale_ms=np.array([10_000, 0, 0], dtype=np.int64)))
    assert engine.tick(1_000) == []  # watching starts: a full period from now
    assert engine.tick(11_000) == []
    assert [(str(t.condition), t.level, t.ts_ms) for t in engine.tick(11_001)] == [("STALE", 1, 11_001)]
    assert engine.tick(60_000) == []  # raised once
    got = engine.evaluate(np.array([0]), np.array([59_000]), np.array([50.0]), np.array([3], np.int16))
    assert [(str(t.condition), t.level) for t in got if str(t.condition) == "STALE"] == [("STALE", 0)]


def _run(engine: RuleEngine, tag: int, points: list[tuple[int, float]]) -> list[tuple[str, int, int]]:
    n = len(points)
    got = engine.evaluate(np.full(n, tag, np.int64), np.array([t for t, _ in points], dtype=np.int64),
                          np.array([v for _, v in points]), np.zeros(n, np.int16))  # fmt: skip
    return [
        (str(t.condition), t.level, t.ts_ms) for t in got if str(t.condition) in ("ROC", "FROZEN", "PREDICT")
    ]


def test_rate_of_change_frozen_value_and_prediction() -> None:
    engine = RuleEngine(window_config())
    assert _run(engine, 0, [(0, 50.0), (2, 60.0), (4, 71.0)]) == [("ROC", 1, 4)]  # +21 within 5
    assert _run(engine, 0, [(20, 71.0), (30, 71.0)]) == [("ROC", 0, 20)]  # no move within 5: reset
    assert _run(engine, 1, [(0, 1.0), (3, 1.2), (6, 1.4)]) == [("FROZEN", 1, 6)]  # steps ≤ 0.5 for 6
    assert _run(engine, 1, [(7, 2.0)]) == [("FROZEN", 0, 7)]  # it moved
    # H 25 of tag 2: a steady climb of 2 per unit reaches it in fewer than 8 units, once the
    # readings span half the 10-unit window (five points over 4 units are not yet enough)
    climb = [(t, 5.0 + 2 * t) for t in range(0, 6)]
    assert _run(engine, 2, climb) == [("PREDICT", 1, 5)]
    assert _run(engine, 2, [(t, 15.0) for t in range(10, 22)])[-1] == ("PREDICT", 0, 11)


def test_a_covered_reading_holds_the_fault_level() -> None:
    """A reading another alarm stands for (its device does not answer) neither raises nor clears FAULT."""
    engine = RuleEngine(config())

    def run(t: int, value: float, quality: int, covered: bool) -> list[tuple[str, int]]:
        got = engine.evaluate(np.array([0]), np.array([t]), np.array([value]), np.array([quality], np.int16),
                              np.array([covered]))  # fmt: skip
        return [(str(x.condition), x.level) for x in got]

    assert run(1, math.nan, 3, True) == []  # covered: no FAULT
    assert run(2, 50.0, 0, False) == []  # back, nothing to clear
    assert run(3, math.nan, 5, False) == [("FAULT", 1)]  # the transmitter itself failed
    assert run(4, math.nan, 3, True) == []  # then the device went: the FAULT holds
    assert run(5, 50.0, 0, False) == [("FAULT", 0)]
