"""GB 18218-2018 identification (S) and grading (R) of a hazard source."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

GRADE_NAMES = {1: "一级", 2: "二级", 3: "三级", 4: "四级"}


@dataclass(frozen=True, slots=True)
class Holding:
    """One chemical in a unit: design maximum quantity q, critical quantity Q, correction β."""

    max_quantity_t: float
    critical_quantity_t: float
    beta: float


@dataclass(frozen=True, slots=True)
class GradeResult:
    s: float
    r: float
    alpha: float
    is_major: bool
    grade: int  # 1..4, 1 = 一级 (most severe)

    @property
    def grade_name(self) -> str:
        return GRADE_NAMES[self.grade]


def alpha_for(people_within_500m: int) -> float:
    """Correction α by the people within 500 m outside the plant boundary."""
    if people_within_500m >= 100:
        return 2.0
    if people_within_500m >= 50:
        return 1.5
    if people_within_500m >= 30:
        return 1.2
    if people_within_500m >= 1:
        return 1.0
    return 0.5


def grade_for(r: float) -> int:
    if r >= 100:
        return 1
    if r >= 50:
        return 2
    if r >= 10:
        return 3
    return 4


def grade_hazard_source(holdings: Iterable[Holding], people_within_500m: int) -> GradeResult:
    """S = Σ q/Q; R = α · Σ β · q/Q; grade by R."""
    items = list(holdings)
    s = sum(h.max_quantity_t / h.critical_quantity_t for h in items)
    alpha = alpha_for(people_within_500m)
    r = alpha * sum(h.beta * h.max_quantity_t / h.critical_quantity_t for h in items)
    return GradeResult(s=s, r=r, alpha=alpha, is_major=s >= 1, grade=grade_for(r))
