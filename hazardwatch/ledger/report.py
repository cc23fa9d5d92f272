"""A hazard source's GB 18218-2018 identification and grading as ``hazardwatch check`` prints it."""

from __future__ import annotations

from hazardwatch.ledger.chemicals import exact
from hazardwatch.ledger.grading import decimal_text as dec
from hazardwatch.ledger.models import HazardSource


def grade_report(enterprise_code: str, source: HazardSource) -> list[str]:
    """S, α and R with the terms of their sums, the grade or 非重大危险源, where each Q and β comes
    from, and any override of the standard's tables with its justification."""
    g = source.grade()
    verdict = (
        f"重大危险源 {g.grade_name}" if g.is_major else "非重大危险源 (not a major hazard source, no grade)"
    )
    lines = [
        f"  {enterprise_code} {source.code} {source.name}: {verdict}",
        f"    S = {g.s_terms()} = {dec(g.s)} {'≥' if g.is_major else '<'} 1",
        f"    α = {dec(g.alpha)} ({source.people_within_500m} people within 500 m)",
        f"    R = {g.r_terms()} = {dec(g.r)}" + (f" → {g.grade_name}" if g.is_major else " (no grade)"),
    ]
    for chemical in source.chemicals:
        found = chemical.resolved()
        lines.append(
            f"    {chemical.name}: q {dec(exact(chemical.max_quantity_t))} t,"
            f" Q {dec(found.critical_quantity_t)} t ({found.q_source}),"
            f" β {dec(found.beta)} ({found.beta_source})"
        )
        lines += [f"      override: {override}" for override in found.overrides]
    return lines
