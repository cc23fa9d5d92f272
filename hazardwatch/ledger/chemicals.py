"""GB 18218-2018 Tables 1–5 as data, and where a holding's Q and β come from.

The tables live in ``hazardwatch/ledger/data/gb18218_table{1..5}.yaml``, one row per row of the
standard with the clause it comes from. They are read as text and their figures kept as exact
fractions of the decimals printed in the standard, never as binary floats.

- 表1: the 85 named substances, their critical quantity Q and (our reading of) their category;
- 表2: Q of each category for a substance not named in 表1;
- 表3: β of the named toxic gases;
- 表4: β of each category, for everything not named in 表3;
- 表5: α by the people exposed (see ``grading.alpha_for``).

A flammable liquid's category depends on how it is worked (表2 W5): category 1, or categories 2/3
worked above their boiling point, are W5.1 (β 1.5); categories 2/3 under special process
conditions W5.2; otherwise W5.3 (category 2) or W5.4 (category 3), β 1. The ledger says which with
``above_boiling_point`` and ``special_process``; the standard's default is neither.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from importlib import resources
from typing import Any

import yaml

STANDARD = "GB 18218-2018"
FLAMMABLE_LIQUIDS = ("W5.1", "W5.2", "W5.3", "W5.4")


def exact(value: Fraction | Decimal | float | int | str) -> Fraction:
    """A number as an exact fraction of its decimal text.

    A float read from the ledger (YAML) becomes the shortest decimal that reads back as it, which
    is the text the ledger was written in: ``10.7`` is 107/10, not the binary double near it.
    """
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a finite number")
        return Fraction(repr(value))
    return Fraction(value)


def normalize_name(name: str) -> str:
    """A chemical name as the catalogue keys it: ASCII brackets and commas, no spaces, any case."""
    table = str.maketrans({"（": "(", "）": ")", "，": ",", "［": "[", "］": "]"})
    return "".join(name.translate(table).split()).lower()


@dataclass(frozen=True, slots=True)
class Category:
    """A category of 表2 with its Q, and its β from 表4."""

    symbol: str
    critical_quantity_t: Fraction
    beta: Fraction
    hazard: str
    description: str
    q_source: str
    beta_source: str


@dataclass(frozen=True, slots=True)
class NamedSubstance:
    """A row of 表1."""

    no: int
    name: str
    aliases: tuple[str, ...]
    cas: str
    critical_quantity_t: Fraction
    category: str | None
    liquid_class: int | None  # GHS flammable-liquid category of a W5 liquid
    table3: str | None  # its named toxic gas of 表3
    source: str


@dataclass(frozen=True, slots=True)
class ToxicGas:
    """A row of 表3."""

    name: str
    beta: Fraction
    source: str


@dataclass(frozen=True, slots=True)
class AlphaBand:
    """A row of 表5: α from ``min_people`` people exposed up to the next band."""

    min_people: int
    alpha: Fraction
    band: str
    source: str


@dataclass(frozen=True, slots=True)
class Tables:
    named: tuple[NamedSubstance, ...]
    categories: dict[str, Category]
    toxic_gases: dict[str, ToxicGas]
    alpha_bands: tuple[AlphaBand, ...]  # from the most people down
    by_name: dict[str, NamedSubstance] = field(repr=False)


def _rows(table: int) -> list[dict[str, Any]]:
    text = (
        resources.files("hazardwatch.ledger").joinpath(f"data/gb18218_table{table}.yaml").read_text("utf-8")
    )
    document = yaml.load(text, Loader=yaml.BaseLoader)  # noqa: S506 - BaseLoader builds only str/list/dict
    rows: list[dict[str, Any]] = document["rows"]
    return rows


@functools.cache
def tables() -> Tables:
    """The standard's tables, read once from the package data."""
    toxic = {r["name"]: ToxicGas(r["name"], Fraction(r["beta"]), r["src"]) for r in _rows(3)}
    betas = {r["symbol"]: (Fraction(r["beta"]), r["src"]) for r in _rows(4)}
    categories = {
        r["symbol"]: Category(r["symbol"], Fraction(r["q"]), betas[r["symbol"]][0], r["hazard"],
                              r["description"], r["src"], betas[r["symbol"]][1])
        for r in _rows(2)
    }  # fmt: skip
    if set(categories) != set(betas):
        raise RuntimeError("GB 18218 tables 2 and 4 disagree on the categories")
    named = tuple(
        NamedSubstance(
            no=int(r["no"]), name=r["name"], aliases=tuple(r.get("aliases", ())), cas=r.get("cas", ""),
            critical_quantity_t=Fraction(r["q"]), category=r.get("category"),
            liquid_class=int(r["class"]) if "class" in r else None, table3=r.get("table3"), source=r["src"],
        )
        for r in _rows(1)
    )  # fmt: skip
    by_name: dict[str, NamedSubstance] = {}
    for row in named:
        if row.category is not None and row.category not in categories:
            raise RuntimeError(f"表1 序号{row.no}: unknown category {row.category}")
        if row.table3 is not None and row.table3 not in toxic:
            raise RuntimeError(f"表1 序号{row.no}: {row.table3} is not in 表3")
        for key in (row.name, *row.aliases):
            if by_name.setdefault(normalize_name(key), row) is not row:
                raise RuntimeError(f"表1: the name {key} is given twice")
    bands = tuple(
        sorted(
            (AlphaBand(int(r["min"]), Fraction(r["alpha"]), r["band"], r["src"]) for r in _rows(5)),
            key=lambda b: -b.min_people,
        )
    )
    return Tables(named, categories, toxic, bands, by_name)


