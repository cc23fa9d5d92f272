"""Private PostgreSQL and Mosquitto under ./var, for `hazardwatch up` when none is reachable."""

from __future__ import annotations

import glob
import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from hazardwatch.errors import ConfigError

logger = logging.getLogger(__name__)


def tcp_alive(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tcp_alive("127.0.0.1", port, 0.5):
            return True
        time.sleep(0.1)
    return False


def _pg_binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))[::-1]), None
    )
    if found is None:
        raise ConfigError(
            f"no PostgreSQL answers at the configured URL and {name} is not installed: install PostgreSQL "
            "(Debian: apt-get install postgresql) or set HW_DATABASE_URL to a reachable server"
        )
    return found


class PrivatePostgres:
    """A PostgreSQL cluster of our own under var/postgres, run as the postgres user when root."""

    def __init__(self, var_dir: Path, port: int) -> None:
        self.root = (var_dir / "postgres").resolve()
        self.data = self.root / "data"
        self.port = port
        self._as_user: list[str] = []

    def _run(self, *argv: str) -> None:
        subprocess.run([*self._as_user, *argv], check=True, capture_output=True, text=True)

    def start(self) -> None:
        initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
        if not (self.data / "PG_VERSION").exists():
            logger.info("initializing a private PostgreSQL cluster in %s", self.data)
            self._run(initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        if not tcp_alive("127.0.0.1", self.port):
            if not port_free(self.port):
                raise ConfigError(f"port {self.port} for the private PostgreSQL is taken")
            options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}"
            self._run(
                pg_ctl,
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.root / "server.log"),
                "-w",
                "start",
            )

    def stop(self) -> None:
        try:
            self._run(_pg_binary("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        except subprocess.CalledProcessError as err:
            logger.warning("private PostgreSQL did not stop cleanly: %s", err.stderr)


class PrivateMosquitto:
    """A Mosquitto broker of our own under var/mosquitto, with persistence for QoS 1 sessions."""

    def __init__(self, var_dir: Path, port: int) -> None:
        self.root = (var_dir / "mosquitto").resolve()
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        if binary is None:
            raise ConfigError(
                "no MQTT broker answers at the configured URL and mosquitto is not installed: install it "
                "(Debian: apt-get install mosquitto) or set HW_MQTT_URL to a reachable broker"
            )
        if not port_free(self.port):
            raise ConfigError(f"port {self.port} for the private Mosquitto is taken")
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "mosquitto", "mosquitto") if _user_exists("mosquitto") else None
        conf = self.root / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {self.root}/\n"
            "max_inflight_messages 100\nmax_queued_messages 1000000\n"
            f"log_dest file {self.root}/mosquitto.log\n",
            encoding="utf-8",
        )
        self._proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if not _wait_port(self.port, 10):
            raise ConfigError(f"the private Mosquitto did not start; see {self.root}/mosquitto.log")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
