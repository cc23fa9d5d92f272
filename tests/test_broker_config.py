"""`hazardwatch broker config` run again keeps secrets and adds gateways; `--env-file` stays private."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hazardwatch import envfile
from hazardwatch.broker import BrokerState, TlsListener, render_conf
from hazardwatch.cli import main
from hazardwatch.credentials import read_passwd
from hazardwatch.errors import ConfigError
from tests.support import SAMPLE_DEVICES, authenticated_mosquitto, sample_plant_doc, write_plant


def secrets_of(directory: Path) -> dict[str, str]:
    return {p.stem: envfile.read(p)["HW_MQTT_PASSWORD"] for p in (directory / "credentials").glob("*.env")}


def test_broker_config_twice_keeps_every_secret_and_adds_the_new_gateway(tmp_path: Path) -> None:
    directory = tmp_path / "broker"
    assert main(["broker", "config", "--out", str(directory), "--devices", str(SAMPLE_DEVICES)]) == 0
    first, hashes = secrets_of(directory), read_passwd(directory)
    assert "hw-agent-E330110001-gw01" in first
    assert set(first) == set(hashes)
    doc = sample_plant_doc()
    gateway = doc["enterprises"][1]["gateways"][0]
    gateway["id"] = "gw02"  # the ledger changes: a gateway joins
    for source in doc["enterprises"][1]["hazard_sources"]:
        for camera in source.get("cameras", []):
            camera["gateway"] = "gw02"
    changed = write_plant(doc, tmp_path)
    assert main(["broker", "config", "--out", str(directory), "--devices", str(changed)]) == 0
    second = secrets_of(directory)
    assert {k: second[k] for k in first} == first  # every secret kept
    assert {k: v for k, v in read_passwd(directory).items() if k in hashes} == hashes
    assert {"hw-agent-E330281002-gw02", "hw-video-E330281002-gw02"} <= set(second)
    acl = (directory / "acl").read_text(encoding="utf-8")
    assert "topic write hw/v1/E330281002/gw02/readings" in acl
    for path in [directory / "passwd", directory / "acl", *(directory / "credentials").iterdir()]:
        assert path.stat().st_mode & 0o077 == 0, path


def test_mosquitto_runs_on_the_configuration_as_written(tmp_path: Path) -> None:
    with authenticated_mosquitto(tmp_path / "broker") as broker:
        conf = (broker.directory / "mosquitto.conf").read_text(encoding="utf-8")
        assert "allow_anonymous false" in conf
        assert int((broker.directory / "mosquitto.pid").read_text(encoding="utf-8")) == broker.pid
    assert "Error" not in (broker.directory / "mosquitto.log").read_text(encoding="utf-8")


def test_env_file_values_override_the_environment() -> None:
    environ = {"HW_MQTT_URL": "mqtt://old:1883", "KEEP": "1"}
    text = "# comment\n\nexport HW_MQTT_URL=mqtt://gw@host:1884\nHW_MQTT_PASSWORD='s3 cret'\nX=\"q\"\n"
    environ.update(envfile.parse(text))
    assert environ == {"HW_MQTT_URL": "mqtt://gw@host:1884", "KEEP": "1", "HW_MQTT_PASSWORD": "s3 cret",
                       "X": "q"}  # fmt: skip
    with pytest.raises(ConfigError, match="line 1"):
        envfile.parse("not a variable\n")


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hazardwatch", *argv], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def test_env_file_open_to_others_or_not_a_file_is_refused(tmp_path: Path) -> None:
    env = tmp_path / "gw.env"
    env.write_text(f"HW_RULES={tmp_path / 'no-such-rules.yaml'}\nHW_MQTT_PASSWORD=secret-value\n")
    env.chmod(0o644)
    refused = _run("check", str(SAMPLE_DEVICES), "--env-file", str(env))
    assert refused.returncode == 2
    assert "open to group or others" in refused.stderr
    assert "secret-value" not in refused.stderr + refused.stdout
    assert _run("--env-file", str(tmp_path), "check", str(SAMPLE_DEVICES)).returncode == 2
    env.chmod(0o600)  # private: read, and its values win (the rules file it names does not exist)
    taken = _run("check", str(SAMPLE_DEVICES), "--env-file", str(env))
    assert taken.returncode == 2
    assert "no-such-rules.yaml" in taken.stderr
    assert "is not a regular file" in _run("--env-file", str(tmp_path), "check", str(SAMPLE_DEVICES)).stderr


def test_with_tls_the_plain_listener_stays_on_loopback_and_the_ca_path_round_trips(tmp_path: Path) -> None:
    """A client left on mqtt:// must not send its password in clear over the network."""
    state = BrokerState(
        listen="0.0.0.0",  # noqa: S104 - a public listener is the case tested
        tls=TlsListener(cert="/c.pem", key="/k.pem", ca="/ca&dir/ca+1.pem"),
    )
    conf = render_conf(tmp_path, state)
    assert "listener 1884 127.0.0.1" in conf
    assert "listener 8883 0.0.0.0" in conf
    url = state.client_url("hw-ingest-1")
    assert "&" not in url.split("?", 1)[1]
    text = envfile.render({"HW_MQTT_URL": url})
    assert text == f"HW_MQTT_URL={url}\n"  # no shell meaning unquoted
    assert envfile.render({"HW_X": "a&b"}) == "HW_X='a&b'\n"


def test_the_workflows_identity_names_its_uplink(tmp_path: Path) -> None:
    directory = tmp_path / "broker"
    assert main(["broker", "config", "--out", str(directory), "--devices", str(SAMPLE_DEVICES)]) == 0
    values = envfile.read(directory / "credentials" / "hw-workflows.env")
    assert values["HW_UPLINK_URL"] == values["HW_MQTT_URL"]
    assert values["HW_UPLINK_URL"].startswith("mqtt://hw-workflows@")
