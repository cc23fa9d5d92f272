"""The devices file schema, its line-numbered errors and GB 18218 grading."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import psycopg
import pytest

from hazardwatch.errors import ConfigError
from hazardwatch.ledger import Plant, load_plant, load_plant_text
from hazardwatch.ledger.grading import Holding, alpha_for, grade_hazard_source
from hazardwatch.ledger.models import credit_code_check_char
from ingest.ledger_sync import sync_ledger
from ingest.migrate import migrate
from tests.support import SAMPLE_DEVICES


def test_worked_example_of_domain_brief_is_grade_three() -> None:
    result = grade_hazard_source([Holding.of(120, 50, 1.5), Holding.of(30, 10, 2)], people_within_500m=60)
    assert result.s == Fraction("5.4")
    assert result.r == Fraction("14.4")
    assert result.is_major
    assert result.grade_name == "三级"


@pytest.mark.parametrize(
    ("people", "alpha"),
    [(0, 0.5), (1, 1.0), (29, 1.0), (30, 1.2), (49, 1.2), (50, 1.5), (99, 1.5), (100, 2.0)],
)
def test_alpha_by_people_within_500m(people: int, alpha: float) -> None:
    assert alpha_for(people) == Fraction(str(alpha))


@pytest.mark.parametrize(("r", "grade"), [(100, 1), (99.9, 2), (50, 2), (49.9, 3), (10, 3), (9.99, 4)])
def test_grade_boundaries(r: float, grade: int) -> None:
    # one holding with q/Q = r, β = 1, α = 1
    assert grade_hazard_source([Holding.of(r, 1, 1)], people_within_500m=10).grade == grade


def test_sample_plant_grades(sample_plant: Plant) -> None:
    grades = {h.code: h.grade().grade_name for e in sample_plant.enterprises for h in e.hazard_sources}
    assert grades == {
        "HS330110001-01": "三级",
        "HS330110001-02": "四级",
        "HS330281002-01": "二级",
        "HS330281002-02": "四级",
    }
    assert sum(1 for _ in sample_plant.iter_tags()) >= 40
    assert {e.division for e in sample_plant.enterprises} == {"330110", "330281"}


def test_credit_code_check_character() -> None:
    # 91350100M000100Y43 is a published example code of GB 32100.
    assert credit_code_check_char("91350100M000100Y4") == "3"


def _broken(old: str, new: str) -> str:
    text = SAMPLE_DEVICES.read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new, 1)


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_unknown_field_is_reported_with_its_line() -> None:
    text = _broken("address: 浙江省杭州市余杭区临港路 18 号", "adress: typo")
    with pytest.raises(ConfigError) as info:
        load_plant_text(text, "devices.yaml")
    assert f"devices.yaml:{_line_of(text, 'adress: typo')}:" in str(info.value)
    assert "adress" in str(info.value)


def test_unordered_limits_are_an_error_at_the_tag_line() -> None:
    text = _broken("{ll: 10, l: 15, h: 85, hh: 90}", "{ll: 10, l: 15, h: 95, hh: 90}")
    with pytest.raises(ConfigError, match=r"H \(95.0\) must be below HH \(90.0\)") as info:
        load_plant_text(text, "devices.yaml")
    assert f"devices.yaml:{_line_of(text, 'h: 95, hh: 90')}:" in str(info.value)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "modbus: {device: plc-lpg, address: 2, datatype: float32}",
            "modbus: {device: plc-lpg, address: 1, datatype: float32}",
            "already used by LT101",
        ),
        ("{code: PT101,", "{code: LT101,", "duplicate tag code 'LT101'"),
        ("credit_code: 91330110MA2H3K7L01", "credit_code: 91330110MA2H3K7L02", "GB 32100 expects 1"),
        (
            "device: plc-nh3, address: 0, datatype: float32",
            "device: plc-xyz, address: 0, datatype: float32",
            "no device 'plc-xyz'",
        ),
        ('division: "330110"', 'division: "33011"', "String should match pattern"),
        (
            "{name: 液化石油气, max_quantity_t: 120}",
            "{name: 未知物质, max_quantity_t: 120}",
            "is not named in GB 18218-2018 表1: give its hazard category",
        ),
        (
            '- {code: LT101, name: 1#球罐液位, kind: level, unit: "%", range: [0, 100]',
            '- {code: LT101, name: 1#球罐液位, kind: level, unit: "%", range: [100, 0]',
            "finite and increasing",
        ),
    ],
)
def test_invalid_ledgers_are_rejected(old: str, new: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"devices.yaml:[0-9]+:") as info:
        load_plant_text(_broken(old, new), "devices.yaml")
    assert message in str(info.value)


def test_cross_reference_errors_point_at_the_tag() -> None:
    text = _broken("{code: PT101,", "{code: LT101,")
    with pytest.raises(ConfigError) as info:
        load_plant_text(text, "devices.yaml")
    second = [i for i, line in enumerate(text.splitlines(), 1) if "{code: LT101," in line][-1]
    assert f"devices.yaml:{second}:" in str(info.value)


def test_broken_yaml_reports_its_line() -> None:
    with pytest.raises(ConfigError, match=r"devices.yaml:4: not valid YAML"):
        load_plant_text("version: 1\nenterprises:\n  - {code: [\n", "devices.yaml")


def test_a_key_given_twice_is_an_error_at_both_lines() -> None:
    """YAML lets the last key win: a second hh, or a second code, would change the ledger silently."""
    text = _broken("{ll: 10, l: 15, h: 85, hh: 90}", "{ll: 10, l: 15, h: 85, hh: 90, hh: 99}")
    text = text.replace(
        "credit_code: 91330110MA2H3K7L01", "credit_code: 91330110MA2H3K7L01\n    code: E330110009", 1
    )
    with pytest.raises(ConfigError) as info:
        load_plant_text(text, "devices.yaml")
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    code_line, hh_line = _line_of(text, "code: E330110009"), _line_of(text, "hh: 90, hh: 99")
    assert lines[0].startswith(f"devices.yaml:{code_line}: key 'code' given twice (first at line ")
    assert lines[1] == f"devices.yaml:{hh_line}: key 'hh' given twice (first at line {hh_line})"


def test_a_file_that_is_not_utf8_is_an_error_at_its_line(tmp_path: Path) -> None:
    devices = tmp_path / "devices.yaml"
    devices.write_bytes(b"version: 1\nenterprises:\n  - name: \xff\n")
    with pytest.raises(ConfigError, match=r"devices.yaml:3: not UTF-8 text \(byte 34: 0xff\)"):
        load_plant(devices)
    run = subprocess.run([sys.executable, "-m", "hazardwatch", "check", str(devices)], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert run.returncode != 0
    assert "not UTF-8 text" in run.stderr
    assert "Traceback" not in run.stderr


def test_gas_tags_get_gb_50493_defaults_and_findings(sample_plant: Plant) -> None:
    text = SAMPLE_DEVICES.read_text(encoding="utf-8")
    assert [f for *_, tag in sample_plant.iter_tags() for f in tag.gas_findings()] == []
    gt401 = 'opcua: {device: dcs, node: "ns=2;s=A401.GT1"}'
    at301 = 'range: [0, 10], limits: {h: 1, hh: 2}, opcua: {device: dcs, node: "ns=2;s=A301.AT1"}'
    for old in (f"limits: {{h: 25, hh: 50}}, {gt401}", f"unit: mg/m³, {at301}", "limits: {h: 7.5, hh: 15}"):
        assert old in text
    plant = load_plant_text(
        text.replace(f"limits: {{h: 25, hh: 50}}, {gt401}", gt401)  # GT401: no limits
        .replace(f"unit: mg/m³, {at301}", f"unit: ppm, {at301.replace('limits: {h: 1, hh: 2}, ', '')}")
        .replace("limits: {h: 7.5, hh: 15}", "limits: {h: 10, hh: 15}")  # HCl above its OEL
    )
    tags = {tag.code: tag for *_, tag in plant.iter_tags()}
    assert (tags["GT401"].effective_limits.h, tags["GT401"].effective_limits.hh) == (25, 50)
    chlorine = tags["AT301"].effective_limits  # 1 mg/m³ of Cl₂ (70.9 g/mol) is 0.345 ppm at 25 ℃
    assert chlorine.h == pytest.approx(0.345)
    assert chlorine.hh == pytest.approx(0.69)
    assert any("defaults 25/50" in f for f in tags["GT401"].gas_findings())
    assert any("h = 10 mg/m³ is above 7.5" in f for f in tags["AT401"].gas_findings())
    assert tags["LT101"].gas_findings() == []


def test_delays_default_by_tag_kind(sample_plant: Plant) -> None:
    tags = {tag.code: tag for *_, tag in sample_plant.iter_tags()}
    assert tags["LT101"].effective_delays_s == (60.0, 60.0)  # level
    assert tags["PT101"].effective_delays_s == (15.0, 15.0)  # pressure
    assert tags["GT101"].effective_delays_s == (0.0, 0.0)  # gas alarms at once


def test_check_command_reports_gas_findings(tmp_path: Path) -> None:
    devices = tmp_path / "devices.yaml"
    devices.write_text(_broken("limits: {h: 7.5, hh: 15}", "limits: {h: 10, hh: 15}"), encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "hazardwatch", "check", str(devices)], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert run.returncode == 1
    assert "AT401" in run.stderr
    assert "GB/T 50493-2019" in run.stderr
    ok = subprocess.run([sys.executable, "-m", "hazardwatch", "check", str(SAMPLE_DEVICES)],
                        capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ok.returncode == 0, ok.stderr


def test_a_gas_limit_above_the_standard_is_stored_and_warned_of_at_sync(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    plant = load_plant_text(_broken("limits: {h: 7.5, hh: 15}", "limits: {h: 10, hh: 15}"), "devices.yaml")
    migrate(database_url)
    with caplog.at_level("WARNING", logger="ingest.ledger_sync"), psycopg.connect(database_url) as conn:
        sync_ledger(conn, plant)
        stored = conn.execute("SELECT h FROM tags WHERE code = 'AT401'").fetchone()
    assert stored == (10.0,)  # the plant's ledger is the record
    warned = [r.getMessage() for r in caplog.records if "AT401" in r.getMessage()]
    assert len(warned) == 1
    assert "GB/T 50493-2019" in warned[0]


def test_a_document_that_explodes_through_its_aliases_or_nests_too_deep_is_refused() -> None:
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)},"
        f" *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)
    )  # 10^9 strings once expanded
    with pytest.raises(
        ConfigError, match=r"devices.yaml:1: the document expands to more than 1,000,000 nodes"
    ):
        load_plant_text(laughs, "devices.yaml")
    with pytest.raises(ConfigError, match=r"devices.yaml:1: the document is nested too deeply"):
        load_plant_text("version: 1\nenterprises: " + "[" * 20_000 + "]" * 20_000 + "\n", "devices.yaml")
    shared = "x: &limits {ll: 10, l: 15, h: 85, hh: 90}\n"  # an alias or two is fine: a validation error
    with pytest.raises(ConfigError, match=r"devices\.yaml:[0-9]+: .*version"):
        load_plant_text(shared + "y: *limits\n", "devices.yaml")
