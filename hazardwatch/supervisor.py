"""`hazardwatch up`: the whole plant-and-platform stack on one machine, as child processes.

It uses the PostgreSQL and MQTT broker it finds at the configured URLs and starts private
ones under ./var when none answers. Every part runs as its own process (the same commands
a real deployment runs); a part that dies is restarted with backoff. Ctrl-C stops all.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

from hazardwatch import envfile
from hazardwatch.errors import ConfigError, HazardWatchError
from hazardwatch.ledger import load_plant
from hazardwatch.lifeline import ParentWatch, die_with_parent
from hazardwatch.services import (
    LOCAL_HOSTS,
    ConfiguredMosquitto,
    PrivateMosquitto,
    PrivatePostgres,
    port_free,
    tcp_alive,
)
from hazardwatch.settings import Settings, parse_host_port, parse_mqtt_url

logger = logging.getLogger(__name__)
STOOD_DOWN_EXIT = 3  # gateway_agent.agent's exit code when its gateway runs elsewhere (not imported: heavy)

DEMO_USERS = (
    # username, role, division scope, enterprise, display name
    ("duty", "duty_officer", "33", None, "省值班员"),
    ("yuhang", "duty_officer", "330110", None, "余杭区值班员"),
    ("qiye", "enterprise", "", "E330110001", "临港液化气安全员"),
    ("jianguan", "regulator", "33", None, "省应急厅监管员"),
)


def _command() -> str:
    """How the user runs `hazardwatch` from here: on PATH as is, else the venv's path."""
    found = shutil.which("hazardwatch")
    here = Path(sys.executable).with_name("hazardwatch")
    if not here.exists():
        return f"{sys.executable} -m hazardwatch"
    if found and Path(found).resolve() == here.resolve():
        return "hazardwatch"
    try:
        return str(here.relative_to(Path.cwd()))
    except ValueError:
        return str(here)


def _must_be_local(what: str, host: str, port: int) -> None:
    if host not in LOCAL_HOSTS:
        raise ConfigError(
            f"no {what} answers at {host}:{port}, and a private one can only be started locally"
        )


@dataclass
class Part:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0


