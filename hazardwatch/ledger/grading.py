"""GB 18218-2018 identification (S) and grading (R) of a hazard source, in exact arithmetic.

S = Σ qᵢ/Qᵢ and R = α · Σ βᵢ · qᵢ/Qᵢ are computed as fractions of the ledger's decimals, so a sum
that is 1 or 10 on paper is exactly 1 or 10 here; rounding is for display only. A unit with S < 1
is not a major hazard source (重大危险源) and has no grade.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction

from hazardwatch.ledger.chemicals import exact, tables

GRADE_NAMES = {1: "一级", 2: "二级", 3: "三级", 4: "四级"}
NOT_MAJOR = "非重大危险源"
NOT_MAJOR_EN = "not a major hazard source"
GRADE_LIMITS = ((Fraction(100), 1), (Fraction(50), 2), (Fraction(10), 3))  # R ≥ limit → grade


def decimal_text(value: Fraction, places: int = 4) -> str:
    """An exact value rounded for display (half to even), without trailing zeros."""
    quantum = Decimal(1).scaleb(-places)
    whole = len(str(abs(value.numerator) // value.denominator))
    with localcontext() as context:  # enough digits for the whole part and the places, however large
        context.prec = whole + places + 2
        rounded = (Decimal(value.numerator) / Decimal(value.denominator)).quantize(quantum, ROUND_HALF_EVEN)
    text = f"{rounded:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True, slots=True)
class Holding:
    """One chemical in a unit: design maximum quantity q, critical quantity Q, correction β."""

    max_quantity_t: Fraction
    critical_quantity_t: Fraction
    beta: Fraction
    name: str = ""

    @classmethod
    def of(cls, q: Fraction | float | str, critical: Fraction | float | str, beta: Fraction | float | str,
           name: str = "") -> Holding:  # fmt: skip
        """A holding from decimal figures (floats are read as the decimal text they print as)."""
        return cls(exact(q), exact(critical), exact(beta), name)

    @property
    def ratio(self) -> Fraction:
        return self.max_quantity_t / self.critical_quantity_t


@dataclass(frozen=True, slots=True)
class GradeResult:
    s: Fraction
    r: Fraction
    alpha: Fraction
    is_major: bool
    grade: int | None  # 1..4, 1 = 一级 (most severe); None: not a major hazard source
    holdings: tuple[Holding, ...] = ()

    @property
    def grade_name(self) -> str:
        return grade_name(self.grade)

    def s_terms(self) -> str:
        """S's sum as written on paper: ``120/50 + 30/10``."""
        return " + ".join(
            f"{decimal_text(h.max_quantity_t)}/{decimal_text(h.critical_quantity_t)}" for h in self.holdings
        )

    def r_terms(self) -> str:
        """R's sum as written on paper: ``1.5 × (1.5×120/50 + 2×30/10)``."""
        inner = " + ".join(
            f"{decimal_text(h.beta)}×{decimal_text(h.max_quantity_t)}/{decimal_text(h.critical_quantity_t)}"
            for h in self.holdings
        )
        return f"{decimal_text(self.alpha)} × ({inner})"


def grade_name(grade: int | None) -> str:
    """一级…四级, or 非重大危险源 for a source with no grade (S < 1)."""
    return NOT_MAJOR if grade is None else GRADE_NAMES[grade]


def grade_name_sql(alias: str) -> str:
    """SQL for the grade name of the hazard source row ``alias`` (NULL where the join found none)."""
    names = ", ".join(f"'{n}'" for n in GRADE_NAMES.values())
    return (
        f"CASE WHEN {alias}.id IS NULL THEN NULL"
        f" ELSE coalesce((ARRAY[{names}])[{alias}.grade], '{NOT_MAJOR}') END"
    )


def alpha_for(people_within_500m: int) -> Fraction:
    """Correction α by the people within 500 m outside the plant boundary (表5)."""
    for band in tables().alpha_bands:
        if people_within_500m >= band.min_people:
            return band.alpha
    raise ValueError(f"people_within_500m must not be negative: {people_within_500m}")


def grade_for(r: Fraction) -> int:
    """一级 R ≥ 100; 二级 50 ≤ R < 100; 三级 10 ≤ R < 50; 四级 R < 10."""
    for limit, grade in GRADE_LIMITS:
        if r >= limit:
            return grade
    return 4


def grade_hazard_source(holdings: Iterable[Holding], people_within_500m: int) -> GradeResult:
    """S = Σ q/Q; R = α · Σ β · q/Q; a grade by R only when S ≥ 1."""
    items = tuple(holdings)
    s = sum((h.ratio for h in items), Fraction(0))
    alpha = alpha_for(people_within_500m)
    r = alpha * sum((h.beta * h.ratio for h in items), Fraction(0))
    is_major = s >= 1
    return GradeResult(s=s, r=r, alpha=alpha, is_major=is_major, grade=grade_for(r) if is_major else None,
                       holdings=items)  # fmt: skip
