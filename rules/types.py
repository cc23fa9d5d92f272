"""What the rule engine emits."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Condition(StrEnum):
    HIGH = "HIGH"  # level 1 = H, 2 = HH
    LOW = "LOW"  # level 1 = L, 2 = LL
    FAULT = "FAULT"  # level 1 = bad quality or outside the measuring range
    ROC = "ROC"  # level 1 = moved by at least the rate-of-change limit within its period
    FROZEN = "FROZEN"  # level 1 = the value has not moved for the frozen window
    PREDICT = "PREDICT"  # level 1 = the trend reaches the next limit within the response time (预警)
    STALE = "STALE"  # level 1 = no reading for longer than the tag's stale period (offline)
    VOTE = "VOTE"  # level 1/2 = k of a voting group's tags are at their H/HH (or L/LL) level
    SOURCE = "SOURCE"  # level 1 = several conditions active in one hazard source (hazard-source warning)
    GATEWAY_OFFLINE = "GATEWAY_OFFLINE"  # level 1 = a gateway went silent or offline
    DEVICE_COMM = "DEVICE_COMM"  # level 1 = a device (PLC, DCS) of a gateway does not answer
    CLOCK_AHEAD = "CLOCK_AHEAD"  # level 1 = a gateway stamps readings ahead of the platform's clock


class Subject(StrEnum):
    """What an alarm is about."""

    TAG = "tag"
    CAMERA = "camera"
    HAZARD_SOURCE = "hazard_source"
    GATEWAY = "gateway"
    VOTE_GROUP = "vote_group"  # a k-out-of-n voting group of tags (vote_groups.id)


@dataclass(frozen=True, slots=True)
class Transition:
    """A condition of a subject changed level at a source time (level 0 = returned to normal).

    ``subject_id`` is the id of a tag unless ``subject`` says otherwise; ``condition`` is one
    of :class:`Condition` or an edge event's kind (video: INTRUSION, TAMPER, FIRE, …).
    """

    subject_id: int
    condition: str
    level: int
    ts_ms: int
    value: float | None
    limit: float | None
    subject: Subject = Subject.TAG
    detail: dict[str, object] | None = None