@dataclass
class Stack:
    settings: Settings
    devices: Path
    port: int | None = None
    parts: list[Part] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _private: list[PrivatePostgres | PrivateMosquitto | ConfiguredMosquitto] = field(default_factory=list)
    _broker_dir: Path | None = None  # our own broker's directory: every MQTT process has an identity
    _broker_url: str = ""

    def run(self) -> int:
        try:
            load_plant(self.devices)
            self._ports_free()
            env = self._services()
            self._prepare(env)
            self._start_parts(env)
            self._banner(env)
            self._watch(env)
        except (HazardWatchError, subprocess.CalledProcessError) as err:
            print(f"hazardwatch up: {err}", file=sys.stderr)
            return 2
        finally:
            self._shutdown()
        return 0

    # -- services ---------------------------------------------------------------------------
    def _services(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop(
            "HW_ENV_FILE", None
        )  # read once by up (in os.environ now): a child would re-read it over up's own
        env["HW_DEVICES"] = str(self.devices.resolve())
        env["HW_VAR_DIR"] = str(self.settings.var_dir.resolve())
        db = urlsplit(self.settings.database_url)
        db_host, db_port = db.hostname or "127.0.0.1", db.port or 5432
        env["HW_DATABASE_URL"] = self.settings.database_url
        if tcp_alive(db_host, db_port):
            print(f"database: using {db_host}:{db_port}")
        else:
            _must_be_local("PostgreSQL", db_host, db_port)
            pg = PrivatePostgres(self.settings.var_dir, db_port)
            pg.start()
            self._private.append(pg)
            print(
                f"database: none answered at {db_host}:{db_port}; started a private PostgreSQL in {pg.data}"
            )
        self._broker(env)
        if self.port:
            env["HW_DASHBOARD_PORT"] = str(self.port)
        return env

    def _broker(self, env: dict[str, str]) -> None:
        """Our own authenticated broker unless HW_MQTT_URL names one that answers."""
        if "HW_MQTT_URL" not in os.environ:
            host, port = "127.0.0.1", self.settings.broker_port
            self._own_broker(env, host, port)
            print(f"broker:   started a private Mosquitto at {self._broker_url}, an identity per process "
                  f"(HW_MQTT_URL is not set)")  # fmt: skip
            return
        broker = parse_mqtt_url(self.settings.mqtt_url)
        env["HW_MQTT_URL"] = self.settings.mqtt_url
        self._broker_url = f"mqtt{'s' if broker.tls else ''}://{broker.host}:{broker.port}"
        if tcp_alive(broker.host, broker.port):
            print(f"broker:   using {broker.host}:{broker.port}")
            if not broker.username:
                print("warning:  the broker is used anonymously: any client that reaches it can publish "
                      "readings for any gateway (unset HW_MQTT_URL for a broker with an identity per "
                      "process, or see `hazardwatch broker config`)", file=sys.stderr)  # fmt: skip
            return
        _must_be_local("MQTT broker", broker.host, broker.port)
        self._own_broker(env, broker.host, broker.port)
        print(f"broker:   none answered at {broker.host}:{broker.port}; started a private Mosquitto there, "
              "an identity per process")  # fmt: skip

    def _own_broker(self, env: dict[str, str], host: str, port: int) -> None:
        from hazardwatch.broker_admin import ListenerOptions, write_config

        directory = self.settings.broker_dir.resolve()
        if not port_free(port):
            raise ConfigError(f"port {port} for the private Mosquitto is taken (set HW_BROKER_PORT)")
        report = write_config(directory, load_plant(self.devices), ["1"],
                              ListenerOptions(listen=host, port=port, client_host=host))  # fmt: skip
        mosquitto = ConfiguredMosquitto(directory, port)
        mosquitto.start()
        self._private.append(mosquitto)
        self._broker_dir = directory
        self._broker_url = f"mqtt://{host}:{port}"
        env["HW_MQTT_URL"] = self._broker_url  # no identity: each process gets its own with --env-file
        env.pop("HW_MQTT_PASSWORD", None)
        logger.info("broker identities: %d added, %d kept", len(report.added), len(report.kept))

    def _identity(self, name: str) -> list[str]:
        """``--env-file`` of the identity's credentials on our own broker; nothing on another."""
        if self._broker_dir is None:
            return []
        from hazardwatch.credentials import env_path

        return ["--env-file", str(env_path(self._broker_dir, name))]

    def _hw(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "hazardwatch", *args]

    def _prepare(self, env: dict[str, str]) -> None:
        result = subprocess.run(
            self._hw("migrate", "--sync"), env=env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise ConfigError(f"migrate failed:\n{result.stderr or result.stdout}")
        print(result.stdout.strip())
        self._demo_users(env)

    def _demo_users(self, env: dict[str, str]) -> None:
        logins = self.settings.var_dir / "demo-logins.txt"
        kept = logins.exists()  # a restart: the users exist with this very password
        if kept:
            password = logins.read_text(encoding="utf-8").split("password: ", 1)[1].split()[0]
        else:
            password = secrets.token_urlsafe(9)
            self.settings.var_dir.mkdir(parents=True, exist_ok=True)
            envfile.write_private(logins, f"demo users share password: {password}\n")  # never 0644 a moment
        for username, role, division, enterprise, display in DEMO_USERS:
            argv = [
                "user",
                "add",
                username,
                "--role",
                role,
                "--division",
                division,
                "--display-name",
                display,
            ]
            if enterprise:
                argv += ["--enterprise", enterprise]
            result = subprocess.run(
                self._hw(*argv, "--password-stdin"),
                env=env, input=password + "\n", capture_output=True, text=True, check=False,
            )  # fmt: skip
            why = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
            if result.returncode != 0 and not (kept and "already exists" in why[-1]):
                hint = ""
                if "already exists" in why[-1]:
                    hint = (f" (its password is in the {logins} of the run that created it: put that file "
                            "back, or use another database)")  # fmt: skip
                raise ConfigError(f"demo user {username} could not be created: {why[-1]}{hint}")
        self._password = password

    # -- parts ------------------------------------------------------------------------------
    def _start_parts(self, env: dict[str, str]) -> None:
        """Plant first, so the agent's first poll finds its devices; the board last."""
        self.parts = [
            Part("simulate", self._hw("simulate")),
            Part("ingest", self._hw("ingest", "--no-sync", *self._identity("hw-ingest-1"))),
            Part("workflows", self._hw("workflows")),
            *self._edge_parts(env),
            Part("dashboard", self._hw("dashboard")),
        ]
        control = parse_host_port(env.get("HW_SIM_CONTROL", self.settings.sim_control))
        for part in self.parts:
            self._spawn(part, env)
            if part.name == "simulate":
                self._wait_listening(part, control, 60)

    def _edge_parts(self, env: dict[str, str]) -> list[Part]:
        """The agent and camera analytics: one process per gateway, each under its own identity, on our
        broker; one of each for every gateway on a broker brought by the user (as configured)."""
        plant = load_plant(self.devices)
        with_cameras = sorted({(e.code, c.gateway) for e in plant.enterprises for _, c in e.iter_cameras()})
        if self._broker_dir is None:
            return [Part("agent", self._hw("agent"))] + (
                [Part("video", self._hw("video"))] if with_cameras else []
            )
        metrics = env.get("HW_AGENT_METRICS", self.settings.agent_metrics)
        parts = []
        gateways = [(e.code, g.id) for e in plant.enterprises for g in e.gateways]
        for i, (enterprise, gateway) in enumerate(gateways):
            endpoint = metrics
            if metrics.lower() not in ("off", "none", ""):
                host, port = parse_host_port(metrics)
                endpoint = f"{host}:{port + i}"  # one endpoint per agent process
            scope = ("--enterprise", enterprise, "--gateway", gateway)
            parts.append(
                Part(
                    f"agent {enterprise}/{gateway}",
                    self._hw(
                        "agent",
                        *scope,
                        "--metrics",
                        endpoint,
                        *self._identity(f"hw-agent-{enterprise}-{gateway}"),
                    ),
                )
            )
        for enterprise, gateway in with_cameras:
            scope = ("--enterprise", enterprise, "--gateway", gateway)
            parts.append(
                Part(
                    f"video {enterprise}/{gateway}",
                    self._hw("video", *scope, *self._identity(f"hw-video-{enterprise}-{gateway}")),
                )
            )
        return parts

    def _wait_listening(self, part: Part, address: tuple[str, int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not tcp_alive(*address, timeout=0.5):
            if part.proc is not None and part.proc.poll() is not None:
                raise ConfigError(f"{part.name} exited with {part.proc.returncode} while starting")
            if time.monotonic() > deadline or self._stop.is_set():
                raise ConfigError(
                    f"{part.name} did not listen on {address[0]}:{address[1]} within {timeout:.0f} s"
                )
            time.sleep(0.2)

    def _spawn(self, part: Part, env: dict[str, str]) -> None:
        part.proc = subprocess.Popen(part.argv, env=env, preexec_fn=die_with_parent)
        logger.info("started %s (pid %s)", part.name, part.proc.pid)

    def _banner(self, env: dict[str, str]) -> None:
        host = env.get("HW_DASHBOARD_HOST", self.settings.dashboard_host)
        port = int(env.get("HW_DASHBOARD_PORT", self.settings.dashboard_port))
        deadline = time.monotonic() + 30
        while not tcp_alive(host, port) and time.monotonic() < deadline and not self._stop.is_set():
            time.sleep(0.2)
        control = parse_host_port(env.get("HW_SIM_CONTROL", self.settings.sim_control))
        lines = [
            "",
            "HazardWatch is up.",
            f"  alarm board:  http://{host}:{port}/",
            f"  broker:       {self._broker_url}"
            + (
                f" (credentials per process in {self._broker_dir / 'credentials'})"
                if self._broker_dir
                else ""
            ),
            "  logins:       duty (省值班员), yuhang (余杭区值班员), qiye (企业), jianguan (监管)",
            f"  password:     {self._password}",
            f"                (also in {self.settings.var_dir / 'demo-logins.txt'})",
            f"  scenario:     {_command()} simulate --scenario overfill",
            f"  cameras:      {_command()} simulate --camera-scene intrusion",
            f"                (simulator control at {control[0]}:{control[1]})",
            "  stop:         Ctrl-C",
            "",
        ]
        print("\n".join(lines), flush=True)

    def _watch(self, env: dict[str, str]) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        parent = ParentWatch()
        while not self._stop.wait(0.5):
            if parent.stopping():
                print("\nmake is stopping: stopping HazardWatch …", flush=True)
                return
            for part in self.parts:
                if part.proc is None or part.proc.poll() is None:
                    continue
                if part.proc.returncode == STOOD_DOWN_EXIT and part.name.startswith("agent"):
                    # another agent runs as its gateway: starting it again would only fight it
                    logger.error("%s stood down: another agent runs as its gateway; not restarted", part.name)
                    part.proc = None
                    continue
                now = time.monotonic()
                if part.next_start == 0.0:
                    part.restarts += 1
                    delay = min(2 ** min(part.restarts, 5), 30)
                    part.next_start = now + delay
                    logger.warning(
                        "%s exited with %s; restarting in %d s", part.name, part.proc.returncode, delay
                    )
                elif now >= part.next_start:
                    part.next_start = 0.0
                    self._spawn(part, env)

    def _ports_free(self) -> None:
        """A taken port stops the start with one line, before anything is started."""
        wanted = {
            "dashboard": (self.settings.dashboard_host, self.port or self.settings.dashboard_port),
            "simulator control": parse_host_port(self.settings.sim_control),
        }
        for what, (host, port) in wanted.items():
            if tcp_alive(host, port, timeout=0.5):
                raise ConfigError(f"port {port} for the {what} is taken on {host}: stop what listens there "
                                  "or choose another port")  # fmt: skip

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        print(f"\nsignal {signum}: stopping HazardWatch …", flush=True)
        self._stop.set()

    def _shutdown(self) -> None:
        """Stop in reverse order (board, agent, ingest, plant), each before the next."""
        for part in reversed(self.parts):
            if part.proc is None:
                continue
            if part.proc.poll() is None:
                part.proc.terminate()
            try:
                part.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop in 15 s; killing it", part.name)
                part.proc.kill()
                part.proc.wait()
        for service in reversed(self._private):
            service.stop()
        self._private.clear()
