"""GB 18218-2018 critical quantities (Table 1 and 2) and correction factors β.

Only a selection of the standard's tables is carried here; a chemical not listed must be
given in devices.yaml with its critical quantity and hazard category.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ChemicalSpec:
    critical_quantity_t: float
    beta: float


# β for the named toxic gases of GB 18218-2018 Table 3.
TOXIC_BETA: dict[str, float] = {
    "一氧化碳": 2, "二氧化硫": 2, "氨": 2, "环氧乙烷": 2,
    "氯化氢": 3, "氯化氢(无水)": 3, "溴甲烷": 3,
    "氯": 4,
    "硫化氢": 5, "氟化氢": 5,
    "二氧化氮": 10, "氰化氢": 10,
    "碳酰氯": 20, "磷化氢": 20, "异氰酸甲酯": 20,
}  # fmt: skip

# β by hazard category for everything else (GB 18218-2018 Table 4).
CATEGORY_BETA: dict[str, float] = {
    "J1": 4,
    "J3": 2, "J4": 2, "W1.1": 2, "W1.2": 2, "W1.3": 2,
    "W2": 1.5, "W5.1": 1.5, "W6.1": 1.5, "W7.1": 1.5,
}  # fmt: skip

# Critical quantities Q (tonnes) of hazard categories not named in Table 1 (Table 2).
CATEGORY_CRITICAL_QUANTITY: dict[str, float] = {
    "J1": 5, "J2": 50, "J3": 50, "W2": 10, "W5.1": 10, "W5.3": 1000, "W5.4": 5000,
}  # fmt: skip

# Named chemicals (Table 1, selection): name -> (Q in tonnes, hazard category for β).
_NAMED: dict[str, tuple[float, str | None]] = {
    "碳酰氯": (0.3, None),
    "氟化氢": (1, None), "氰化氢": (1, None), "乙炔": (1, "W2"),
    "氯": (5, None), "硫化氢": (5, None), "氢": (5, "W2"), "1,3-丁二烯": (5, "W2"),
    "氨": (10, None), "环氧乙烷": (10, None),
    "二氧化硫": (20, None), "氯化氢(无水)": (20, None),
    "甲烷": (50, "W2"), "天然气": (50, "W2"), "液化石油气": (50, "W2"), "氯乙烯": (50, "W2"),
    "乙烯": (50, "W2"), "苯": (50, "W5.1"), "二甲醚": (50, "W2"),
    "氧": (200, None), "汽油": (200, "W5.1"),
    "甲醇": (500, "W5.1"), "甲苯": (500, "W5.1"), "丙酮": (500, "W5.1"), "乙醇": (500, "W5.1"),
    "苯乙烯": (500, "W5.1"),
}  # fmt: skip


def beta_for(name: str, category: str | None) -> float:
    if name in TOXIC_BETA:
        return TOXIC_BETA[name]
    if category is not None:
        return CATEGORY_BETA.get(category, 1.0)
    return 1.0


def lookup(name: str) -> ChemicalSpec | None:
    """The catalogue entry of a named chemical, or None if it is not in the catalogue."""
    named = _NAMED.get(name)
    if named is None:
        return None
    quantity, category = named
    return ChemicalSpec(critical_quantity_t=quantity, beta=beta_for(name, category))
