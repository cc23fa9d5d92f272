"""An identity the ledger no longer has (a decommissioned gateway, a retired ingest worker) keeps
its secret until revoked: `broker config` names it instead of keeping it in silence."""

from __future__ import annotations

from pathlib import Path

import pytest

from hazardwatch.broker_admin import write_config
from hazardwatch.cli import main
from hazardwatch.ledger import load_plant
from tests.support import SAMPLE_DEVICES


def test_broker_config_names_the_identities_outside_the_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "broker"
    plant = load_plant(SAMPLE_DEVICES)
    assert write_config(directory, plant, ["1", "2"]).stale == []
    assert write_config(directory, plant, ["1"]).stale == ["hw-ingest-2"]
    capsys.readouterr()
    argv = ["broker", "config", "--out", str(directory), "--devices", str(SAMPLE_DEVICES)]
    assert main(argv) == 0
    assert "not in the ledger, still valid: hw-ingest-2" in capsys.readouterr().out
    assert main(["credentials", "revoke", "--platform", "ingest-2", "--broker-dir", str(directory)]) == 0
    assert write_config(directory, plant, ["1"]).stale == []
