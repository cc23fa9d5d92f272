"""Chatter protection of FAULT, ROC, FROZEN, PREDICT and STALE: the engine against the reference
with the new settings, and each protection against the nuisance it stops."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.engine import RuleEngine, TagConfig
from tests.test_rules import DELAYS, LIMITS, agree_with_reference, config, integer_reading, window_config

I64 = np.int64


def protected(cfg: TagConfig) -> TagConfig:
    """Per tag a different mix of hysteresis and delays (in the tests' time unit)."""
    return replace(
        cfg,
        fault_margin=np.array([1.0, 0.05, 0.0]),
        fault_on_delay_ms=np.array([2, 0, 4], I64), fault_off_delay_ms=np.array([5, 3, 0], I64),
        roc_deadband=np.array([4.0, 0.0, 1.0]),
        roc_on_delay_ms=np.array([2, 0, 1], I64), roc_off_delay_ms=np.array([6, 0, 3], I64),
        frozen_on_delay_ms=np.array([0, 2, 0], I64), frozen_off_delay_ms=np.array([0, 5, 0], I64),
        predict_on_delay_ms=np.array([0, 0, 3], I64), predict_off_delay_ms=np.array([0, 0, 7], I64),
        stale_on_delay_ms=np.array([3, 0, 0], I64), stale_off_delay_ms=np.array([4, 0, 6], I64),
    )  # fmt: skip


edge_reading = st.tuples(  # values about NE 43's band edges of tag 0 (-1.25 … 103.125) and tag 1
    st.integers(0, len(LIMITS) - 1),
    st.integers(0, 40),
    st.one_of(
        st.floats(-10, 110),
        st.sampled_from([-1.3, -1.25, -1.0, 0.0, 1.0, 103.2, 103.125, 102.0, 2.6, 2.55, 2.5, -0.04]),
        st.just(math.nan),
    ),
    st.sampled_from([0, 0, 0, 1, 2, 3, 5]),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(edge_reading, max_size=30), max_size=6), st.booleans())
def test_fault_hysteresis_and_delays_match_reference(batches: list[list[tuple[int, int, float, int]]],
                                                     with_delays: bool) -> None:  # fmt: skip
    agree_with_reference(protected(config(delays=DELAYS if with_delays else None)), batches)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(integer_reading, max_size=40), max_size=6))
def test_window_conditions_with_delays_match_reference(
    batches: list[list[tuple[int, int, float, int]]],
) -> None:
    agree_with_reference(protected(window_config()), batches)


@st.composite
def trends(draw: st.DrawFn) -> list[list[tuple[int, int, float, int]]]:
    """Tag 2 (H 25, HH 50; predicting within 8 from a 10 window): a line with integer noise, maybe a
    step, cut into batches — the readings where predictions happen, and where steps fool a fit."""
    times = np.cumsum(draw(st.lists(st.integers(1, 3), min_size=12, max_size=40))).tolist()
    slope = draw(st.sampled_from([1, 2, 3, 0, -2]))
    start = draw(st.integers(-10, 30))
    step_at, step = draw(st.integers(0, 60)), draw(st.sampled_from([0, 0, 15, -15, 30]))
    noise = draw(st.lists(st.integers(-2, 2), min_size=len(times), max_size=len(times)))
    readings = [(2, t, float(start + slope * t + (step if t >= step_at else 0) + e), 0)
                for t, e in zip(times, noise, strict=True)]  # fmt: skip
    cuts = sorted(draw(st.lists(st.integers(0, len(readings)), max_size=4)))
    return [readings[a:b] for a, b in zip([0, *cuts], [*cuts, len(readings)], strict=True)]


@settings(max_examples=400, deadline=None)
@given(trends(), st.booleans())
def test_predictions_on_trends_and_steps_match_reference(batches: list[list[tuple[int, int, float, int]]],
                                                         with_delays: bool) -> None:  # fmt: skip
    cfg = window_config()
    agree_with_reference(protected(cfg) if with_delays else cfg, batches)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(edge_reading, max_size=20), max_size=6), st.lists(st.integers(0, 60), max_size=6))
def test_stale_delays_match_reference(
    batches: list[list[tuple[int, int, float, int]]], ticks: list[int]
) -> None:
    cfg = replace(protected(config(in_service=[True, True, False])), stale_ms=np.array([5, 0, 5], I64))
    agree_with_reference(cfg, batches, sorted(ticks))


