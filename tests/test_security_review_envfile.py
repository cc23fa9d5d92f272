"""``--env-file`` chooses a process's settings and carries its secret: only its owner's (or root's)
file is read, only HW_ settings are taken, and writing one never reuses a file someone planted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hazardwatch import envfile
from hazardwatch.errors import ConfigError
from tests.support import SAMPLE_DEVICES

NOBODY = 65534


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hazardwatch", *argv], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_an_env_file_of_another_user_is_refused(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    env = tmp_path / "gw.env"
    env.write_text("HW_DATABASE_URL=postgresql://attacker@203.0.113.9/hw\n", encoding="utf-8")
    env.chmod(0o600)
    os.chown(env, NOBODY, NOBODY)  # private, but another user's: they choose the settings
    with pytest.raises(ConfigError, match="another user"):
        envfile.read(env)
    done = _run("check", str(SAMPLE_DEVICES), "--env-file", str(env))
    assert done.returncode == 2
    assert "another user" in done.stderr


def test_an_env_file_sets_hazardwatch_settings_only(tmp_path: Path) -> None:
    env = tmp_path / "gw.env"
    env.write_text("HW_MQTT_PASSWORD=s\nLD_PRELOAD=/tmp/evil.so\nPYTHONPATH=/tmp/evil\n", encoding="utf-8")
    env.chmod(0o600)
    environ: dict[str, str] = {}
    with pytest.raises(ConfigError, match="LD_PRELOAD, PYTHONPATH"):
        envfile.apply(env, environ)
    assert environ == {}
    done = _run("check", str(SAMPLE_DEVICES), "--env-file", str(env))
    assert done.returncode == 2
    assert "only HW_ settings" in done.stderr


def test_a_fifo_or_a_huge_file_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.env"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(ConfigError, match="not a regular file"):
        envfile.read(fifo)
    big = tmp_path / "big.env"
    big.write_text("HW_X=" + "a" * 200_000 + "\n", encoding="utf-8")
    big.chmod(0o600)
    with pytest.raises(ConfigError, match="larger than"):
        envfile.read(big)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to plant a file as another user")
def test_writing_an_env_file_never_reuses_a_planted_temporary_file(tmp_path: Path) -> None:
    shared = tmp_path / "shared"  # e.g. /tmp, where `credentials issue --out` may be pointed
    shared.mkdir(mode=0o1777)
    shared.chmod(0o1777)
    target = shared / "gw01.env"
    planted = shared / f".gw01.env.{os.getpid()}.tmp"  # the name the writer used to pick
    planted.write_bytes(b"")
    os.chown(planted, NOBODY, NOBODY)
    spy = os.open(planted, os.O_RDONLY)  # the planter keeps a descriptor open
    try:
        envfile.write_private(target, "HW_MQTT_PASSWORD=the-secret\n")
        assert os.read(spy, 100) == b""  # nothing written through the planted file
    finally:
        os.close(spy)
    info = target.stat()
    assert (info.st_uid, info.st_mode & 0o777) == (os.geteuid(), 0o600)
    assert envfile.read(target) == {"HW_MQTT_PASSWORD": "the-secret"}
