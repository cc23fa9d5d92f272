"""`hazardwatch up`: the whole stack comes up, answers, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from hazardwatch.errors import ConfigError
from hazardwatch.services import PrivatePostgres
from tests.support import free_port, plant_doc_on_ports, write_plant

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent


class Output:
    """Collects a process's output on a reader thread so the test can wait for lines."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.text = ""
        self._proc = proc
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.text += line

    def wait_for(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            if time.monotonic() > deadline or self._proc.poll() is not None:
                raise AssertionError(f"{needle!r} did not appear; output:\n{self.text[-4000:]}")
            time.sleep(0.1)


@pytest.fixture
def workdir() -> Iterator[Path]:
    # world-traversable, so a private PostgreSQL can run as the postgres user inside it
    path = Path(tempfile.mkdtemp(prefix="hw-up-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _up(workdir: Path, database_url: str, mqtt_url: str | None, *, via_make: bool = False,
        **extra: str) -> tuple[subprocess.Popen[str], Output, int]:  # fmt: skip
    """`hazardwatch up` (or `make up`) on the sample plant; ``mqtt_url`` None: HW_MQTT_URL unset."""
    devices = workdir / "devices.yaml"
    if not devices.exists():
        write_plant(plant_doc_on_ports(free_port(), free_port()), workdir)
    port = free_port()
    env = dict(os.environ)
    env.pop("HW_MQTT_URL", None)
    if mqtt_url is not None:
        env["HW_MQTT_URL"] = mqtt_url
    env.update(
        HW_DATABASE_URL=database_url,
        HW_DEVICES=str(devices),
        HW_SIM_CONTROL=f"127.0.0.1:{free_port()}",
        HW_DASHBOARD_PORT=str(port),
        HW_VAR_DIR=str(workdir / "var"),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    argv = [sys.executable, "-m", "hazardwatch", "up"]
    if via_make:
        argv = ["make", "--no-print-directory", "-C", str(ROOT), "up"]
    proc = subprocess.Popen(
        argv, env=env, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    return proc, Output(proc), port


def _health(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=5) as response:
        body: dict[str, object] = json.loads(response.read())
        return body


def _stop(proc: subprocess.Popen[str], output: Output) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert code == 0, output.text[-4000:]


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="utf-8").rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize(
    ("via_make", "sig"),
    [(True, signal.SIGINT), (True, signal.SIGTERM), (False, signal.SIGTERM)],
    ids=["make-SIGINT", "make-SIGTERM", "up-SIGTERM"],
)
def test_a_signal_to_the_outer_process_alone_stops_everything(
    workdir: Path, database_url: str, mqtt_port: int, via_make: bool, sig: signal.Signals
) -> None:
    """As a service manager or `kill <pid>` does: no process group, one pid, no child left."""
    proc, output, port = _up(workdir, database_url, f"mqtt://127.0.0.1:{mqtt_port}", via_make=via_make)
    try:
        output.wait_for("HazardWatch is up.", 180)
        started = _descendants(proc.pid)
        assert len(started) >= 5, output.text[-2000:]
        assert _health(port)["database"] == "ok"  # a request: no access log line for it (quiet by default)
        assert "editable_mode" not in output.text
        assert (
            f"{Path(sys.executable).parent}/hazardwatch simulate" in output.text
            or ".venv/bin/hazardwatch simulate" in output.text
        )
        proc.send_signal(sig)
        proc.wait(timeout=60)
        _eventually(lambda: not any(_alive(pid) for pid in started), 10, "every child to stop")
        output._thread.join(5)
        assert "aiohttp.access" not in output.text
        assert "GET /api/v1/health" not in output.text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_taken_port_stops_the_start_with_one_line(workdir: Path, database_url: str, mqtt_port: int) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        proc, output, _ = _up(
            workdir, database_url, f"mqtt://127.0.0.1:{mqtt_port}", HW_DASHBOARD_PORT=str(busy)
        )
        assert proc.wait(timeout=60) == 2
    output._thread.join(5)
    assert f"hazardwatch up: port {busy} for the dashboard is taken" in output.text


def test_a_demo_user_that_cannot_be_created_stops_the_start_with_one_line(
    workdir: Path, database_url: str, mqtt_port: int
) -> None:
    """As after `mv var var.old; make up`: the users exist, with the old password."""
    env = {**os.environ, "HW_DATABASE_URL": database_url}
    hw = [sys.executable, "-m", "hazardwatch"]
    subprocess.run([*hw, "migrate"], env=env, check=True, capture_output=True)
    add = [*hw, "user", "add", "duty", "--role", "duty_officer", "--division", "33", "--password-stdin"]
    subprocess.run(add, env=env, input=b"an-older-password\n", check=True, capture_output=True)
    proc, output, _ = _up(workdir, database_url, f"mqtt://127.0.0.1:{mqtt_port}")
    assert proc.wait(timeout=120) == 2
    output._thread.join(5)
    assert "hazardwatch up: demo user duty could not be created: " in output.text
    assert "already exists" in output.text
    assert "HazardWatch is up." not in output.text


def _anonymous_refused(port: int) -> bool:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"anonymous-{port}")
    answers: list[bool] = []
    done = threading.Event()

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: ReasonCode, _p: object) -> None:
        answers.append(reason.is_failure)
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert done.wait(10)
    finally:
        client.disconnect()
        client.loop_stop()
    return answers[0]


def _count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql.encode()).fetchone()
    return int(row[0]) if row else 0


