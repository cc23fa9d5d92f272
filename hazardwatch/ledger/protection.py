"""Chatter protection of a tag's other conditions (ISA-18.2 on-/off-delays and hysteresis), with
defaults by tag kind.

Limits (H/HH, L/LL) have theirs on the tag (``deadband``, ``on_delay_s``, ``off_delay_s``). The
others are set in their own sections: ``roc``, ``frozen`` and ``predict`` take ``on_delay_s`` and
``off_delay_s`` (``roc`` also its own ``deadband``), and two sections hold FAULT's and STALE's::

    fault: {on_delay_s: 2, off_delay_s: 10, margin_pct: 0.5}
    stale: {on_delay_s: 0, off_delay_s: 30}

A setting not given takes the default for the tag's kind (``DEFAULTS``, README "Rules per tag").
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pydantic import BaseModel, ConfigDict, Field

MAX_DELAY_S = 3600.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FaultProtection(_Model):
    """FAULT (instrument fault): delays, and how far back inside NAMUR NE 43's band a value must be."""

    on_delay_s: float | None = Field(None, ge=0, le=MAX_DELAY_S, description="held this long to alarm")
    off_delay_s: float | None = Field(None, ge=0, le=MAX_DELAY_S, description="gone this long to clear")
    margin_pct: float | None = Field(
        None, ge=0, le=10, description="% of span a value must be back inside the NE 43 band to reset"
    )


class StaleProtection(_Model):
    """STALE (offline): silence beyond ``stale_after_s`` plus the on-delay raises it; readings clear
    it once they have come for the off-delay without a silence between them."""

    on_delay_s: float | None = Field(None, ge=0, le=MAX_DELAY_S, description="held this long to alarm")
    off_delay_s: float | None = Field(None, ge=0, le=MAX_DELAY_S, description="gone this long to clear")


@dataclass(frozen=True, slots=True)
class Delays:
    """On-delay and off-delay in seconds."""

    on_s: float
    off_s: float


@dataclass(frozen=True, slots=True)
class Protection:
    """A tag's effective chatter protection (seconds; margins in engineering units)."""

    fault: Delays
    fault_margin: float
    roc: Delays
    roc_deadband: float
    frozen: Delays
    predict: Delays
    stale: Delays


@dataclass(frozen=True, slots=True)
class Defaults:
    fault: Delays
    fault_margin_pct: float
    roc: Delays
    frozen: Delays
    predict: Delays
    stale: Delays


# FAULT: a transmitter that fails holds its fault; 2 s ignores one bad answer, 10 s of good readings
# (inside the band by 0.5 % of span) before it is believed again. ROC: a one-reading spike moves the
# rate for one reading only; 5 s filters it, 30 s keeps one alarm per disturbance. FROZEN: the window
# is its on-delay; a stuck transmitter that twitches once stays frozen for 60 s. PREDICT: the trend
# must hold 15 s before it warns and stay away 120 s (ISA-18.2 chattering is 3 in 60 s) before it
# clears. STALE: stale_after_s is its on-delay; a link that flaps is one alarm until it has held 30 s.
# Gas detectors warn sooner: every second of a leak counts, and their limits have no delay either.
_STANDARD = Defaults(
    fault=Delays(2.0, 10.0),
    fault_margin_pct=0.5,
    roc=Delays(5.0, 30.0),
    frozen=Delays(0.0, 60.0),
    predict=Delays(15.0, 120.0),
    stale=Delays(0.0, 30.0),
)
_GAS = Defaults(
    fault=Delays(2.0, 10.0),
    fault_margin_pct=0.5,
    roc=Delays(0.0, 30.0),
    frozen=Delays(0.0, 60.0),
    predict=Delays(5.0, 120.0),
    stale=Delays(0.0, 30.0),
)
DEFAULTS: dict[str, Defaults] = {"gas_combustible": _GAS, "gas_toxic": _GAS}


def defaults(kind: str) -> Defaults:
    """The defaults for a tag kind (``TagKind`` value)."""
    return DEFAULTS.get(kind, _STANDARD)


def _delays(given_on: float | None, given_off: float | None, default: Delays) -> Delays:
    return Delays(
        default.on_s if given_on is None else given_on, default.off_s if given_off is None else given_off
    )


def effective(kind: str, span: float, deadband: float, fault: FaultProtection | None,
              roc: tuple[float | None, float | None, float | None] | None,
              frozen: tuple[float | None, float | None] | None,
              predict: tuple[float | None, float | None] | None,
              stale: StaleProtection | None, *, by_exception: bool = False) -> Protection:  # fmt: skip
    """The effective protection from what the tag gives (``roc``: on, off, deadband; ``frozen`` and
    ``predict``: on, off; None where the section is absent) and the defaults for its kind.

    A tag reported by exception (an OPC-UA subscription) reports a change once and then nothing
    while the value holds: no later reading would see a delay pass, so FAULT's delays default to 0
    there (its band margin still holds the alarm through a dithering signal), and so do ROC's and
    PREDICT's off-delays (a recovered value that then holds would otherwise never clear them)."""
    d = defaults(kind)
    if by_exception:
        d = replace(
            d, fault=Delays(0.0, 0.0), roc=Delays(d.roc.on_s, 0.0), predict=Delays(d.predict.on_s, 0.0)
        )
    f = fault or FaultProtection()
    s = stale or StaleProtection()
    r = roc or (None, None, None)
    margin_pct = d.fault_margin_pct if f.margin_pct is None else f.margin_pct
    return Protection(
        fault=_delays(f.on_delay_s, f.off_delay_s, d.fault),
        fault_margin=span * margin_pct / 100.0,
        roc=_delays(r[0], r[1], d.roc),
        roc_deadband=deadband if r[2] is None else r[2],
        frozen=_delays(*(frozen or (None, None)), d.frozen),
        predict=_delays(*(predict or (None, None)), d.predict),
        stale=_delays(s.on_delay_s, s.off_delay_s, d.stale),
    )
