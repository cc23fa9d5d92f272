"""Bad command-line arguments are a clear one-line error and exit 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import free_port


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["deadletters", "--limit", "-1"], "argument --limit: must be at least 1, not -1"),
        (["deadletters", "--limit", "many"], "argument --limit: not a whole number: 'many'"),
        (["online", "--hours", "0"], "argument --hours: must be a positive number, not 0"),
        (["online", "--hours", "nan"], "argument --hours: must be a positive number, not nan"),
        (
            ["simulate", "--scenario", "overfill", "--hold", "-1"],
            "argument --hold: must be a non-negative number",
        ),
        (["workflows", "--interval", "0"], "argument --interval: must be a positive number, not 0"),
    ],
)
def test_a_bad_number_is_refused_by_name(args: list[str], message: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "hazardwatch", *args], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr


def test_a_scenario_on_an_unknown_tag_says_which_tags_fit() -> None:
    control = f"127.0.0.1:{free_port()}"  # no simulator there: the command starts one, which refuses
    args = ["simulate", "--scenario", "overfill", "--tag", "NOPE", "--control", control]
    run = subprocess.run(
        [sys.executable, "-m", "hazardwatch", *args], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2
    assert "error: overfill cannot drive tag 'NOPE'; valid level tags: E330110001/LT101" in run.stderr
    assert "Traceback" not in run.stderr
