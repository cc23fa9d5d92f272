"""GB 18218-2018 identification and grading at every boundary, and GB/T 50493-2019 gas limits.

One test per defect of issue 16 (floating point at the boundaries, non-major sources graded as
major, β of flammable liquids, categories and overrides, gas detector limits), a table-driven walk
over the α bands, the grade limits, S = 1, every 表3 gas and every 表2 category, and the migration
that regrades stored sources.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import psycopg
import pytest

import ingest.migrate
from alarms.policy import DEFAULT
from alarms.risk import assess
from alarms.store import apply_transitions
from hazardwatch.errors import ConfigError
from hazardwatch.ledger import load_plant, load_plant_text
from hazardwatch.ledger.chemicals import lookup, tables
from hazardwatch.ledger.grading import GradeResult, Holding, decimal_text, grade_hazard_source
from hazardwatch.ledger.models import ChemicalHolding, Tag
from ingest.ledger_sync import sync_ledger
from ingest.migrate import migrate
from rules.types import Condition, Transition
from tests.support import SAMPLE_DEVICES

Conn = psycopg.Connection[tuple[Any, ...]]


def grade(chemicals: list[dict[str, Any]], people: int) -> GradeResult:
    """Grade holdings given as devices.yaml would (floats from YAML included)."""
    return grade_hazard_source((ChemicalHolding.model_validate(c).holding() for c in chemicals), people)


def _devices(old: str, new: str) -> str:
    text = SAMPLE_DEVICES.read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new, 1)


# -- defect 1: floating point at the boundaries ------------------------------------------------
def test_a_sum_that_is_one_on_paper_is_a_major_hazard_source() -> None:
    result = grade([{"name": "氯", "max_quantity_t": 3.0}, {"name": "氨", "max_quantity_t": 3.0},
                    {"name": "二氧化硫", "max_quantity_t": 2.0}], people=1)  # fmt: skip
    assert result.s == 1  # 0.6 + 0.3 + 0.1, which floats make 0.9999999999999999
    assert result.is_major
    assert result.grade == 4


def test_an_r_that_is_ten_on_paper_is_grade_three() -> None:
    result = grade([{"name": "氯", "max_quantity_t": 10.7}, {"name": "氨", "max_quantity_t": 7.2}], people=1)
    assert result.r == 10  # 4 × 2.14 + 2 × 0.72
    assert result.grade_name == "三级"


# -- defect 2: a source with S < 1 is not a major hazard source --------------------------------
NOT_MAJOR_DEVICES = ("{name: 氯, max_quantity_t: 40}", "{name: 氯, max_quantity_t: 4}")  # S = 0.8


def test_s_below_one_has_no_grade_and_says_so() -> None:
    result = grade([{"name": "氯", "max_quantity_t": 4}], people=120)
    assert (result.is_major, result.grade, result.grade_name) == (False, None, "非重大危险源")
    assert result.r == Fraction("6.4")  # computed and shown, but it grades nothing


def test_a_non_major_source_is_stored_without_grade_and_lends_none(database_url: str) -> None:
    plant = load_plant_text(_devices(*NOT_MAJOR_DEVICES), "devices.yaml")
    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        sync_ledger(conn, plant)
        stored = conn.execute(
            "SELECT id, grade, s FROM hazard_sources WHERE code = 'HS330281002-01'"
        ).fetchone()
        assert stored is not None
        source_id, stored_grade, s = stored
        assert (stored_grade, s) == (None, 0.8)  # kept, monitored, no grade
        journal = conn.execute(
            "SELECT grade, reason FROM hazard_source_grades WHERE hazard_source_id = %s", (source_id,)
        ).fetchall()
        assert journal[0][0] is None
        assert "非重大危险源" in journal[0][1]
        assert "< 1" in journal[0][1]
        # an H alarm of a 二级 source would go up to 一级; of a non-major source it stays 二级
        tag_id = conn.execute("SELECT id FROM tags WHERE code = 'AT301'").fetchone()
        assert tag_id is not None
        with conn.transaction():
            apply_transitions(
                conn, [Transition(int(tag_id[0]), Condition.HIGH, 1, 1_800_000_000_000, 1.5, 1.0)]
            )
        priority = conn.execute("SELECT priority FROM alarms WHERE tag_id = %s", (tag_id[0],)).fetchone()
        assert priority == (2,)
        # no inherent risk points from a grade it does not have
        risk = {a.subject_id: a for a in assess(conn, datetime(2026, 12, 1, 1, tzinfo=UTC))
                if a.subject_kind == "hazard_source"}  # fmt: skip
        assert risk[source_id].factors["grade"] is None
        assert risk[source_id].factors["inherent_points"] == 0.0


def test_non_major_sources_are_named_so_by_every_listing_query(database_url: str) -> None:
    from alarms.commitments import commitments_of_day
    from dashboard.i18n import STRINGS

    plant = load_plant_text(_devices(*NOT_MAJOR_DEVICES), "devices.yaml")
    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        sync_ledger(conn, plant)
        rows = commitments_of_day(conn, datetime(2026, 12, 1, tzinfo=UTC).date(), datetime.now(UTC))
    names = {r["hazard_source_code"]: r["grade_name"] for r in rows}
    assert names["HS330281002-01"] == "非重大危险源"
    assert names["HS330110001-01"] == "三级"
    assert STRINGS["zh"]["grade_none"] == "非重大危险源"
    assert STRINGS["en"]["grade_none"] == "not a major hazard source"


# -- defect 3: β of flammable liquids by the condition that decides their category ------------
@pytest.mark.parametrize(
    ("flags", "beta", "grade_name"),
    [
        ({}, "1", "三级"),  # category 2 at ambient: W5.3, β 1; R = 2 × 20 = 40
        ({"special_process": True}, "1", "三级"),  # W5.2, β 1
        ({"above_boiling_point": True}, "1.5", "二级"),  # W5.1, β 1.5; R = 60
    ],
)
def test_methanol_beta_follows_how_it_is_worked(flags: dict[str, bool], beta: str, grade_name: str) -> None:
    chemical = {"name": "甲醇", "max_quantity_t": 10_000, **flags}
    assert ChemicalHolding.model_validate(chemical).holding().beta == Fraction(beta)
    result = grade([chemical], people=120)
    assert (result.s, result.grade_name) == (Fraction(20), grade_name)


@pytest.mark.parametrize(
    ("name", "beta"),
    [("甲苯", 1), ("丙酮", 1), ("乙醇", 1), ("苯乙烯", 1), ("苯", 1), ("乙醚", Fraction(3, 2)),
     ("1,2-环氧丙烷", Fraction(3, 2))],
)  # fmt: skip
def test_flammable_liquids_at_ambient_take_their_category_beta(name: str, beta: Fraction) -> None:
    assert ChemicalHolding(name=name, max_quantity_t=1).holding().beta == beta  # category 1: W5.1


def test_an_unnamed_flammable_liquid_takes_q_of_its_condition() -> None:
    base = {"name": "某溶剂", "max_quantity_t": 50, "category": "W5.3"}
    assert ChemicalHolding.model_validate(base).holding().critical_quantity_t == 1000
    special = ChemicalHolding.model_validate({**base, "special_process": True}).holding()
    assert (special.critical_quantity_t, special.beta) == (Fraction(50), Fraction(1))  # W5.2
    hot = ChemicalHolding.model_validate({**base, "above_boiling_point": True}).holding()
    assert (hot.critical_quantity_t, hot.beta) == (Fraction(10), Fraction(3, 2))  # W5.1
    with pytest.raises(ValueError, match="flammable liquid"):
        ChemicalHolding(name="氯", max_quantity_t=1, above_boiling_point=True)


# -- defect 4: categories and overrides --------------------------------------------------------
def test_an_unknown_category_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown hazard category 'X9'"):
        ChemicalHolding(name="某物质", max_quantity_t=1, category="X9")


def test_an_unnamed_substance_needs_its_category_even_with_a_q() -> None:
    with pytest.raises(ValueError, match="give its hazard category"):
        ChemicalHolding(name="某毒性气体", max_quantity_t=1, critical_quantity_t=5)
    toxic = ChemicalHolding(name="某毒性气体", max_quantity_t=1, category="J1").holding()
    assert (toxic.critical_quantity_t, toxic.beta) == (Fraction(5), Fraction(4))


def test_a_q_other_than_table_1_needs_a_justification_and_is_reported(
    tmp_path: Path, database_url: str
) -> None:
    with pytest.raises(ValueError, match=r"differs from 5 t of GB 18218-2018 表1 序号12"):
        ChemicalHolding(name="氯", max_quantity_t=40, critical_quantity_t=50)
    justified = "{name: 氯, max_quantity_t: 40, critical_quantity_t: 50, justification: 专家论证 2026-01}"
    text = _devices("{name: 氯, max_quantity_t: 40}", justified)
    devices = tmp_path / "devices.yaml"
    devices.write_text(text, encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "hazardwatch", "check", str(devices)], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "override: Q 50 t instead of 5 t of GB 18218-2018 表1 序号12" in run.stdout
    assert "justification: 专家论证 2026-01" in run.stdout
    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        sync_ledger(conn, load_plant_text(text, "devices.yaml"))
        reason = conn.execute(
            "SELECT g.reason FROM hazard_source_grades g JOIN hazard_sources hs ON hs.id = g.hazard_source_id"
            " WHERE hs.code = 'HS330281002-01'"
        ).fetchone()
    assert reason is not None
    assert "justification: 专家论证 2026-01" in reason[0]  # journaled with the grade
    with pytest.raises(ConfigError, match=r"devices.yaml:[0-9]+: .*give a justification"):
        load_plant_text(_devices("{name: 氯, max_quantity_t: 40}", "{name: 氯, max_quantity_t: 40, "
                                 "critical_quantity_t: 50}"), "devices.yaml")  # fmt: skip


# -- defect 5: gas detector limits -------------------------------------------------------------
def _gas_tag(gas: str, limits: dict[str, float], unit: str = "mg/m³") -> Tag:
    spec = {"code": "AT1", "name": "gas", "kind": "gas_toxic", "gas": gas, "unit": unit, "range": [0, 200],
            "limits": limits, "modbus": {"device": "d", "address": 0}}  # fmt: skip
    return Tag.model_validate(spec)


@pytest.mark.parametrize("gas", ["氨", "一氧化碳"])
def test_ammonia_and_co_alarm_at_their_pc_stel(gas: str) -> None:
    tag = _gas_tag(gas, {})
    assert (tag.effective_limits.h, tag.effective_limits.hh) == (30, 60)  # GBZ 2.1-2019 PC-STEL 30
    assert _gas_tag(gas, {"h": 30, "hh": 60}).gas_findings() == []


def test_a_toxic_gas_outside_the_oel_table_is_accepted_with_its_limits() -> None:
    assert _gas_tag("丙烯腈", {"h": 2, "hh": 4}).gas_findings() == []
    assert any("give its limits" in f for f in _gas_tag("丙烯腈", {}).gas_findings())


def test_h_without_hh_is_still_checked_below_the_default_hh() -> None:
    with pytest.raises(ValueError, match=r"H \(60.0\) must be below HH \(60.0\)"):
        _gas_tag("氨", {"h": 60})
    assert _gas_tag("氨", {"h": 25}).effective_limits.hh == 60


# -- the tables --------------------------------------------------------------------------------
def test_table_1_has_all_85_rows_each_cited() -> None:
    rows = tables().named
    assert [r.no for r in rows] == list(range(1, 86))
    assert all(r.source == f"GB 18218-2018 表1 序号{r.no}" for r in rows)
    expected_q = {
        "碳酰氯": "0.3", "氟化氢": "1", "氰化氢": "1", "乙炔": "1", "氯": "5", "硫化氢": "5", "氢": "5",
        "1,3-丁二烯": "5", "氨": "10", "环氧乙烷": "10", "二氧化硫": "20", "氯化氢(无水)": "20",
        "甲烷": "50", "天然气": "50", "液化石油气": "50", "氯乙烯": "50", "乙烯": "50", "苯": "50",
        "二甲醚": "50", "氧": "200", "汽油": "200", "甲醇": "500", "甲苯": "500", "丙酮": "500",
        "乙醇": "500", "苯乙烯": "500", "异氰酸甲酯": "0.75", "磷化氢": "1", "二氧化氮": "1",
    }  # fmt: skip
    for name, q in expected_q.items():
        found = lookup(name)
        assert found is not None, name
        assert found.critical_quantity_t == Fraction(q), name
    assert lookup("氯化氢（无水）") is lookup("氯化氢(无水)")  # full-width brackets read alike


# -- the table-driven walk ---------------------------------------------------------------------
# (case, holdings [(name, q, category)], people, S, R, grade); S and R as exact decimal text
Case = tuple[str, list[tuple[str, str, str | None]], int, str, str, int | None]

# α band edges: 25 t of chlorine (S = 5, Σβq/Q = 20), R = 20α
ALPHA_CASES: list[Case] = [
    (f"alpha-{people}", [("氯", "25", None)], people, "5", r, g)
    for people, r, g in [(0, "10", 3), (1, "20", 3), (29, "20", 3), (30, "24", 3), (49, "24", 3),
                         (50, "30", 3), (99, "30", 3), (100, "40", 3), (100_000, "40", 3)]
]  # fmt: skip
# grade edges: chlorine with one person exposed, S = q/5, R = 4 × q/5 = 0.8 q
GRADE_CASES: list[Case] = [
    ("R=10", [("氯", "12.5", None)], 1, "2.5", "10", 3),
    ("R=10+1e-9", [("氯", "12.50000000125", None)], 1, "2.50000000025", "10.000000001", 3),
    ("R=10-1e-9", [("氯", "12.49999999875", None)], 1, "2.49999999975", "9.999999999", 4),
    ("R=50", [("氯", "62.5", None)], 1, "12.5", "50", 2),
    ("R=50+1e-9", [("氯", "62.50000000125", None)], 1, "12.50000000025", "50.000000001", 2),
    ("R=50-1e-9", [("氯", "62.49999999875", None)], 1, "12.49999999975", "49.999999999", 3),
    ("R=100", [("氯", "125", None)], 1, "25", "100", 1),
    ("R=100+1e-9", [("氯", "125.00000000125", None)], 1, "25.00000000025", "100.000000001", 1),
    ("R=100-1e-9", [("氯", "124.99999999875", None)], 1, "24.99999999975", "99.999999999", 2),
]
S_CASES: list[Case] = [
    ("S=1 one", [("氯", "5", None)], 1, "1", "4", 4),
    ("S=1 three", [("氯", "3", None), ("氨", "3", None), ("二氧化硫", "2", None)], 1, "1", "3.2", 4),
    ("S=1 tenths", [("液化石油气", "5", None), ("液化石油气", "15", None), ("液化石油气", "30", None)], 1,
     "1", "1.5", 4),
    ("S=1-1e-9", [("氯", "4.999999995", None)], 1, "0.999999999", "3.999999996", None),
    ("S=1+1e-9", [("氯", "5.000000005", None)], 1, "1.000000001", "4.000000004", 4),
]  # fmt: skip
# every 表3 gas: q = its 表1 Q (S = 1), one person: R = β
TABLE3 = {"一氧化碳": "2", "二氧化硫": "2", "氨": "2", "环氧乙烷": "2", "氯化氢": "3", "溴甲烷": "3",
          "氯": "4", "硫化氢": "5", "氟化氢": "5", "二氧化氮": "10", "氰化氢": "10", "碳酰氯": "20",
          "磷化氢": "20", "异氰酸甲酯": "20"}  # fmt: skip
_Q1 = {"一氧化碳": "20", "二氧化硫": "20", "氨": "10", "环氧乙烷": "10", "氯化氢": "20", "溴甲烷": "10",
       "氯": "5", "硫化氢": "5", "氟化氢": "1", "二氧化氮": "1", "氰化氢": "1", "碳酰氯": "0.3",
       "磷化氢": "1", "异氰酸甲酯": "0.75"}  # fmt: skip
TABLE3_CASES: list[Case] = [
    (f"表3 {name}", [(name, _Q1[name], None)], 1, "1", beta, 3 if Fraction(beta) >= 10 else 4)
    for name, beta in TABLE3.items()
]
# every 表2 category: an unnamed substance at its category's Q (S = 1), one person: R = β (表4)
TABLE2 = {"J1": ("5", "4"), "J2": ("50", "1"), "J3": ("50", "2"), "J4": ("50", "2"), "J5": ("500", "1"),
          "W1.1": ("1", "2"), "W1.2": ("10", "2"), "W1.3": ("50", "2"), "W2": ("10", "1.5"),
          "W3": ("150", "1"), "W4": ("200", "1"), "W5.1": ("10", "1.5"), "W5.2": ("50", "1"),
          "W5.3": ("1000", "1"), "W5.4": ("5000", "1"), "W6.1": ("10", "1.5"), "W6.2": ("50", "1"),
          "W7.1": ("10", "1.5"), "W7.2": ("50", "1"), "W8": ("50", "1"), "W9.1": ("50", "1"),
          "W9.2": ("200", "1"), "W10": ("200", "1"), "W11": ("200", "1")}  # fmt: skip
TABLE2_CASES: list[Case] = [
    (f"表2 {symbol}", [("未列名物质", q, symbol)], 1, "1", beta, 4) for symbol, (q, beta) in TABLE2.items()
]
CASES = ALPHA_CASES + GRADE_CASES + S_CASES + TABLE3_CASES + TABLE2_CASES


def _ids(cases: list[Case]) -> Iterator[str]:
    return (c[0] for c in cases)


def test_the_walk_covers_what_the_issue_asks() -> None:
    assert len(CASES) >= 40
    assert set(TABLE2) == set(tables().categories)
    assert set(TABLE3) == set(tables().toxic_gases)


@pytest.mark.parametrize(("case", "holdings", "people", "s", "r", "expected"), CASES, ids=list(_ids(CASES)))
def test_gb18218_grading_table(
    case: str, holdings: list[tuple[str, str, str | None]], people: int, s: str, r: str, expected: int | None
) -> None:
    # the ledger's quantities arrive as YAML floats: they must grade as the decimals they were written as
    result = grade(
        [{"name": n, "max_quantity_t": float(q), **({"category": c} if c else {})} for n, q, c in holdings],
        people,
    )
    assert (result.s, result.r, result.grade) == (Fraction(s), Fraction(r), expected), case
    assert result.is_major == (expected is not None)
    if case.startswith("表2"):
        ((name, _, symbol),) = holdings
        held = ChemicalHolding(name=name, max_quantity_t=1, category=symbol).resolved()
        assert held.q_source == f"GB 18218-2018 表2 {symbol}"
        assert held.beta_source == f"GB 18218-2018 表4 {symbol}"


def test_holdings_given_as_fractions_grade_the_same() -> None:
    assert grade_hazard_source([Holding.of("10.7", 5, 4), Holding.of("7.2", 10, 2)], 1).r == 10


# -- the migration regrades what is stored and journals it ---------------------------------------
def test_the_migration_regrades_stored_sources_and_journals_each_change(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = next(m.version for m in ingest.migrate.available("plain") if m.name == "grade_exact")
    before = ingest.migrate.available
    monkeypatch.setattr(ingest.migrate, "available", lambda b: [m for m in before(b) if m.version < ours])
    migrate(database_url)
    stored = [  # code, s, r, grade as an earlier version stored them
        ("HS-ONE", 0.9999999999999999, 3.9999999999999996, 4),  # S = 1 on paper: major, 四级
        ("HS-LOW", 0.8, 6.4, 4),  # S < 1: not major
        ("HS-TEN", 2.86, 9.999999999999998, 4),  # R = 10 on paper: 三级
        ("HS-SAME", 5.4, 14.4, 3),  # unchanged
    ]
    with psycopg.connect(database_url) as conn:
        eid = conn.execute(
            "INSERT INTO enterprises (code, name, credit_code, division) VALUES"
            " ('E1', 'e', '91330110MA2H3K7L01', '330110') RETURNING id"
        ).fetchone()
        assert eid is not None
        for code, s, r, g in stored:
            conn.execute(
                "INSERT INTO hazard_sources (enterprise_id, code, name, people_within_500m, s, r, grade,"
                " principal, technical, operational) VALUES (%s, %s, %s, 1, %s, %s, %s, 'a', 'b', 'c')",
                (eid[0], code, code, s, r, g),
            )
    monkeypatch.setattr(ingest.migrate, "available", before)
    _, applied = migrate(database_url)
    assert applied[0].endswith("_grade_exact")
    with psycopg.connect(database_url) as conn:
        grades: dict[str, int | None] = dict(
            conn.execute("SELECT code, grade FROM hazard_sources").fetchall()
        )
        journal = {
            code: (from_grade, to_grade, reason, actor)
            for code, from_grade, to_grade, reason, actor in conn.execute(
                "SELECT hs.code, g.from_grade, g.grade, g.reason, g.actor FROM hazard_source_grades g"
                " JOIN hazard_sources hs ON hs.id = g.hazard_source_id"
            ).fetchall()
        }
    assert grades == {"HS-ONE": 4, "HS-LOW": None, "HS-TEN": 3, "HS-SAME": 3}
    assert set(journal) == {"HS-LOW", "HS-TEN"}  # each grade that changed, once
    assert journal["HS-LOW"][:2] == (4, None)
    assert journal["HS-LOW"][2].startswith("四级 → 非重大危险源: S = 0.8")
    assert journal["HS-TEN"][:2] == (4, 3)
    assert journal["HS-TEN"][2].startswith("四级 → 三级: S = 2.86, R = 10 ")
    assert journal["HS-TEN"][3].endswith("_grade_exact")


def test_the_sample_plant_keeps_its_documented_grades_through_a_resync(conn: Conn) -> None:
    grades: dict[str, int | None] = dict(conn.execute("SELECT code, grade FROM hazard_sources").fetchall())
    assert grades == {"HS330110001-01": 3, "HS330110001-02": 4, "HS330281002-01": 2, "HS330281002-02": 4}
    assert DEFAULT.grading.priority("HIGH", 1, None) == 2  # no grade: nothing raised


async def test_the_ledger_api_names_a_non_major_source_so(database_url: str) -> None:
    from tests.test_dashboard_api import AWAY, logged_in, running, seed

    seeded = seed(database_url, load_plant_text(_devices(*NOT_MAJOR_DEVICES), "devices.yaml"))
    with psycopg.connect(seeded.url) as conn:
        ids = {str(c): int(i) for c, i in conn.execute("SELECT code, id FROM enterprises").fetchall()}
    async with running(seeded.url) as (server, _), logged_in(server, "jianguan") as user:
        status, body = await user.get(f"/api/v1/enterprises/{ids[AWAY]}")
        assert status == 200
        sources = {hs["code"]: hs for hs in body["enterprise"]["hazard_sources"]}
        store = sources["HS330281002-01"]
        assert (store["grade"], store["grade_name"], store["major"]) == (None, "非重大危险源", False)
        assert store["risk_inherent"] == 4  # no inherent points from a grade it does not have
        assert sources["HS330281002-02"]["grade_name"] == "四级"
        assert sources["HS330281002-02"]["grade_terms"] == "2 × (1.5×3/5 + 3×10/20)"
        status, body = await user.get("/api/v1/enterprises")
        listed = {e["code"]: e for e in body["enterprises"]}
        assert (listed[AWAY]["grade"], listed[AWAY]["major_hazard_sources"]) == (4, 1)


def test_a_resync_that_only_fills_in_the_terms_journals_nothing(conn: Conn) -> None:
    """Sources graded before the terms were kept (grade_terms '' after the migration) get them on
    the next sync; their grade did not change, so no history row says it did."""
    conn.execute("UPDATE hazard_sources SET grade_terms = ''")
    conn.execute("DELETE FROM hazard_source_grades")
    sync_ledger(conn, load_plant(SAMPLE_DEVICES))
    assert conn.execute("SELECT count(*) FROM hazard_source_grades").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM hazard_sources WHERE grade_terms = ''").fetchone() == (0,)


def test_an_exact_figure_of_any_size_is_shown() -> None:
    assert decimal_text(Fraction(10**30)) == "1" + "0" * 30
    assert decimal_text(Fraction(1, 3)) == "0.3333"