# --------------------------------------------------------------------------- each protection's nuisance

S = 1000


def _engine(**settings_: object) -> RuleEngine:
    """Tag 0 (range 0-100: NE 43 band -1.25 … 103.125; H 85, HH 90, L 15, LL 10) with the given
    settings; every other setting off."""
    return RuleEngine(replace(config(), **settings_))  # type: ignore[arg-type]


def _feed(
    engine: RuleEngine, readings: Sequence[tuple[float, float, int]], condition: str
) -> list[tuple[int, float]]:
    """Readings (second, value, quality) of tag 0 one per batch; the (level, second) of ``condition``."""
    got = []
    for t, v, q in readings:
        for x in engine.evaluate(
            np.array([0]), np.array([round(t * S)]), np.array([v]), np.array([q], np.int16)
        ):
            if str(x.condition) == condition:
                got.append((x.level, x.ts_ms / S))
    return got


def test_a_transmitter_dithering_at_the_band_edge_raises_fault_once() -> None:
    """The issue's level transmitter: under NE 43's band and back on a noisy signal, several times a
    second for 47 s (108 raises and clears without protection), then well inside again."""
    rng = np.random.default_rng(7)
    dither = [(t / 5, float(-1.25 + rng.normal(0, 0.2)), 0) for t in range(235)]
    recovered = [(47 + t / 5, 20.0, 0) for t in range(100)]
    bare = _feed(_engine(), dither + recovered, "FAULT")
    assert sum(level for level, _ in bare) > 20  # the nuisance, without protection
    guarded = _feed(
        _engine(fault_margin=np.array([0.5, 0, 0]), fault_on_delay_ms=np.array([2 * S, 0, 0], I64),
                fault_off_delay_ms=np.array([10 * S, 0, 0], I64)),
        dither + recovered, "FAULT",
    )  # fmt: skip
    assert [level for level, _ in guarded] == [1, 0]
    assert guarded[1][1] == 57.0  # cleared 10 s after the value came back inside


def test_fault_needs_its_on_delay_and_a_bad_reading_restarts_the_off_delay() -> None:
    engine = _engine(
        fault_on_delay_ms=np.array([2 * S, 0, 0], I64), fault_off_delay_ms=np.array([10 * S, 0, 0], I64)
    )
    assert _feed(engine, [(0, math.nan, 5), (1, 50.0, 0), (2, math.nan, 5), (3, math.nan, 5)], "FAULT") == []
    assert _feed(engine, [(4, math.nan, 5)], "FAULT") == [(1, 4.0)]  # bad since 2: held 2 s
    assert (
        _feed(engine, [(5, 50.0, 0), (10, 50.0, 0), (12, math.nan, 5), (13, 50.0, 0), (22, 50.0, 0)], "FAULT")
        == []
    )
    assert _feed(engine, [(23, 50.0, 0)], "FAULT") == [(0, 23.0)]  # good for 10 s since 13


PREDICTING = {  # tag 0 like LT101: predicts H/HH (L/LL falling) within 600 s from a 120 s window
    "predict_window_ms": np.array([120 * S, 0, 0], I64),
    "predict_response_ms": np.array([600 * S, 0, 0], I64),
}


def _level_run(*segments: tuple[float, float, float]) -> list[tuple[float, float, int]]:
    """Readings at 1 Hz over segments (seconds, from, to), with a little seeded noise."""
    rng = np.random.default_rng(3)
    out, t = [], 0.0
    for seconds, a, b in segments:
        for k in range(int(seconds)):
            out.append((t, a + (b - a) * k / seconds + float(rng.normal(0, 0.05)), 0))
            t += 1
    return out


def test_a_step_back_to_normal_is_not_a_trend() -> None:
    """The sample plant after the overfill: 93 % for a minute, then back to 50 % at once. The fit
    through the step heads for L; without the step test that warned ("64.82 % / 15 %")."""
    run = _level_run((200, 50, 50), (65, 93, 93), (300, 50, 50))
    step_as_trend = _feed(_engine(**PREDICTING, predict_half_share=np.full(3, np.nan)), run, "PREDICT")
    # the nuisance: on the step up (heading for HH) and, several times, on the step back (for L)
    assert [t for level, t in step_as_trend if level == 1 and t >= 265]
    assert _feed(_engine(**PREDICTING), run, "PREDICT") == []