def _eventually(probe: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_up_uses_the_services_it_finds(workdir: Path, database_url: str, mqtt_port: int) -> None:
    proc, output, port = _up(workdir, database_url, f"mqtt://127.0.0.1:{mqtt_port}")
    try:
        output.wait_for("HazardWatch is up.", 120)
        assert f"http://127.0.0.1:{port}/" in output.text
        assert "database: using" in output.text
        assert "password:" in output.text
        assert _health(port)["database"] == "ok"
        assert "the broker is used anonymously" in output.text
    finally:
        _stop(proc, output)
    assert "stopping HazardWatch" in output.text


@pytest.mark.skipif(shutil.which("initdb") is None, reason="PostgreSQL's initdb is not installed")
def test_up_starts_private_services_when_none_answer(workdir: Path) -> None:
    pg_port, mqtt_port = free_port(), free_port()
    proc, output, port = _up(workdir, f"postgresql://postgres@127.0.0.1:{pg_port}/hazardwatch",
                             f"mqtt://127.0.0.1:{mqtt_port}")  # fmt: skip
    try:
        output.wait_for("HazardWatch is up.", 180)
        assert "started a private PostgreSQL" in output.text
        assert "started a private Mosquitto" in output.text
        assert _health(port)["database"] == "ok"
        # authentication on: anonymous refused, and every agent publishes under its own identity
        assert _anonymous_refused(mqtt_port)
        url = f"postgresql://postgres@127.0.0.1:{pg_port}/hazardwatch"
        everything = "SELECT count(*) FROM readings_latest"  # the 49 tags of both gateways
        _eventually(lambda: _count(url, everything) == 49, 90, "every tag's readings through the broker")
    finally:
        _stop(proc, output)
    assert not (workdir / "var" / "postgres" / "data" / "postmaster.pid").exists()


def test_up_runs_its_own_authenticated_broker_and_keeps_its_secrets(workdir: Path, database_url: str) -> None:
    broker_port = free_port()
    credentials = workdir / "var" / "broker" / "credentials"
    secrets: dict[str, str] = {}
    for run in range(2):  # a restarted `up` keeps every identity's secret
        proc, output, _ = _up(workdir, database_url, None, HW_BROKER_PORT=str(broker_port))
        try:
            output.wait_for("HazardWatch is up.", 120)
            assert f"mqtt://127.0.0.1:{broker_port}" in output.text
            assert _anonymous_refused(broker_port)
            if run == 0:  # every tag, through the agents' identities
                _eventually(lambda: _count(database_url, "SELECT count(*) FROM readings_latest") == 49, 90,
                            "every tag's readings")  # fmt: skip
        finally:
            _stop(proc, output)
        now = {p.name: p.read_text(encoding="utf-8") for p in credentials.glob("*.env")}
        assert "hw-agent-E330281002-gw01.env" in now
        assert "hw-ingest-1.env" in now
        if run == 1:
            assert now == secrets
        secrets = now


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to the postgres user")
def test_private_postgres_says_when_the_postgres_user_cannot_reach_its_directory(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)  # pytest's own directories are closed to other users too
    with pytest.raises(ConfigError, match="the postgres user cannot reach"):
        PrivatePostgres(closed, free_port()).start()
