"""Chatter protection settings: devices.yaml and the rules file (defaults by kind, errors with their
line), through the ledger sync and the tag index into the engine's TagConfig."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest

from hazardwatch.errors import ConfigError
from hazardwatch.ledger import Plant
from hazardwatch.ledger.protection import Delays
from hazardwatch.ledger.rulesfile import with_rules
from ingest.ledger_sync import sync_ledger
from ingest.tagindex import TagIndex

RULES = """\
version: 1
tags:
  - tag: E330110001/LT101
    predict: {response_s: 600, window_s: 300, on_delay_s: 30, off_delay_s: 180}
    fault: {on_delay_s: 5, off_delay_s: 30, margin_pct: 1}
  - tag: E330110001/PT101
    roc: {limit: 0.3, period_s: 60, deadband: 0.1, off_delay_s: 90}
    stale: {off_delay_s: 45}
"""


def test_defaults_by_kind(sample_plant: Plant) -> None:
    tags = {tag.code: tag for *_, tag in sample_plant.iter_tags()}
    lt101 = tags["LT101"].effective_protection
    assert (lt101.fault, lt101.fault_margin) == (Delays(2.0, 10.0), 0.5)  # 0.5 % of 0-100 %
    assert (lt101.predict, lt101.frozen, lt101.stale) == (
        Delays(15.0, 120.0),
        Delays(0.0, 60.0),
        Delays(0.0, 30.0),
    )
    pt101 = tags["PT101"].effective_protection
    assert pt101.roc == Delays(5.0, 30.0)
    assert pt101.roc_deadband == pytest.approx(0.05)  # the tag's deadband (2 % of 2.5 MPa)
    gt101 = tags["GT101"].effective_protection
    assert (gt101.roc.on_s, gt101.predict.on_s) == (0.0, 5.0)  # a gas detector warns sooner
    # reported by exception (an OPC-UA subscription): a change comes once and then nothing while the
    # value holds, so no delay that needs a later reading: FAULT none, ROC and PREDICT no off-delay
    pt301 = tags["PT301"].effective_protection
    assert (pt301.fault, pt301.roc.off_s, pt301.predict.off_s) == (Delays(0.0, 0.0), 0.0, 0.0)


def test_a_rules_file_sets_them_per_tag(tmp_path: Path, sample_plant: Plant) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    tags = {tag.code: tag for *_, tag in with_rules(sample_plant, path).iter_tags()}
    lt101 = tags["LT101"].effective_protection
    assert (lt101.predict, lt101.fault, lt101.fault_margin) == (Delays(30.0, 180.0), Delays(5.0, 30.0), 1.0)
    pt101 = tags["PT101"].effective_protection
    assert (pt101.roc, pt101.roc_deadband, pt101.stale) == (Delays(5.0, 90.0), 0.1, Delays(0.0, 45.0))


@pytest.mark.parametrize(
    ("entry", "line", "message"),
    [
        ("  - tag: E330110001/LT101\n    fault: {on_delay_s: -1}\n", 4, "greater than or equal to 0"),
        ("  - tag: E330110001/LT101\n    fault: {margin_pct: 20}\n", 4, "less than or equal to 10"),
        ("  - tag: E330110001/LT101\n    stale: {off_delay: 5}\n", 4, "Extra inputs are not permitted"),
        ("  - tag: E330110001/LT101\n    predict: {response_s: 60, off_delay_s: 4000}\n", 4,
         "less than or equal to 3600"),
        ("  - tag: E330110001/PT101\n    roc: {limit: 0.3, deadband: -0.1}\n", 4,
         "greater than or equal to 0"),
    ],
)  # fmt: skip
def test_errors_name_their_line(
    tmp_path: Path, sample_plant: Plant, entry: str, line: int, message: str
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\ntags:\n" + entry, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        with_rules(sample_plant, path)
    assert f"{path}:{line}:" in str(raised.value)
    assert message in str(raised.value)


def test_the_sync_stores_them_and_the_index_loads_them_into_the_engine(
    tmp_path: Path, sample_plant: Plant, conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    sync_ledger(conn, with_rules(sample_plant, path))
    index = TagIndex.load(conn)
    cfg = index.config
    lt101, pt101, gt101 = (index.by_code[("E330110001", code)] for code in ("LT101", "PT101", "GT101"))
    assert (cfg.predict_on_delay_ms[lt101], cfg.predict_off_delay_ms[lt101]) == (30_000, 180_000)
    assert (cfg.fault_on_delay_ms[lt101], cfg.fault_off_delay_ms[lt101], cfg.fault_margin[lt101]) == (
        5_000, 30_000, 1.0,
    )  # fmt: skip
    assert (cfg.roc_off_delay_ms[pt101], cfg.roc_deadband[pt101], cfg.stale_off_delay_ms[pt101]) == (
        90_000, 0.1, 45_000,
    )  # fmt: skip
    assert (cfg.fault_on_delay_ms[gt101], cfg.predict_on_delay_ms[gt101], cfg.roc_on_delay_ms[gt101]) == (
        2_000, 5_000, 0,
    )  # fmt: skip
    assert cfg.roc_deadband[gt101] == pytest.approx(cfg.deadband[gt101])
    assert np.isnan(cfg.predict_half_share).sum() == 0  # the step test is on everywhere
