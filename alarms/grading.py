"""Alarm priority (一级/二级/三级) from the condition, its kind and the hazard source's GB 18218 grade.

The table is the policy's (``alarms.policy.Grading``); by default HH/LL start at 一级, H/L,
rate of change and video events at 二级, instrument faults, frozen values, silent tags and
predictive warnings at 三级, suspected fire or smoke at 一级; a limit, video or composite
alarm of a 一级 or 二级 hazard source goes one step up (its consequences are larger).
"""

from __future__ import annotations

from alarms.policy import DEFAULT, Policy

PRIORITY_NAMES = {1: "一级", 2: "二级", 3: "三级"}


def priority(condition: str, level: int, hazard_grade: int | None, policy: Policy = DEFAULT) -> int:
    """1 is the most urgent."""
    return policy.grading.priority(condition, level, hazard_grade)
