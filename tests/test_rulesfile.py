"""The rules file over the devices file, and composites in devices.yaml: schema, errors with their
YAML line, and `hazardwatch check --rules`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from hazardwatch.errors import ConfigError
from hazardwatch.ledger import Plant, load_plant
from hazardwatch.ledger.rulesfile import with_rules
from tests.support import ROOT, SAMPLE_DEVICES, sample_plant_doc, write_plant

FARM = "E330110001/HS330110001-01"

RULES = f"""\
version: 1
tags:
  - tag: E330110001/LT101
    limits: {{h: 87, ll: null}}
    on_delay_s: 30
  - tag: E330110001/PT101
    roc: null
    deadband_pct: 3
hazard_sources:
  - hazard_source: {FARM}
    voting:
      - {{code: GV101, tags: [GT101, GT102, GT103], k: 3}}
      - {{code: GV102, tags: [GT105, GT106], k: 2}}
    source_warning: {{min_tags: 3, conditions: [HIGH]}}
  - hazard_source: E330110001/HS330110001-02
    source_warning: null
"""


def _write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _tag(plant: Plant, code: str) -> object:
    return next(tag for *_, tag in plant.iter_tags() if tag.code == code)


def test_a_rules_file_changes_only_what_it_names(tmp_path: Path, sample_plant: Plant) -> None:
    ruled = with_rules(sample_plant, _write(tmp_path, RULES))
    tags = {tag.code: tag for *_, tag in ruled.iter_tags()}
    before = {tag.code: tag for *_, tag in sample_plant.iter_tags()}
    lt101 = tags["LT101"]
    assert (lt101.limits.ll, lt101.limits.l, lt101.limits.h, lt101.limits.hh) == (None, 15, 87, 90)
    assert lt101.effective_delays_s == (30.0, 60.0)  # the off-delay keeps its default
    assert lt101.predict == before["LT101"].predict
    assert tags["PT101"].roc is None
    assert tags["PT101"].effective_deadband == pytest.approx(2.5 * 0.03)
    assert {code: tag for code, tag in tags.items() if code not in ("LT101", "PT101")} == {
        code: tag for code, tag in before.items() if code not in ("LT101", "PT101")
    }
    farm, ammonia = ruled.enterprises[0].hazard_sources
    assert [(g.code, g.k) for g in farm.voting] == [("GV101", 3), ("GV102", 2)]  # replaced by code, added
    assert farm.source_warning is not None
    assert (farm.source_warning.min_tags, farm.source_warning.conditions) == (3, ["HIGH"])
    assert ammonia.source_warning is None


@pytest.mark.parametrize(
    ("entry", "line", "message"),
    [
        ("  - tag: E330110001/LT999\n    on_delay_s: 5\n", 3, "unknown tag E330110001/LT999"),
        ("  - tag: E330110001/LT101\n    limits: {h: 95}\n", 3, "H (95.0) must be below HH (90.0)"),
        ("  - tag: E330110001/LT101\n    deadband_pct: 80\n", 4, "less than or equal to 50"),
        ("  - tag: E330110001/LT101\n    on_delay: 5\n", 4, "Extra inputs are not permitted"),
        ("  - tag: E330110001/GT101\n    limits: {h: null, hh: null}\n    predict: {response_s: 60}\n", 3,
         "predict needs at least one limit"),
        ("  - tag: LT101\n", 3, "String should match pattern"),
    ],
)  # fmt: skip
def test_rules_file_errors_name_the_line(tmp_path: Path, sample_plant: Plant, entry: str, line: int,
                                         message: str) -> None:  # fmt: skip
    path = _write(tmp_path, "version: 1\ntags:\n" + entry)
    with pytest.raises(ConfigError) as raised:
        with_rules(sample_plant, path)
    assert f"{path}:{line}:" in str(raised.value)
    assert message in str(raised.value)


def test_voting_groups_in_a_rules_file_are_cross_checked(tmp_path: Path, sample_plant: Plant) -> None:
    text = f"version: 1\nhazard_sources:\n  - hazard_source: {FARM}\n    voting:\n"
    for group, message in [
        ("{code: G1, tags: [GT101, AT201], k: 2}", "tag AT201 is not in hazard source HS330110001-01"),
        ("{code: G1, tags: [GT101, GT102], k: 3}", "k (3) exceeds its 2 tags"),
        ("{code: G1, tags: [GT101, GT101], k: 1}", "a tag is listed twice"),
        ("{code: G1, tags: [GT101], k: 1}", "at least 2 items"),
        ("{code: G1, tags: [GT101, GT102], k: 2, condition: LOW}", "tag GT101 has no L/LL limit to vote on"),
    ]:
        path = _write(tmp_path, text + f"      - {group}\n")
        with pytest.raises(ConfigError, match=re.escape(message)):
            with_rules(sample_plant, path)
    unknown = _write(tmp_path, "version: 1\nhazard_sources:\n  - hazard_source: E330110001/HS9\n")
    with pytest.raises(ConfigError, match=r"rules.yaml:3: hazard_sources\[0\]: unknown hazard source"):
        with_rules(sample_plant, unknown)
    twice = _write(tmp_path, "version: 1\ntags:\n" + "  - {tag: E330110001/LT101, on_delay_s: 1}\n" * 2)
    with pytest.raises(ConfigError, match="tag E330110001/LT101 is listed twice"):
        with_rules(sample_plant, twice)


def test_together_the_settings_are_checked_again(tmp_path: Path, sample_plant: Plant) -> None:
    """A voting group is fine on the devices file's limits, but the same file removes them."""
    text = (
        "version: 1\ntags:\n  - {tag: E330110001/LT101, limits: {ll: null, l: null}}\n"
        f"hazard_sources:\n  - hazard_source: {FARM}\n"
        "    voting: [{code: GL1, tags: [LT101, LT102], k: 2, condition: LOW}]\n"
    )
    with pytest.raises(ConfigError, match="voting group GL1: tag LT101 has no L/LL limit"):
        with_rules(sample_plant, _write(tmp_path, text))


