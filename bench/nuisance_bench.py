"""Nuisance alarms on normal operation and noisy signals: the real rule engine with its chatter
protection, against the same signals with the protection turned off, measured in the same run.

Two feeds go through ``rules.engine.RuleEngine`` built from the sample plant's settings as the
ledger sync stores them and the tag index loads them:

- the sample plant (``devices.yaml``) in normal operation (``simulators.process.PlantModel``),
  every tag read once a second, for ``--hours``;
- a noisy-signal generator: level-like tags (0-100 %, L 15 / H 85, LT101's prediction, ROC and
  frozen windows, Modbus STALE) carrying white noise, 1/f noise, single-reading spikes, a value
  at its limit, a transmitter dithering at the NE 43 band's edge, and scripted faults (an
  excursion stepping back to normal, a real trend, a failed, a frozen and a silent transmitter).

Printed: alarms (activations: a condition going from normal to active) per hour per condition,
the chattering ones (ISA-18.2: 3 or more activations of one alarm within 60 s), alarms per 10
minutes per operator position (an enterprise) on the normal plant, and each scripted fault's
detection delay. "Off" is the same engine with the new protection zeroed: FAULT, ROC, FROZEN,
PREDICT and STALE delays 0, no FAULT margin, ROC's deadband the tag's, no step test for PREDICT
(limits keep their deadband and delays in both).

    .venv/bin/python -m bench.nuisance_bench [--hours 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from hazardwatch.ledger import Plant, load_plant
from hazardwatch.ledger.models import FrozenValue, RateOfChange
from ingest.plantconfig import poll_interval_s, tag_config
from rules.engine import RuleEngine, TagConfig
from rules.types import Transition
from simulators.process import PlantModel
from tests.support import SAMPLE_DEVICES

S = 1000
T0 = 1_796_061_600_000
BATCH_S = 10  # seconds of readings per engine call (ingest evaluates each MQTT batch)
CHATTER_N, CHATTER_S = 3, 60
F64 = npt.NDArray[np.float64]
Batch = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], F64, npt.NDArray[np.int16]]


def unprotected(cfg: TagConfig) -> TagConfig:
    """The same configuration without the chatter protection of FAULT, ROC, FROZEN, PREDICT, STALE."""
    zero = np.zeros(cfg.size, np.int64)
    delays = {name: zero for name in cfg.DELAYS if name not in ("on_delay_ms", "off_delay_ms")}
    return replace(cfg, **delays, fault_margin=np.zeros(cfg.size), roc_deadband=cfg.deadband.copy(),  # type: ignore[arg-type]
                   predict_half_share=np.full(cfg.size, math.nan))  # fmt: skip


# --------------------------------------------------------------------------- the noisy signals


@dataclass(frozen=True, slots=True)
class Fault:
    """A scripted fault: the tag, the condition it must raise, and from when (seconds)."""

    name: str
    tag: str
    condition: str
    at_s: float


def pink(n: int, rng: np.random.Generator) -> F64:
    """1/f noise of unit standard deviation (white noise shaped by 1/sqrt(f) in frequency)."""
    spectrum = np.fft.rfft(rng.normal(size=n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    out = np.fft.irfft(spectrum / np.sqrt(f), n)
    scaled: F64 = (out - out.mean()) / out.std()
    return scaled


def noisy_signals(
    seconds: int, rng: np.random.Generator
) -> tuple[dict[str, F64], dict[str, F64], list[Fault]]:
    """Per synthetic tag: values per second (NaN: bad quality), a mask of seconds it is silent,
    and the scripted faults."""
    t = np.arange(seconds, dtype=np.float64)
    quiet = np.zeros(seconds)
    base = 50.0
    sig: dict[str, F64] = {
        "NX-WHITE": base + rng.normal(0, 1.0, seconds),
        "NX-PINK": base + 3.0 * pink(seconds, rng),
    }
    spikes = base + rng.normal(0, 0.5, seconds)
    spikes[rng.choice(seconds, seconds // 600, replace=False)] += 25.0  # a spike every 10 min
    sig["NX-SPIKE"] = spikes
    # a transmitter dithering at the bottom of NE 43's band (-1.25 % of span), on and off through
    # the hour: a real instrument fault
    dither = base + rng.normal(0, 0.5, seconds)
    edge = (t % 3600 >= 600) & (t % 3600 < 1200)
    dither[edge] = -1.25 + rng.normal(0, 0.2, int(edge.sum()))
    sig["NX-EDGE"] = dither
    # a value sitting at its H limit (85 %) with noise: one H alarm while it sits there
    at_limit = base + rng.normal(0, 0.5, seconds)
    hold = (t % 3600 >= 1800) & (t % 3600 < 2700)
    at_limit[hold] = 85.0 + rng.normal(0, 0.6, int(hold.sum()))
    sig["NX-ATLIMIT"] = at_limit
    faults: list[Fault] = []
    # scripted faults, once an hour each, at their own minute
    step = base + rng.normal(0, 0.3, seconds)
    trend = base + rng.normal(0, 0.3, seconds)
    failed = base + rng.normal(0, 0.3, seconds)
    frozen = base + rng.normal(0, 0.3, seconds)
    silent = base + rng.normal(0, 0.3, seconds)
    silence = np.zeros(seconds, bool)
    for hour in range(0, seconds, 3600):
        a = hour + 300  # an overfill that steps back to normal: H/HH, never a PREDICT on the way back
        step[a : a + 10] = np.linspace(base, 93.0, 10)
        step[a + 10 : a + 90] = 93.0 + rng.normal(0, 0.3, 80)
        faults.append(Fault("excursion to 93 % (H/HH)", "NX-STEP", "HIGH", a))
        b = hour + 900  # a slow real climb of 0.3 %/s toward H: 预警 first, then H
        climb = np.minimum(base + 0.3 * np.arange(3600 - 900), 88.0)[:240]
        trend[b : b + 240] = climb + rng.normal(0, 0.3, 240)
        trend[b + 240 : b + 480] = 88.0 + rng.normal(0, 0.3, 240)
        faults += [Fault("slow climb 0.3 %/s (预警)", "NX-TREND", "PREDICT", b),
                   Fault("slow climb 0.3 %/s reaches H", "NX-TREND", "HIGH", b)]  # fmt: skip
        c = hour + 1500  # a failed transmitter (bad quality) for 60 s
        failed[c : c + 60] = math.nan
        faults.append(Fault("failed transmitter (bad quality)", "NX-FAILED", "FAULT", c))
        d = hour + 2000  # a transmitter stuck at one value for 20 min (frozen window 10 min)
        frozen[d : d + 1200] = frozen[d]
        faults.append(Fault("stuck transmitter", "NX-FROZEN", "FROZEN", d))
        e = hour + 3000  # a transmitter that goes silent for 60 s
        silence[e : e + 60] = True
        faults.append(Fault("silent transmitter", "NX-SILENT", "STALE", e))
        faults.append(Fault("dithering at the NE 43 band edge", "NX-EDGE", "FAULT", hour + 600))
        faults.append(Fault("a value at its H limit", "NX-ATLIMIT", "HIGH", hour + 1800))
    sig.update({"NX-STEP": step, "NX-TREND": trend, "NX-FAILED": failed, "NX-FROZEN": frozen,
                "NX-SILENT": silent})  # fmt: skip
    gaps = {name: quiet.astype(bool) for name in sig}
    gaps["NX-SILENT"] = silence
    return sig, {k: v.astype(np.float64) for k, v in gaps.items()}, [f for f in faults if f.at_s < seconds]


# --------------------------------------------------------------------------- running and counting


@dataclass
class Tally:
    activations: list[tuple[int, str, int]]  # (tag index, condition, second)
    seconds: int

    def per_hour(self, tags: set[int] | None = None) -> defaultdict[str, float]:
        counts: Counter[str] = Counter(c for i, c, _ in self.activations if tags is None or i in tags)
        hours = self.seconds / 3600
        return defaultdict(float, {c: n / hours for c, n in counts.items()})

    def chattering(self, tags: set[int] | None = None) -> tuple[int, int]:
        """(alarms that chattered, activations inside a chattering burst): ≥ 3 within 60 s."""
        by_source: dict[tuple[int, str], list[int]] = defaultdict(list)
        for i, c, s in self.activations:
            if tags is None or i in tags:
                by_source[(i, c)].append(s)
        sources = bursts = 0
        for times in by_source.values():
            hot = {
                j
                for j in range(len(times) - CHATTER_N + 1)
                if times[j + CHATTER_N - 1] - times[j] < CHATTER_S
            }
            sources += bool(hot)
            bursts += len({k for j in hot for k in range(j, j + CHATTER_N)})
        return sources, bursts


def run(cfg: TagConfig, feed: list[Batch], seconds: int) -> tuple[Tally, float]:
    engine = RuleEngine(cfg)
    index = {int(t): i for i, t in enumerate(cfg.tag_id)}
    levels: dict[tuple[int, str], int] = {}
    activations: list[tuple[int, str, int]] = []
    started = time.perf_counter()
    for idx, ts, values, quality in feed:
        got: list[Transition] = engine.evaluate(idx, ts, values, quality)
        got += engine.tick(int(ts.max()))
        for x in got:
            key = (index[x.subject_id], str(x.condition))
            if x.level > 0 and levels.get(key, 0) == 0:
                activations.append((key[0], key[1], (x.ts_ms - T0) // S))
            levels[key] = x.level
    return Tally(activations, seconds), time.perf_counter() - started


def batches(values: F64, silent: npt.NDArray[np.bool_]) -> list[Batch]:
    """Readings (tags × seconds) cut into batches of BATCH_S seconds; NaN reads bad quality."""
    seconds = values.shape[1]
    out = []
    for start in range(0, seconds, BATCH_S):
        v = values[:, start : start + BATCH_S]
        keep = ~silent[:, start : start + BATCH_S]
        idx, sec = np.nonzero(keep)
        vals = v[idx, sec]
        quality = np.where(np.isnan(vals), 2, 0).astype(np.int16)
        out.append((idx.astype(np.int64), T0 + (start + sec).astype(np.int64) * S, vals, quality))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    seconds = int(args.hours * 3600)
    plant: Plant = load_plant(SAMPLE_DEVICES)
    rng = np.random.default_rng(args.seed)

    # the sample plant, normal operation
    model = PlantModel(plant, seed=args.seed)
    rows = [(e.code, tag, poll_interval_s(plant, tag)) for e, _, _, tag in plant.iter_tags()]
    plant_values = np.empty((len(rows), seconds))
    for s in range(seconds):
        model.step(1.0)
        plant_values[:, s] = [model.reading(e, tag.code).value for e, tag, _ in rows]
    lt101 = next(tag for _, tag, _ in rows if tag.code == "LT101")
    signals, gaps, faults = noisy_signals(seconds, rng)
    codes = list(signals)
    # like LT101 (level 0-100 %, L 15 / H 85, its prediction, Modbus STALE), ROC, a 10 min frozen window
    noisy = [lt101.model_copy(update={"code": code, "roc": RateOfChange(limit=10.0, period_s=60),
                                      "frozen": FrozenValue(window_s=600)}) for code in codes]  # fmt: skip
    tags = [tag for _, tag, _ in rows] + noisy
    polls = [p for _, _, p in rows] + [1.0] * len(noisy)
    cfg = tag_config(tags, polls, list(range(1, len(tags) + 1)))
    n_plant = len(rows)
    silent = np.vstack([np.zeros_like(plant_values, bool), np.vstack([gaps[c] for c in codes]).astype(bool)])
    feed = batches(np.vstack([plant_values, np.vstack([signals[c] for c in codes])]), silent)
    readings = sum(b[0].size for b in feed)
    plant_tags, noisy_tags = set(range(n_plant)), set(range(n_plant, len(tags)))
    positions = {
        e.code: {i for i, (code, _, _) in enumerate(rows) if code == e.code} for e in plant.enterprises
    }

    print(f"nuisance: the sample plant ({n_plant} tags, normal) and {len(noisy)} noisy-signal tags, "
          f"{args.hours:g} h at 1 s, seed {args.seed}: {readings:,} readings")  # fmt: skip
    results = {}
    for label, config in (("protected", cfg), ("off", unprotected(cfg))):
        tally, took = run(config, feed, seconds)
        results[label] = tally
        print(f"  {label:<9} evaluated in {took:.2f} s ({readings / took:,.0f} readings/s)")
    conditions = sorted({c for t in results.values() for _, c, _ in t.activations})
    for what, subset in (("normal plant", plant_tags), ("noisy signals", noisy_tags)):
        print(f"\n{what}: alarms per hour by condition       protected      off")
        for c in conditions:
            a, b = results["protected"].per_hour(subset)[c], results["off"].per_hour(subset)[c]
            if a or b:
                print(f"  {c:<36} {a:>12.1f} {b:>8.1f}")
        (sa, ba), (so, bo) = results["protected"].chattering(subset), results["off"].chattering(subset)
        print(f"  {'chattering alarms (≥3 in 60 s)':<36} {sa:>12} {so:>8}")
        print(f"  {'activations in chattering bursts':<36} {ba:>12} {bo:>8}")
    print("\nnoisy signals by tag: alarms per hour, protected (off)")
    for n, code in enumerate(codes):
        per = [results[label].per_hour({n_plant + n}) for label in ("protected", "off")]
        shown = ", ".join(
            f"{c} {per[0][c]:.0f} ({per[1][c]:.0f})" for c in conditions if per[0][c] or per[1][c]
        )
        print(f"  {code:<11} {shown}")
    print("\nnormal plant: alarms per 10 min per operator position (target ≤ 1)")
    for code, subset in positions.items():
        on = sum(results["protected"].per_hour(subset).values()) / 6
        off = sum(results["off"].per_hour(subset).values()) / 6
        print(f"  {code:<36} {on:>12.2f} {off:>8.2f}")
    print("\nscripted faults: detection delay (s), protected / off")
    missed = 0
    for fault in faults:
        i = n_plant + codes.index(fault.tag)
        delays = []
        for label in ("protected", "off"):
            hits = [
                s
                for j, c, s in results[label].activations
                if j == i and c == fault.condition and s >= fault.at_s
            ]
            delays.append(hits[0] - fault.at_s if hits and hits[0] - fault.at_s < 900 else None)
        missed += delays[0] is None
        shown = " / ".join("missed" if d is None else f"{d:.0f}" for d in delays)
        print(f"  {fault.at_s / 60:>6.0f} min  {fault.name:<36} {fault.tag:<11} {fault.condition:<8} {shown}")
    print(f"  detected {len(faults) - missed} of {len(faults)} with the protection")


if __name__ == "__main__":
    main()