def lookup(name: str) -> NamedSubstance | None:
    """The 表1 row of a chemical by its name or an alias, or None if 表1 does not name it."""
    return tables().by_name.get(normalize_name(name))


@dataclass(frozen=True, slots=True)
class Resolved:
    """A chemical of the ledger with its Q and β, where each comes from, and any override."""

    name: str
    critical_quantity_t: Fraction
    beta: Fraction
    category: str | None
    q_source: str
    beta_source: str
    named: NamedSubstance | None
    overrides: tuple[str, ...] = ()


def _fmt(value: Fraction) -> str:
    return f"{float(value):g}"


def _category(symbol: str) -> Category:
    found = tables().categories.get(symbol)
    if found is None:
        known = ", ".join(tables().categories)
        raise ValueError(f"unknown hazard category {symbol!r}: {STANDARD} 表2 has {known}")
    return found


def _liquid_category(base: str | None, above_boiling_point: bool, special_process: bool) -> str | None:
    if base not in FLAMMABLE_LIQUIDS:
        if above_boiling_point or special_process:
            raise ValueError(
                "above_boiling_point and special_process decide a flammable liquid's category (W5);"
                f" this chemical is {base or 'not a flammable liquid'}"
            )
        return base
    if base == "W5.1" or above_boiling_point:
        return "W5.1"
    if special_process:
        return "W5.2"
    return base


def resolve(
    name: str,
    *,
    category: str | None = None,
    critical_quantity_t: Fraction | None = None,
    above_boiling_point: bool = False,
    special_process: bool = False,
    justification: str | None = None,
) -> Resolved:
    """Q and β of a chemical of the ledger by GB 18218-2018 (ValueError when the ledger is wrong).

    A named substance takes Q from 表1; anything else needs its 表2 category and takes Q from 表2.
    β is 表3's for a named toxic gas, else 表4's for the category. A Q or a category other than
    the tables' is refused unless the ledger gives a ``justification``, and is then reported.
    """
    named = lookup(name)
    overrides: list[str] = []
    if category is not None:
        _category(category)
    if named is None and category is None:
        raise ValueError(f"{name} is not named in {STANDARD} 表1: give its hazard category of 表2 (J1…W11)")
    base = category if category is not None else named.category if named is not None else None
    if named is not None and category is not None and category != named.category:
        if justification is None:
            raise ValueError(
                f"{name} is {named.source} with category {named.category or '(none)'}, not {category}:"
                " give a justification to file it otherwise"
            )
        overrides.append(f"category {category} instead of {named.category or '(none)'} of {named.source}")
    effective = _liquid_category(base, above_boiling_point, special_process)
    if named is not None:
        table_q, q_source = named.critical_quantity_t, named.source
    else:
        assert effective is not None  # noqa: S101 - an unnamed chemical has a category (checked above)
        table_q, q_source = _category(effective).critical_quantity_t, _category(effective).q_source
    quantity = table_q
    if critical_quantity_t is not None and critical_quantity_t != table_q:
        if justification is None:
            raise ValueError(
                f"critical_quantity_t {_fmt(critical_quantity_t)} t of {name} differs from"
                f" {_fmt(table_q)} t of {q_source}: give a justification to override it"
            )
        overrides.append(f"Q {_fmt(critical_quantity_t)} t instead of {_fmt(table_q)} t of {q_source}")
        quantity, q_source = critical_quantity_t, "devices file"
    if named is not None and named.table3 is not None:
        gas = tables().toxic_gases[named.table3]
        beta, beta_source = gas.beta, f"{gas.source} {gas.name}"
    elif effective is not None:
        beta, beta_source = _category(effective).beta, f"{_category(effective).beta_source} {effective}"
    else:
        beta, beta_source = Fraction(1), f"{STANDARD} 表4 (no 表2 category: 1)"
    if overrides:
        overrides.append(f"justification: {justification}")
    return Resolved(name, quantity, beta, effective, q_source, beta_source, named, tuple(overrides))