def test_devices_file_voting_errors_name_the_group_line(tmp_path: Path) -> None:
    doc = sample_plant_doc()
    farm = doc["enterprises"][0]["hazard_sources"][0]
    farm["voting"].append({"code": "GV101", "tags": ["GT105", "GT106"], "k": 1})
    path = write_plant(doc, tmp_path)
    with pytest.raises(ConfigError) as raised:
        load_plant(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    line = int(str(raised.value).split(":")[1])
    assert "duplicate voting group code 'GV101'" in str(raised.value)
    assert "GV101" in "\n".join(lines[line - 1 : line + 1])  # the second group, not the hazard source
    assert lines.index(next(x for x in lines if "GV101" in x)) + 1 < line
    farm["voting"] = [{"code": "GV9", "tags": ["GT101", "GT109"], "k": 2}]
    with pytest.raises(ConfigError, match="voting group GV9: tag GT109 is not in hazard source"):
        load_plant(write_plant(doc, tmp_path))
    farm["voting"] = [{"code": "GV9", "tags": ["GT101", "GT102"], "k": 0}]
    with pytest.raises(ConfigError, match="greater than or equal to 1"):
        load_plant(write_plant(doc, tmp_path))
    farm["source_warning"] = {"min_tags": 1}
    with pytest.raises(ConfigError, match="greater than or equal to 2"):
        load_plant(write_plant(doc, tmp_path))


def _check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "hazardwatch", "check", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, **(env or {})})  # fmt: skip


def test_check_validates_a_rules_file_from_the_flag_or_hw_rules(tmp_path: Path) -> None:
    rules = _write(tmp_path, RULES)
    run = _check(str(SAMPLE_DEVICES), "--rules", str(rules))
    assert run.returncode == 0, run.stderr
    assert f"{rules}: OK" in run.stdout
    assert "voting GV101: 3 of GT101 GT102 GT103 on HIGH" in run.stdout
    assert "hazard-source warning: 3 tags with HIGH" in run.stdout
    plain = _check(str(SAMPLE_DEVICES))
    assert "voting GV101: 2 of GT101 GT102 GT103 on HIGH" in plain.stdout
    bad = _write(tmp_path, "version: 1\ntags:\n  - {tag: E330110001/NOPE1, on_delay_s: 1}\n", "bad.yaml")
    run = _check(str(SAMPLE_DEVICES), env={"HW_RULES": str(bad)})
    assert run.returncode == 2
    assert f"{bad}:3: tags[0]: unknown tag E330110001/NOPE1" in run.stderr
    gas = _write(tmp_path, "version: 1\ntags:\n  - {tag: E330110001/GT101, limits: {h: 30}}\n", "gas.yaml")
    run = _check(str(SAMPLE_DEVICES), "--rules", str(gas))
    assert run.returncode == 1  # a tuned gas limit above GB/T 50493 is a finding, as in the devices file
    assert "GT101" in run.stderr


def _hw(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HW_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "hazardwatch", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)


def test_the_ledger_sync_applies_the_rules_file(tmp_path: Path, database_url: str) -> None:
    """What ingest (and `hazardwatch up`, through `migrate --sync`) evaluates is the file's rules."""
    rules = _write(tmp_path, RULES)
    run = _hw("migrate", "--sync", "--devices", str(SAMPLE_DEVICES), "--rules", str(rules),
              database_url=database_url)  # fmt: skip
    assert run.returncode == 0, run.stderr
    with psycopg.connect(database_url) as conn:
        limits = conn.execute("SELECT ll, h, on_delay_s FROM tags WHERE code = 'LT101'").fetchone()
        groups = conn.execute("SELECT code, k FROM vote_groups ORDER BY code").fetchall()
        warning = conn.execute("SELECT warning_min_tags FROM hazard_sources ORDER BY code").fetchall()
    assert limits == (None, 87.0, 30.0)
    assert groups == [("GV101", 3), ("GV102", 2)]
    assert warning == [(3,), (0,), (2,), (2,)]
    refused = _hw("ingest", "--no-sync", "--rules", str(rules), database_url=database_url)
    assert refused.returncode == 2
    assert "--rules takes effect through the ledger sync" in refused.stderr
