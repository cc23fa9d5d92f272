"""The alarm state machine (ISA-18.2 subset), as pure functions.

NORMAL (closed) ─raise─▶ UNACK ─ack─▶ ACKED ─clear─▶ NORMAL
                          │clear                       ▲
                          ▼                            │
                       RTN_UNACK ──────────ack─────────┘
A condition that returns while RTN_UNACK re-annunciates (UNACK); an escalation
(H → HH, L → LL) on an active alarm re-alarms (UNACK) even if it was acknowledged.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from alarms.errors import InvalidTransition


class AlarmState(StrEnum):
    UNACK = "UNACK"
    ACKED = "ACKED"
    RTN_UNACK = "RTN_UNACK"
    NORMAL = "NORMAL"


class Action(StrEnum):
    RAISE = "raise"
    ESCALATE = "escalate"
    DEESCALATE = "deescalate"
    REACTIVATE = "reactivate"
    CLEAR = "clear"
    ACK = "ack"


@dataclass(frozen=True, slots=True)
class Change:
    action: Action
    state: AlarmState
    active: bool
    level: int


def on_condition(state: AlarmState | None, active: bool, level: int, new_level: int) -> Change | None:
    """How an open alarm (or none: state None) reacts to its condition's new level (0 = clear)."""
    if state is None or state == AlarmState.NORMAL:
        return Change(Action.RAISE, AlarmState.UNACK, True, new_level) if new_level > 0 else None
    if new_level == 0:
        if not active:
            return None
        closed = state == AlarmState.ACKED
        return Change(Action.CLEAR, AlarmState.NORMAL if closed else AlarmState.RTN_UNACK, False, level)
    if not active:
        return Change(Action.REACTIVATE, AlarmState.UNACK, True, new_level)
    if new_level > level:
        return Change(Action.ESCALATE, AlarmState.UNACK, True, new_level)
    if new_level < level:
        return Change(Action.DEESCALATE, state, True, new_level)
    return None


def on_ack(state: AlarmState, active: bool, level: int) -> Change:
    """Acknowledge: UNACK → ACKED, RTN_UNACK → NORMAL (closed)."""
    if state == AlarmState.UNACK:
        return Change(Action.ACK, AlarmState.ACKED, active, level)
    if state == AlarmState.RTN_UNACK:
        return Change(Action.ACK, AlarmState.NORMAL, False, level)
    raise InvalidTransition(f"an alarm in state {state} cannot be acknowledged")
