"""Alarm priority (一级/二级/三级) from the condition and the hazard source's GB 18218 grade."""

from __future__ import annotations

PRIORITY_NAMES = {1: "一级", 2: "二级", 3: "三级"}


def priority(condition: str, level: int, hazard_grade: int) -> int:
    """1 is the most urgent.

    HH/LL start at 一级, H/L and rate of change at 二级, instrument faults, frozen values, silent
    (stale) tags and predictive warnings at 三级; an H/L or rate-of-change alarm of a 一级 or 二级
    hazard source is raised one step (its consequences are larger).
    """
    if condition in ("FAULT", "FROZEN", "PREDICT", "STALE"):
        return 3
    base = 1 if level >= 2 else 2
    if base == 2 and hazard_grade <= 2:
        base = 1
    return base
