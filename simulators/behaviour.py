"""Normal operation of one simulated tag: a band inside its limits, a slow trend and correlated noise.

Every tag's normal band lies strictly inside its effective limits (the highest of L/LL below,
the lowest of H/HH above, the measuring range where a side has no limit), and every value is
clamped to that band, so normal operation never crosses a limit, noise included.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from hazardwatch.ledger import Tag, TagKind


@dataclass(frozen=True, slots=True)
class Profile:
    """How a kind of tag behaves, as shares of the gap between its effective limits."""

    center: float  # centre of the normal band
    half: float  # half width of the normal band
    own: float  # standard deviation of the tag's own noise, as a share of the half width
    shared: float  # weight of the equipment's common driver, as a share of the half width
    tau_s: float  # correlation time of the tag's own noise
    center_open: float | None = None  # centre when no L/LL limit bounds the band from below


PROFILES: dict[TagKind, Profile] = {
    # Levels: a slow fill and empty between 30 % and 75 % of the gap (see TagProcess).
    TagKind.LEVEL: Profile(center=0.525, half=0.225, own=0.03, shared=0.0, tau_s=20.0),
    # Vessels with only high limits run at ambient: about two thirds of the way up to H.
    TagKind.TEMPERATURE: Profile(center=0.5, half=0.12, own=0.25, shared=0.5, tau_s=60.0, center_open=0.68),
    TagKind.PRESSURE: Profile(center=0.5, half=0.12, own=0.2, shared=0.5, tau_s=30.0, center_open=0.68),
    TagKind.FLOW: Profile(center=0.5, half=0.15, own=0.35, shared=0.0, tau_s=8.0),
    # Gas detectors read close to zero, never exactly zero (a flat zero would look frozen).
    TagKind.GAS_COMBUSTIBLE: Profile(center=0.06, half=0.045, own=0.35, shared=0.0, tau_s=15.0),
    TagKind.GAS_TOXIC: Profile(center=0.06, half=0.045, own=0.35, shared=0.0, tau_s=15.0),
    TagKind.VALVE_POSITION: Profile(center=0.5, half=0.15, own=0.2, shared=0.0, tau_s=30.0),
    TagKind.HUMIDITY: Profile(center=0.6, half=0.12, own=0.3, shared=0.0, tau_s=120.0),
    TagKind.WIND_SPEED: Profile(center=0.2, half=0.15, own=0.45, shared=0.0, tau_s=5.0),
    TagKind.OTHER: Profile(center=0.5, half=0.1, own=0.3, shared=0.0, tau_s=30.0),
}

SHARED_TAU_S = 300.0
"""Correlation time of an equipment's common driver (temperature and pressure move together)."""


@dataclass(frozen=True, slots=True)
class Band:
    low: float
    high: float

    @property
    def center(self) -> float:
        return (self.low + self.high) / 2.0

    @property
    def half(self) -> float:
        return (self.high - self.low) / 2.0

    def clamp(self, value: float) -> float:
        return min(self.high, max(self.low, value))


def effective_limits(tag: Tag) -> tuple[float, float]:
    """The lowest value above which and the highest below which no limit is crossed."""
    limits = tag.limits
    low = next((v for v in (limits.l, limits.ll) if v is not None), tag.range[0])
    high = next((v for v in (limits.h, limits.hh) if v is not None), tag.range[1])
    return low, high


def normal_band(tag: Tag) -> Band:
    """The band a tag's value stays in during normal operation, strictly inside its limits."""
    low, high = effective_limits(tag)
    gap = high - low
    profile = PROFILES[tag.kind]
    open_below = tag.limits.l is None and tag.limits.ll is None
    share = profile.center_open if open_below and profile.center_open is not None else profile.center
    center = low + share * gap
    half = profile.half * gap
    return Band(center - half, center + half)


class OrnsteinUhlenbeck:
    """Mean-reverting noise with a given stationary deviation, exact for any step."""

    __slots__ = ("sigma", "tau_s", "x")

    def __init__(self, sigma: float, tau_s: float, rng: random.Random) -> None:
        self.sigma = sigma
        self.tau_s = tau_s
        self.x = rng.gauss(0.0, sigma) if sigma > 0 else 0.0

    def step(self, dt_s: float, rng: random.Random) -> float:
        decay = math.exp(-dt_s / self.tau_s)
        self.x = decay * self.x + self.sigma * math.sqrt(1.0 - decay * decay) * rng.gauss(0.0, 1.0)
        return self.x


class TagProcess:
    """The normal value of one tag over time."""

    __slots__ = ("band", "kind", "noise", "period_s", "phase", "profile", "value")

    def __init__(self, tag: Tag, rng: random.Random) -> None:
        self.kind = tag.kind
        self.band = normal_band(tag)
        self.profile = PROFILES[tag.kind]
        self.noise = OrnsteinUhlenbeck(self.profile.own * self.band.half, self.profile.tau_s, rng)
        # levels fill and empty over 2 to 4 hours (a storage tank is not a buffer drum), each at its
        # own phase: at most about 1 % of span a minute, so a 10-minute prediction sees no limit ahead
        self.period_s = rng.uniform(7200.0, 14400.0)
        self.phase = rng.uniform(0.0, 2.0 * math.pi)
        self.value = self._compose(0.0, 0.0)

    def _compose(self, time_s: float, shared: float) -> float:
        band = self.band
        if self.kind is TagKind.LEVEL:
            base = band.center + 0.8 * band.half * math.sin(
                2.0 * math.pi * time_s / self.period_s + self.phase
            )
        else:
            base = band.center + self.profile.shared * band.half * shared
        return band.clamp(base + self.noise.x)

    def step(self, time_s: float, dt_s: float, shared: float, rng: random.Random) -> float:
        """Advance to time_s; shared is the equipment's common driver (unit deviation)."""
        self.noise.step(dt_s, rng)
        self.value = self._compose(time_s, shared)
        return self.value
