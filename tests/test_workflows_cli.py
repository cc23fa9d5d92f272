"""`hazardwatch workflows` as a process: a policy file, the secret from the environment, a real
webhook receiver; one tick with --once, and the long-running loop stopped by SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from hazardwatch.clock import SystemClock
from hazardwatch.ledger import Plant
from tests.workflow_support import (
    ENVIRON,
    Receiver,
    raise_alarm,
    receiving,
    seed,
    source_tags,
    webhook_policy,
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


def _setup(database_url: str, plant: Plant, receiver: Receiver, tmp_path: Path) -> dict[str, str]:
    tags = seed(database_url, plant)
    policy = tmp_path / "policy.yaml"
    doc = webhook_policy(receiver).model_dump(mode="json", exclude_defaults=True)
    policy.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with psycopg.connect(database_url, autocommit=True) as conn:
        raise_alarm(conn, source_tags(tags)[0], SystemClock())
    return {**os.environ, **ENVIRON, "HW_DATABASE_URL": database_url, "HW_POLICY": str(policy)}


def test_once_runs_one_tick(
    database_url: str, sample_plant: Plant, receiver: Receiver, tmp_path: Path
) -> None:
    env = _setup(database_url, sample_plant, receiver, tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "hazardwatch", "workflows", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "sent 1" in result.stdout
    [request] = receiver.requests
    assert request.path == "/operational"
    assert request.signed


def test_without_its_secret_it_refuses_to_start(
    database_url: str, sample_plant: Plant, receiver: Receiver, tmp_path: Path
) -> None:
    env = _setup(database_url, sample_plant, receiver, tmp_path)
    env.pop("HW_TEST_WEBHOOK_SECRET")
    result = subprocess.run(
        [sys.executable, "-m", "hazardwatch", "workflows", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "HW_TEST_WEBHOOK_SECRET" in result.stderr
    assert receiver.requests == []


def test_the_loop_notifies_and_stops_on_sigterm(
    database_url: str, sample_plant: Plant, receiver: Receiver, tmp_path: Path
) -> None:
    env = _setup(database_url, sample_plant, receiver, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hazardwatch", "workflows", "--interval", "0.2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not receiver.requests and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)  # waiting for another process's effect, not for a timer
        assert len(receiver.requests) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
