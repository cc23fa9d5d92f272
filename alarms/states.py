"""The alarm state machine (ISA-18.2), as pure functions.

Annunciated states::

    NORMAL (closed) ─raise─▶ UNACK ─ack─▶ ACKED ─clear─▶ NORMAL
                              │clear                       ▲
                              ▼                            │
                           RTN_UNACK ──────────ack─────────┘

A condition that returns while RTN_UNACK re-annunciates (UNACK); an escalation (H → HH,
L → LL) on an active alarm re-alarms (UNACK) even if it was acknowledged.

Masked states hide an alarm from the board while its condition keeps being tracked
(``active`` and ``level`` follow the condition, journaled): SHELVED (an operator, for a
limited time, with a reason), SUPPRESSED (by design: maintenance or start-up declared by the
enterprise) and OUT_OF_SERVICE (the tag is out of service). Suppression and out-of-service
take precedence over shelving. Leaving a mask re-annunciates an alarm whose condition is
still active (UNACK: never silently active) and closes one whose condition has cleared.
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
    SHELVED = "SHELVED"
    SUPPRESSED = "SUPPRESSED"
    OUT_OF_SERVICE = "OUT_OF_SERVICE"


ANNUNCIATED = frozenset({AlarmState.UNACK, AlarmState.ACKED, AlarmState.RTN_UNACK})
MASKED = frozenset({AlarmState.SHELVED, AlarmState.SUPPRESSED, AlarmState.OUT_OF_SERVICE})


class Action(StrEnum):
    RAISE = "raise"
    ESCALATE = "escalate"
    DEESCALATE = "deescalate"
    REACTIVATE = "reactivate"
    CLEAR = "clear"
    ACK = "ack"
    SHELVE = "shelve"
    UNSHELVE = "unshelve"
    SUPPRESS = "suppress"
    UNSUPPRESS = "unsuppress"
    OUT_OF_SERVICE = "out_of_service"
    RETURN_TO_SERVICE = "return_to_service"
    # the regulatory loop: these leave the ISA state as it is
    FEEDBACK = "feedback"
    ACCEPT = "accept"
    RETURN = "return"
    HIDDEN_DANGER = "hidden_danger"  # a hidden-danger record opened from the alarm, or one of its steps
    CLOSE = "close"
    REOPEN = "reopen"


_MASK_ACTIONS = {
    AlarmState.SHELVED: (Action.SHELVE, Action.UNSHELVE),
    AlarmState.SUPPRESSED: (Action.SUPPRESS, Action.UNSUPPRESS),
    AlarmState.OUT_OF_SERVICE: (Action.OUT_OF_SERVICE, Action.RETURN_TO_SERVICE),
}


@dataclass(frozen=True, slots=True)
class Change:
    action: Action
    state: AlarmState
    active: bool
    level: int


def on_condition(
    state: AlarmState | None, active: bool, level: int, new_level: int, mask: AlarmState | None = None
) -> Change | None:
    """How an open alarm (or none: state None) reacts to its condition's new level (0 = clear).

    ``mask`` is the masked state a newly raised alarm starts in (its subject is suppressed
    or out of service), or None to annunciate it.
    """
    if state is None or state == AlarmState.NORMAL:
        if new_level <= 0:
            return None
        return Change(Action.RAISE, mask if mask in MASKED else AlarmState.UNACK, True, new_level)
    if state in MASKED:  # tracked, not annunciated
        if new_level == 0:
            return Change(Action.CLEAR, state, False, level) if active else None
        if not active:
            return Change(Action.REACTIVATE, state, True, new_level)
        if new_level != level:
            return Change(Action.ESCALATE if new_level > level else Action.DEESCALATE, state, True, new_level)
        return None
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
    """Acknowledge: UNACK → ACKED, RTN_UNACK → NORMAL."""
    if state == AlarmState.UNACK:
        return Change(Action.ACK, AlarmState.ACKED, active, level)
    if state == AlarmState.RTN_UNACK:
        return Change(Action.ACK, AlarmState.NORMAL, False, level)
    raise InvalidTransition(f"an alarm in state {state} cannot be acknowledged")


def on_mask(state: AlarmState, active: bool, level: int, mask: AlarmState) -> Change:
    """Enter a masked state. Shelving needs an annunciated alarm; suppression and
    out-of-service take any open alarm (and override a shelf)."""
    if mask not in MASKED:
        raise ValueError(f"{mask} is not a masked state")
    if state == AlarmState.NORMAL:
        raise InvalidTransition("a closed alarm cannot be shelved or suppressed")
    if state == mask:
        raise InvalidTransition(f"the alarm is already {state}")
    if mask == AlarmState.SHELVED and state not in ANNUNCIATED:
        raise InvalidTransition(f"an alarm in state {state} cannot be shelved")
    if mask == AlarmState.SUPPRESSED and state == AlarmState.OUT_OF_SERVICE:
        raise InvalidTransition("an alarm out of service cannot be suppressed")
    if mask != AlarmState.SHELVED and state == AlarmState.RTN_UNACK:
        # suppression and out-of-service hold back a condition; one that has cleared already waits
        # on the board for its acknowledgement (leaving the mask would close it unacknowledged)
        raise InvalidTransition("a cleared alarm awaiting acknowledgement stays on the board")
    return Change(_MASK_ACTIONS[mask][0], mask, active, level)


def on_unmask(state: AlarmState, active: bool, level: int) -> Change:
    """Leave a masked state: re-annunciate if still active, else return to normal."""
    if state not in MASKED:
        raise InvalidTransition(f"an alarm in state {state} is not shelved, suppressed or out of service")
    action = _MASK_ACTIONS[state][1]
    return Change(action, AlarmState.UNACK if active else AlarmState.NORMAL, active, level)
