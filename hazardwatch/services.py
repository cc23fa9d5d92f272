"""Private PostgreSQL and Mosquitto under ./var, for `hazardwatch up` when none is reachable."""

from __future__ import annotations

import glob
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
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
    """Whether a server could listen on the port now (as servers do, ignoring TIME_WAIT leftovers)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
        try:
            subprocess.run([*self._as_user, *argv], check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as err:
            detail = (err.stderr or err.stdout or "").strip().splitlines()[-3:]
            raise ConfigError(f"{Path(argv[0]).name} failed for {self.data}: {' / '.join(detail)}") from err

    def start(self) -> None:
        initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres user
            shutil.chown(self.root, "postgres", "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
            reachable = subprocess.run([*self._as_user, "test", "-w", str(self.root)], capture_output=True)
            if reachable.returncode != 0:
                raise ConfigError(
                    f"the postgres user cannot reach {self.root} (a parent directory is closed to it): "
                    "set HW_VAR_DIR to a directory it can reach, or open the parents (chmod o+x)"
                )
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
    """A Mosquitto broker of our own under ``var_dir/mosquitto``, persistent for QoS 1 sessions.

    Mosquitto started as root drops to the ``mosquitto`` user, which must be able to write the
    persistence directory, or the broker silently forgets every session and queued message when it
    stops. The directory is handed to that user when it can reach it; otherwise the broker keeps
    running as root (with a warning) so that persistence still holds.
    """

    def __init__(self, var_dir: Path, port: int, *, persistent: bool = True, allow_anonymous: bool = True,
                 listener_options: Sequence[str] = (), options: Sequence[str] = ()) -> None:  # fmt: skip
        """``listener_options`` (e.g. TLS files) apply to the listener, ``options`` to the broker."""
        self.root = (var_dir / "mosquitto").resolve()
        self.port = port
        self.persistent = persistent
        self._allow_anonymous = allow_anonymous
        self._listener_options = list(listener_options)
        self._options = list(options)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.root / "mosquitto.log"

    def start(self) -> None:
        binary = _mosquitto_binary()
        if not port_free(self.port):
            raise ConfigError(f"port {self.port} for the private Mosquitto is taken")
        self.root.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            *self._listener_options,
            f"allow_anonymous {'true' if self._allow_anonymous else 'false'}",
            f"persistence {'true' if self.persistent else 'false'}",
            f"persistence_location {self.root}/",
            "max_inflight_messages 100",
            "max_queued_messages 1000000",
            f"log_dest file {self.log_path}",
            *self._options,  # last: an option given here overrides the defaults above
        ]
        if os.geteuid() == 0:
            lines.append(f"user {self._broker_user()}")
        conf = self.root / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self._proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=broker_env()
        )
        if not _wait_port(self.port, 10):
            raise ConfigError(f"the private Mosquitto did not start; see {self.log_path}")

    def _broker_user(self) -> str:
        """The user the broker runs as when started by root: ``mosquitto`` if it can write our files."""
        if _user_exists("mosquitto"):
            for path in (self.root, *self.root.glob("mosquitto.*")):
                shutil.chown(path, "mosquitto", "mosquitto")
            probe = subprocess.run(
                ["runuser", "-u", "mosquitto", "--", "test", "-w", str(self.root)], capture_output=True
            )
            if probe.returncode == 0:
                return "mosquitto"
        logger.log(
            logging.WARNING if self.persistent else logging.DEBUG,
            "the mosquitto user cannot write %s (a parent directory is closed to it): the private broker "
            "runs as root so that its sessions persist",
            self.root,
        )
        return "root"

    def stop(self) -> None:
        """Stop the broker; a persistent one saves its sessions and queued messages on the way out."""
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None


class ConfiguredMosquitto:
    """Mosquitto run on a configuration ``hazardwatch broker config`` wrote, as written."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory.resolve()
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.directory / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.directory / "mosquitto.log"

    def start(self) -> None:
        binary = _mosquitto_binary()
        if not port_free(self.port):
            raise ConfigError(f"port {self.port} for the private Mosquitto is taken")
        self._proc = subprocess.Popen([binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, env=broker_env())  # fmt: skip
        if not _wait_port(self.port, 10):
            self.stop()
            raise ConfigError(f"the private Mosquitto did not start; see {self.log_path}")

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def stop(self) -> None:
        """Stop the broker; it saves its sessions and queued messages on the way out."""
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None


def broker_env() -> dict[str, str]:
    """The broker's environment: none of ours. It faces the network and needs no secret, while ours
    holds HW_DATABASE_URL (with its password) and HW_MQTT_PASSWORD."""
    return {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}


def _mosquitto_binary() -> str:
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if binary is None:
        raise ConfigError(
            "no MQTT broker answers at the configured URL and mosquitto is not installed: install it "
            "(Debian: apt-get install mosquitto) or set HW_MQTT_URL to a reachable broker"
        )
    return binary


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
