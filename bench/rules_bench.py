"""Rule engine throughput for a realistic rule mix (limits with deadband and delays, rate of
change, frozen value, predictive; composites: 2oo3 voting groups and hazard-source warnings): the
vectorized engine against the per-reading reference and a bare numpy pass over the same arrays
(the memory-speed bound), measured in the same run. The reference has no composites: the ratio to
it is taken without them, and the composites' cost is printed on its own. The reference is timed
over the same readings as the engine, from the same empty state: its cost per reading grows as its
windows fill, so timing it over the first batches alone would understate the ratio.

    .venv/bin/python -m bench.rules_bench [--tags 5000] [--batch 50000] [--batches 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rules.composite import DEFAULT_SOURCE_CONDITIONS, TAG_CONDITIONS, CompositeConfig
from rules.engine import RuleEngine, TagConfig
from tests.reference_rules import Reference


def make_config(n: int, rng: np.random.Generator) -> TagConfig:
    low = np.zeros(n)
    high = np.full(n, 100.0)
    return TagConfig(
        tag_id=np.arange(1, n + 1, dtype=np.int64),
        ll=np.full(n, 10.0), l=np.full(n, 15.0), h=np.full(n, 85.0), hh=np.full(n, 90.0),
        deadband=np.full(n, 2.0), range_low=low, range_high=high,
        in_service=rng.random(n) > 0.01,
        # a realistic mix: delays everywhere, ROC on a fifth, frozen on a third, predictive on a tenth
        on_delay_ms=np.full(n, 15_000, np.int64), off_delay_ms=np.full(n, 15_000, np.int64),
        roc_limit=np.where(rng.random(n) < 0.2, 10.0, np.nan), roc_period_ms=np.full(n, 60_000, np.int64),
        frozen_eps=np.full(n, 0.01), frozen_window_ms=np.where(rng.random(n) < 0.33, 600_000, 0),
        predict_window_ms=np.full(n, 120_000, np.int64),
        predict_response_ms=np.where(rng.random(n) < 0.1, 300_000, 0),
    )  # fmt: skip


def make_composites(n: int) -> CompositeConfig:
    """A 2oo3 voting group for every tenth run of three tags; a hazard source per 50 tags, warning on 2."""
    starts = np.arange(0, n - 2, 30)
    sources = (n + 49) // 50
    counted = [c in DEFAULT_SOURCE_CONDITIONS for c in TAG_CONDITIONS]
    return CompositeConfig(
        vote_id=np.arange(1, starts.size + 1, dtype=np.int64), vote_k=np.full(starts.size, 2, np.int64),
        vote_low=np.zeros(starts.size, bool), member_group=np.repeat(np.arange(starts.size), 3),
        member_tag=(starts[:, None] + np.arange(3)).ravel().astype(np.int64),
        source_id=np.arange(1, sources + 1, dtype=np.int64), source_min_tags=np.full(sources, 2, np.int64),
        source_conditions=np.tile(counted, (sources, 1)), tag_source=np.arange(n, dtype=np.int64) // 50,
    )  # fmt: skip


def make_batches(n_tags: int, batch: int, batches: int, rng: np.random.Generator
                 ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:  # fmt: skip
    level = rng.uniform(20, 80, n_tags)
    out = []
    t0 = 1_700_000_000_000
    per_tag = max(batch // n_tags, 1)
    for b in range(batches):
        idx = np.tile(np.arange(n_tags, dtype=np.int64), per_tag)[:batch]
        step = np.repeat(np.arange(per_tag), n_tags)[:batch]
        ts = t0 + (b * per_tag + step) * 1000
        level = np.clip(level + rng.normal(0, 3, n_tags), 0, 100)
        values = level[idx] + rng.normal(0, 1.5, idx.size)
        quality = np.where(rng.random(idx.size) < 0.001, 3, 0).astype(np.int16)
        out.append((idx, ts.astype(np.int64), values, quality))
    return out


def bare_pass(cfg: TagConfig, idx: np.ndarray, values: np.ndarray) -> int:
    """What any evaluation must at least do: gather the limits and compare, once."""
    above = (
        (values >= cfg.h[idx]) | (values >= cfg.hh[idx]) | (values <= cfg.l[idx]) | (values <= cfg.ll[idx])
    )
    return int(np.count_nonzero(above))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tags", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument(
        "--reference-batches", type=int, default=None,
        help="time the reference over only the first K batches (quicker, but its windows are not full "
        "yet, so it is cheaper per reading than in the steady state; default: all, as the engine)",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, help="runs of each engine; the best counts")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(7)
    cfg = make_config(args.tags, rng)
    data = make_batches(args.tags, args.batch, args.batches, rng)
    readings = sum(b[0].size for b in data)

    composites = make_composites(args.tags)
    seconds = {"plain": float("inf"), "composites": float("inf")}
    raised = {"plain": 0, "composites": 0}
    for _ in range(args.repeats):  # alternately, the best of each: the machine is shared
        for name, engine in (("plain", RuleEngine(cfg)), ("composites", RuleEngine(cfg, composites))):
            start = time.perf_counter()
            raised[name] = sum(len(engine.evaluate(*b)) for b in data)
            seconds[name] = min(seconds[name], time.perf_counter() - start)
    transitions, all_transitions = raised["plain"], raised["composites"]
    engine_rate, composite_rate = readings / seconds["plain"], readings / seconds["composites"]

    start = time.perf_counter()
    for idx, _ts, values, _q in data:
        bare_pass(cfg, idx, values)
    bare_rate = readings / (time.perf_counter() - start)

    ref = Reference(cfg)
    ref_data = data if args.reference_batches is None else data[: args.reference_batches]
    ref_readings = sum(b[0].size for b in ref_data)
    start = time.perf_counter()
    for idx, ts, values, quality in ref_data:
        order = np.lexsort((ts, idx))
        for i, t, v, q in zip(idx[order].tolist(), ts[order].tolist(), values[order].tolist(),
                              quality[order].tolist(), strict=True):  # fmt: skip
            ref.step(i, t, v, q)
    ref_rate = ref_readings / (time.perf_counter() - start)

    print(f"rule engine: {args.tags} tags, {readings} readings, batches of {args.batch}")
    print(f"  transitions raised  {transitions:>14,}")
    print(f"  vectorized engine   {engine_rate:>14,.0f} readings/s")
    print(
        f"  + composites        {composite_rate:>14,.0f} readings/s   {composites.groups} 2oo3 groups, "
        f"{composites.sources} hazard sources: {all_transitions - transitions:,} more transitions, "
        f"{(engine_rate / composite_rate - 1) * 100:+.1f} % time"
    )
    print(
        f"  per-reading ref.    {ref_rate:>14,.0f} readings/s   engine/ref  = {engine_rate / ref_rate:6.1f}x"
        f"   (over {ref_readings:,} readings)"
    )
    print(
        f"  bare numpy pass     {bare_rate:>14,.0f} readings/s   engine/bare = {engine_rate / bare_rate:6.3f}"
    )


if __name__ == "__main__":
    main()
