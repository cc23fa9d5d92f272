"""MQTT over TLS with a username and password: the agent against a broker that requires both."""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway_agent.buffer import Buffer
from gateway_agent.publisher import Publisher
from hazardwatch import wire
from hazardwatch.errors import ConfigError
from hazardwatch.quality import Quality
from hazardwatch.services import PrivateMosquitto
from hazardwatch.settings import MqttAddress, parse_mqtt_url
from tests.support import free_port


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))  # fmt: skip


def make_pki(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a broker certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "HazardWatch test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = directory / "ca.pem", directory / "broker.pem", directory / "broker.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, paths[2])
    return paths


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A broker with TLS only and no anonymous access; user ``agent``, password ``s3cret-pw``."""
    ca, cert, key = make_pki(tmp_path)
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "agent", "s3cret-pw"], check=True,
                   capture_output=True)  # fmt: skip
    port = free_port()
    broker = PrivateMosquitto(
        tmp_path, port, persistent=False, allow_anonymous=False,
        listener_options=[f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"],
        options=[f"password_file {passwords}"],
    )  # fmt: skip
    broker.start()
    try:
        yield port, ca
    finally:
        broker.stop()


def publish_one(address: MqttAddress, state: Path, wait_s: float) -> Publisher:
    publisher = Publisher("E1", "gw1", address, Buffer(state / f"{time.monotonic_ns()}.sqlite3"))
    publisher.start()
    batch = wire.ReadingBatch(gateway="gw1", seq=0, sent_ms=0)
    batch.append("LT1", int(time.time() * 1000), 1.0, Quality.GOOD)
    publisher.submit(batch)
    deadline = time.monotonic() + wait_s
    while publisher.pending and time.monotonic() < deadline:
        time.sleep(0.05)
    publisher.stop(timeout_s=0.5)
    return publisher


def test_agent_publishes_over_tls_with_a_password_from_the_environment(
    secure_broker: tuple[int, Path], tmp_path: Path
) -> None:
    port, ca = secure_broker
    url = f"mqtts://agent@127.0.0.1:{port}?cafile={ca}"
    address = parse_mqtt_url(url, {"HW_MQTT_PASSWORD": "s3cret-pw"})
    assert (address.tls, address.username, address.ca_file) == (True, "agent", str(ca))
    assert "s3cret" not in repr(address)  # the secret stays out of logs
    good = publish_one(address, tmp_path, wait_s=20)
    assert (good.pending, good.acked) == (0, 1)


@pytest.mark.parametrize(
    ("url_template", "why"),
    [
        ("mqtts://agent:wrong@127.0.0.1:{port}?cafile={ca}", "wrong password"),
        ("mqtt://agent:s3cret-pw@127.0.0.1:{port}", "plain TCP to a TLS listener"),
        ("mqtts://agent:s3cret-pw@127.0.0.1:{port}", "a broker certificate the system CAs do not know"),
    ],
)
def test_a_refused_connection_holds_the_data(secure_broker: tuple[int, Path], tmp_path: Path,
                                             url_template: str, why: str) -> None:  # fmt: skip
    port, ca = secure_broker
    refused = publish_one(parse_mqtt_url(url_template.format(port=port, ca=ca), {}), tmp_path, wait_s=2)
    assert (refused.pending, refused.acked) == (1, 0), why  # kept in the buffer, never dropped


def test_mqtt_url_parameters_are_checked(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x", encoding="ascii")
    assert parse_mqtt_url("mqtt://u:p%40ss@h:1884", {}).password == "p@ss"
    assert parse_mqtt_url("mqtts://h", {}).port == 8883
    with pytest.raises(ConfigError, match="unknown"):
        parse_mqtt_url(f"mqtts://h?ca={ca}", {})
    with pytest.raises(ConfigError, match="needs mqtts"):
        parse_mqtt_url(f"mqtt://h?cafile={ca}", {})
    with pytest.raises(ConfigError, match="no file"):
        parse_mqtt_url(f"mqtts://h?cafile={tmp_path / 'missing.pem'}", {})
