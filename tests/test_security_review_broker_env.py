"""The broker faces the network and needs no secret: it is started without the stack's environment
(HW_DATABASE_URL with its password, HW_MQTT_PASSWORD), which a compromised broker would read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hazardwatch.broker_admin import ListenerOptions, write_config
from hazardwatch.ledger import load_plant
from hazardwatch.services import ConfiguredMosquitto
from tests.support import SAMPLE_DEVICES, free_port


def test_the_configured_broker_does_not_inherit_the_stacks_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW_DATABASE_URL", "postgresql://hw:db-secret-9f2@127.0.0.1:5432/hw")
    monkeypatch.setenv("HW_MQTT_PASSWORD", "mqtt-secret-77a")
    port = free_port()
    write_config(tmp_path / "broker", load_plant(SAMPLE_DEVICES), ["1"], ListenerOptions(port=port))
    broker = ConfiguredMosquitto(tmp_path / "broker", port)
    broker.start()
    try:
        assert broker.pid is not None
        environ = Path(f"/proc/{broker.pid}/environ").read_bytes()
    finally:
        broker.stop()
    assert b"db-secret-9f2" not in environ
    assert b"mqtt-secret-77a" not in environ
    assert os.environ["HW_MQTT_PASSWORD"] == "mqtt-secret-77a"  # ours is untouched
