"""OPC-UA security against a real asyncua server that offers only Basic256Sha256 SignAndEncrypt,
trusts one client certificate and accepts one user; every certificate is made by the test."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway_agent.sources.base import CommState
from gateway_agent.sources.opcua import OpcUaSource
from gateway_agent.sources.opcua_security import OpcUaConfigError, credentials, secure
from hazardwatch.ledger.models import OpcUaDevice, Tag
from hazardwatch.quality import Quality
from tests.opcua_support import (
    CLIENT_URI,
    SERVER_URI,
    KeyPair,
    Secured,
    UaServer,
    make_key_pair,
    node,
    opcua_plant,
    running,
    serving,
    until,
    until_up,
)
from tests.support import free_port

PASSWORD_ENV = "HW_OPCUA_PASSWORD_TEST"
PASSWORD = "correct horse battery staple"
POINTS = {"LT": {"node": node("V.LT")}, "PT": {"node": node("V.PT")}}


@dataclass(frozen=True)
class Pki:
    server: KeyPair
    client: KeyPair
    stranger: KeyPair  # a client certificate the server does not trust
    impostor: KeyPair  # a server certificate the client does not trust


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    return Pki(
        server=make_key_pair(directory, "server", SERVER_URI, server=True),
        client=make_key_pair(directory, "agent", CLIENT_URI, server=False),
        stranger=make_key_pair(directory, "stranger", "urn:hazardwatch:test:stranger", server=False),
        impostor=make_key_pair(directory, "impostor", SERVER_URI, server=True),
    )


@pytest.fixture
def secured_server(pki: Pki) -> UaServer:
    secured = Secured(server=pki.server, trusted_client=pki.client, user="hw-agent", password=PASSWORD)
    return UaServer(free_port(), {"V.LT": 42.0, "V.PT": 0.8}, secured=secured)


def secured_device(endpoint: str, client: KeyPair, trusted_server: KeyPair,
                   **overrides: Any) -> tuple[OpcUaDevice, list[Tag]]:  # fmt: skip
    device = {
        "endpoint": endpoint,
        "publishing_interval_ms": 50,
        "timeout_s": 2,
        "security": {
            "policy": "Basic256Sha256",
            "mode": "SignAndEncrypt",
            "certificate": str(client.certificate),
            "private_key": str(client.private_key),
            "server_certificate": str(trusted_server.certificate),
        },
        "username": "hw-agent",
        "password_env": PASSWORD_ENV,
    }
    return opcua_plant(device | overrides, POINTS)


def down_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("gateway_agent") and " down: " in r.getMessage()]


async def test_the_right_certificate_and_password_read_values(secured_server: UaServer, pki: Pki) -> None:
    device, tags = secured_device(secured_server.endpoint, pki.client, pki.server)
    source = OpcUaSource(device, tags, environ={PASSWORD_ENV: PASSWORD})
    async with serving(secured_server), running(source) as emitted:
        await until_up(source, emitted, ["LT", "PT"])
        assert emitted.values("LT") == [42.0]
        assert emitted.quality("PT") == Quality.GOOD
        stamp = await secured_server.write("V.LT", 43.5)
        await until(lambda: emitted.values("LT")[-1] == 43.5, "a data change over the secured channel")
        assert emitted.latest("LT") == (stamp, 43.5, Quality.GOOD)


async def test_a_wrong_password_is_bad_comm_and_one_clear_log_line(
    secured_server: UaServer, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway_agent")
    device, tags = secured_device(secured_server.endpoint, pki.client, pki.server)
    source = OpcUaSource(device, tags, environ={PASSWORD_ENV: "tr0ub4dor&3"})
    async with serving(secured_server), running(source) as emitted:
        await until(lambda: source.state == CommState.DOWN, "the refusal")
        assert {emitted.quality("LT"), emitted.quality("PT")} == {Quality.BAD_COMM}
        assert emitted.values("LT") == [None]
    [line] = down_lines(caplog)
    assert "refused user 'hw-agent'" in line.getMessage()
    assert "BadUserAccessDenied" in line.getMessage()
    assert "tr0ub4dor" not in caplog.text


async def test_a_client_certificate_the_server_does_not_trust_is_refused(
    secured_server: UaServer, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway_agent")
    device, tags = secured_device(secured_server.endpoint, pki.stranger, pki.server)
    source = OpcUaSource(device, tags, environ={PASSWORD_ENV: PASSWORD})
    async with serving(secured_server), running(source) as emitted:
        await until(lambda: source.state == CommState.DOWN, "the refusal")
        assert emitted.values("LT") == [None]
    [line] = down_lines(caplog)
    assert "BadCertificateUntrusted" in line.getMessage()


async def test_a_server_without_the_trusted_certificate_gets_no_session(
    secured_server: UaServer, pki: Pki
) -> None:
    device, tags = secured_device(secured_server.endpoint, pki.client, pki.impostor)
    source = OpcUaSource(device, tags, environ={PASSWORD_ENV: PASSWORD})
    async with serving(secured_server), running(source) as emitted:
        await until(lambda: source.state == CommState.DOWN, "the failed connection")
        assert {emitted.quality("LT"), emitted.quality("PT")} == {Quality.BAD_COMM}


async def test_an_unset_password_variable_stops_that_device_alone(
    secured_server: UaServer, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway_agent")
    device, tags = secured_device(secured_server.endpoint, pki.client, pki.server)
    broken = OpcUaSource(device, tags, environ={})
    port = free_port()
    plain_device, plain_tags = opcua_plant({"endpoint": f"opc.tcp://127.0.0.1:{port}/test/"}, POINTS)
    plain = OpcUaSource(plain_device, plain_tags)
    async with (
        serving(UaServer(port, {"V.LT": 1.0, "V.PT": 2.0})),
        serving(secured_server),
        running(broken) as failed,
        running(plain) as flowing,
    ):
        await until_up(plain, flowing, ["LT", "PT"])
        await until(lambda: broken.state == CommState.DOWN, "the configuration error")
        assert {failed.quality("LT"), failed.quality("PT")} == {Quality.BAD_COMM}
        assert flowing.values("LT") == [1.0]
    [line] = down_lines(caplog)
    assert line.levelno == logging.ERROR
    assert f"environment variable {PASSWORD_ENV} (password_env) is not set" in line.getMessage()


async def test_security_settings_fail_with_the_setting_named(pki: Pki, tmp_path: Path) -> None:
    device, _ = secured_device("opc.tcp://127.0.0.1:4840/", pki.client, pki.server)
    assert credentials(device, {PASSWORD_ENV: PASSWORD}).password == PASSWORD
    assert PASSWORD not in repr(credentials(device, {PASSWORD_ENV: PASSWORD}))
    missing = tmp_path / "nowhere.der"
    device = device.model_copy(update={"security": device.security and device.security.model_copy(
        update={"server_certificate": str(missing)})})  # fmt: skip
    from asyncua.client.client import Client

    with pytest.raises(OpcUaConfigError, match=f"server_certificate {missing} is not a file"):
        await secure(Client(device.endpoint), device, credentials(device, {PASSWORD_ENV: PASSWORD}))
    garbage = tmp_path / "garbage.der"
    garbage.write_bytes(b"not a certificate")
    device = device.model_copy(update={"security": device.security and device.security.model_copy(
        update={"server_certificate": str(garbage)})})  # fmt: skip
    with pytest.raises(OpcUaConfigError, match="cannot load its certificates"):
        await secure(Client(device.endpoint), device, credentials(device, {PASSWORD_ENV: PASSWORD}))
