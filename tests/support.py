"""Helpers shared by tests: free ports, private brokers and databases, the sample plant."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import yaml

from hazardwatch import envfile
from hazardwatch.broker_admin import ListenerOptions, write_config
from hazardwatch.credentials import env_path
from hazardwatch.ledger import Plant, load_plant
from hazardwatch.services import ConfiguredMosquitto, PrivateMosquitto
from hazardwatch.settings import MqttAddress, parse_mqtt_url

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DEVICES = ROOT / "devices.yaml"
ADMIN_DSN = os.environ.get("HW_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


def sample_plant_doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(SAMPLE_DEVICES.read_text(encoding="utf-8"))
    return doc


def plant_doc_on_ports(modbus_port: int, opcua_port: int) -> dict[str, Any]:
    """The sample plant with its simulated devices moved to the given ports."""
    doc = sample_plant_doc()
    for enterprise in doc["enterprises"]:
        for gateway in enterprise["gateways"]:
            for device in gateway["devices"]:
                if device["protocol"] == "modbus_tcp":
                    device["port"] = modbus_port
                else:
                    device["endpoint"] = f"opc.tcp://127.0.0.1:{opcua_port}/hazardwatch/"
    return doc


def write_plant(doc: dict[str, Any], directory: Path) -> Path:
    path = directory / "devices.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def plant_on_ports(modbus_port: int, opcua_port: int) -> Plant:
    with tempfile.TemporaryDirectory() as tmp:
        return load_plant(write_plant(plant_doc_on_ports(modbus_port, opcua_port), Path(tmp)))


@contextmanager
def private_mosquitto(
    store: Path | None = None, port: int | None = None, options: Sequence[str] = ()
) -> Iterator[int]:
    """A Mosquitto broker of the test's own; yields its port.

    Without ``store`` it keeps nothing on disk. With ``store`` it persists sessions and queued
    messages there, so starting it again on the same store and port is a broker restart.
    ``options`` are broker configuration lines (e.g. ``max_queued_messages 5``).
    """
    port = port or free_port()
    with contextlib.ExitStack() as stack:
        root = store or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        broker = PrivateMosquitto(root, port, persistent=store is not None, options=options)
        broker.start()
        try:
            yield port
        finally:
            broker.stop()


@dataclass(frozen=True)
class AuthBroker:
    """A broker run on the configuration `hazardwatch broker config` wrote, and its credentials."""

    port: int
    directory: Path
    pid: int

    def env_file(self, identity: str) -> Path:
        return env_path(self.directory, identity)

    def address(self, identity: str) -> MqttAddress:
        values = envfile.read(self.env_file(identity))
        return parse_mqtt_url(values["HW_MQTT_URL"], {"HW_MQTT_PASSWORD": values["HW_MQTT_PASSWORD"]})


@contextmanager
def authenticated_mosquitto(directory: Path, devices: Path = SAMPLE_DEVICES, port: int | None = None,
                            workers: Sequence[str] = ("1", "2")) -> Iterator[AuthBroker]:  # fmt: skip
    """Configure ``directory`` for the devices file (again: secrets kept) and run Mosquitto on it, as
    written; a second run on the same directory and port is a broker restart (sessions persist)."""
    port = port or free_port()
    write_config(directory, load_plant(devices), list(workers), ListenerOptions(port=port))
    broker = ConfiguredMosquitto(directory, port)
    broker.start()
    try:
        assert broker.pid is not None
        yield AuthBroker(port, directory.resolve(), broker.pid)
    finally:
        broker.stop()


@contextmanager
def private_database() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL, dropped afterwards; yields its URL."""
    name = f"hw_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