def test_a_real_trend_still_warns_ahead_of_the_limit() -> None:
    """A climb of 0.3 %/s from 50 %: warned well before H (85 %) is reached at 117 s."""
    got = _feed(_engine(**PREDICTING, predict_on_delay_ms=np.array([15 * S, 0, 0], I64)),
                _level_run((120, 50, 50), (110, 50, 83)), "PREDICT")  # fmt: skip
    assert got
    assert got[0][0] == 1
    assert 120 + 60 < got[0][1] < 120 + 110


def test_a_prediction_that_stops_clears_only_after_its_off_delay() -> None:
    engine = _engine(**PREDICTING, predict_off_delay_ms=np.array([60 * S, 0, 0], I64))
    climb = _level_run((120, 50, 50), (110, 50, 83))
    raised = _feed(engine, climb, "PREDICT")
    assert raised
    assert raised[0][0] == 1
    # the level stops and holds at 83 %: the prediction goes within seconds, the warning 60 s later
    held_at: list[tuple[float, float, int]] = [
        (230 + k, 83.0 + (0.05 if k % 2 else 0.0), 0) for k in range(300)
    ]
    got = _feed(engine, held_at, "PREDICT")
    assert len(got) == 1
    assert got[0][0] == 0
    stopped = got[0][1] - 60  # the last reading that still predicted, plus one
    assert 230 <= stopped < 330
    without = _feed(_engine(**PREDICTING), climb + held_at, "PREDICT")
    assert without[-1][0] == 0
    assert without[-1][1] == stopped


def test_rate_of_change_ignores_a_spike_and_holds_for_its_off_delay() -> None:
    roc = {"roc_limit": np.array([10.0, np.nan, np.nan]), "roc_period_ms": np.array([60 * S, 0, 0], I64)}
    spike = [(t, 50.0, 0) for t in range(30)] + [(30, 75.0, 0)] + [(t, 50.0, 0) for t in range(31, 60)]
    assert [level for level, _ in _feed(_engine(**roc), spike, "ROC")] == [1, 0]  # bare: a spike alarms
    guarded = {
        **roc,
        "roc_on_delay_ms": np.array([5 * S, 0, 0], I64),
        "roc_off_delay_ms": np.array([30 * S, 0, 0], I64),
    }
    assert _feed(_engine(**guarded), spike, "ROC") == []
    step = (
        [(t, 50.0, 0) for t in range(30)]
        + [(t, 50.0 + 2 * (t - 30), 0) for t in range(30, 40)]
        + [(t, 70.0, 0) for t in range(40, 200)]
    )
    # +10 within 60 s from 35 on, held 5 s; below 10 - deadband (2) from 97 on, held 30 s
    assert _feed(_engine(**guarded), step, "ROC") == [(1, 40.0), (0, 127.0)]


def test_frozen_clears_only_after_its_off_delay() -> None:
    frozen = {
        "frozen_window_ms": np.array([10 * S, 0, 0], I64),
        "frozen_off_delay_ms": np.array([20 * S, 0, 0], I64),
    }
    stuck_then_jitter = (
        [(t, 50.0, 0) for t in range(15)] + [(15, 51.0, 0)] + [(t, 50.0 + t % 2, 0) for t in range(16, 60)]
    )
    assert _feed(_engine(**frozen), stuck_then_jitter, "FROZEN") == [(1, 10.0), (0, 35.0)]


def test_stale_clears_once_the_tag_has_been_heard_for_its_off_delay() -> None:
    engine = _engine(stale_ms=np.array([10 * S, 0, 0], I64), stale_off_delay_ms=np.array([30 * S, 0, 0], I64))
    assert engine.tick(0) == []
    assert [(t.level, t.ts_ms) for t in engine.tick(11 * S)] == [(1, 11 * S)]
    assert _feed(engine, [(20, 50.0, 0), (35, 50.0, 0)], "STALE") == []  # a gap of 15 s: silent again
    assert _feed(engine, [(t, 50.0, 0) for t in range(40, 61, 5)], "STALE") == []  # heard since 35 only
    assert _feed(engine, [(65, 50.0, 0)], "STALE") == [(0, 65.0)]
