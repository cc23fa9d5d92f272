"""The broker's user (``mosquitto``) cannot become root through the directory ``broker config`` writes.

Started by root, Mosquitto drops to the ``mosquitto`` user. Whatever that user can write and root
later reads or chowns is a way up: ``mosquitto.conf`` (a ``user root`` or ``plugin`` line), an
entry of the directory replaced by a symbolic link that the next ``broker config`` run as root
chowns to it, or an env file planted where root looks for credentials.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hazardwatch.broker_admin import ListenerOptions, write_config
from hazardwatch.ledger import load_plant
from hazardwatch.services import ConfiguredMosquitto
from tests.support import SAMPLE_DEVICES, free_port


def _has_mosquitto_user() -> bool:
    return subprocess.run(["id", "mosquitto"], capture_output=True, check=False).returncode == 0


pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None or not _has_mosquitto_user(),
    reason="needs root and a mosquitto user",
)


def as_mosquitto(script: str) -> int:
    return subprocess.run(["runuser", "-u", "mosquitto", "--", "sh", "-c", script], capture_output=True,
                          check=False).returncode  # fmt: skip


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory the mosquitto user can reach (pytest's own are closed to other users)."""
    root = Path(tempfile.mkdtemp(prefix="hw-sr-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def root_file(path: Path) -> Path:
    path.write_text("root's\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def configure(directory: Path, port: int) -> None:
    write_config(directory, load_plant(SAMPLE_DEVICES), ["1"], ListenerOptions(port=port))


def test_the_broker_user_cannot_edit_the_configuration_or_plant_links(open_dir: Path) -> None:
    directory, port = open_dir / "broker", free_port()
    victim = root_file(open_dir / "victim")
    configure(directory, port)
    # what a compromised broker would try, as its own user
    assert as_mosquitto(f"echo 'user root' >> {directory}/mosquitto.conf") != 0
    assert as_mosquitto(f"ln -s {victim} {directory}/data/evil") == 0  # its own directory: allowed
    assert as_mosquitto(f"rm -f {directory}/mosquitto.log; ln -s {victim} {directory}/mosquitto.log") != 0
    assert as_mosquitto(f"mv {directory}/credentials {directory}/gone") != 0
    assert as_mosquitto(f"cat {directory}/credentials/hw-ingest-1.env") != 0
    configure(directory, port)  # root runs it again: it follows no link
    assert victim.stat().st_uid == 0
    assert (directory / "mosquitto.conf").stat().st_uid == 0
    assert (directory / "state.json").stat().st_uid == 0
    assert "user root" not in (directory / "mosquitto.conf").read_text(encoding="utf-8")
    broker = ConfiguredMosquitto(directory, port)  # and it still runs as written, as mosquitto
    broker.start()
    try:
        assert broker.pid is not None
        assert Path(f"/proc/{broker.pid}").stat().st_uid != 0
        assert int((directory / "mosquitto.pid").read_text(encoding="utf-8")) == broker.pid
    finally:
        broker.stop()
    assert "Error" not in (directory / "mosquitto.log").read_text(encoding="utf-8")


def test_a_directory_of_the_older_layout_is_taken_back_without_following_its_links(open_dir: Path) -> None:
    directory, port = open_dir / "broker", free_port()
    configure(directory, port)
    victims = [root_file(open_dir / f"victim{i}") for i in range(3)]
    shutil.chown(directory, "mosquitto", "mosquitto")  # as the previous version left it
    assert (
        as_mosquitto(
            f"cd {directory} && ln -s {victims[0]} data/evil && rm -f .lock mosquitto.log mosquitto.pid && "
            f"ln -s {victims[1]} mosquitto.log && ln -s {victims[2]} mosquitto.pid && "
            f"ln -s {victims[2]} .lock"
        )
        == 0
    )
    configure(directory, port)
    assert [v.stat().st_uid for v in victims] == [0, 0, 0]
    assert [v.read_text(encoding="utf-8") for v in victims] == ["root's\n"] * 3
    assert directory.stat().st_uid == 0
    assert not (directory / "mosquitto.log").is_symlink()
