"""Helpers of the OPC-UA source tests: a real asyncua server, certificates, a plant, a collector."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from asyncua import ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.common.utils import ServiceError
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from asyncua.ua.status_codes import StatusCodes
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway_agent.sources.base import CommState
from gateway_agent.sources.opcua import OpcUaSource
from hazardwatch.ledger import load_plant_text
from hazardwatch.ledger.models import OpcUaDevice, Tag
from hazardwatch.quality import Quality

NS = "urn:hazardwatch:test:opcua"
SERVER_URI = "urn:hazardwatch:test:server"
CLIENT_URI = "urn:hazardwatch:test:agent"


def node(name: str) -> str:
    return f"ns=2;s={name}"


# -- a plant of the test's own ------------------------------------------------------------------


def opcua_plant(
    device: Mapping[str, Any], points: Mapping[str, Mapping[str, Any]]
) -> tuple[OpcUaDevice, list[Tag]]:
    """One opcua device ``ua`` and one tag per point (code → the tag's ``opcua`` settings)."""
    tags = [
        {"code": code, "name": code, "kind": "other", "unit": "", "range": [-1e9, 1e9],
         "opcua": {"device": "ua"} | dict(point)}
        for code, point in points.items()
    ]  # fmt: skip
    doc = {
        "version": 1,
        "enterprises": [{
            "code": "T1", "name": "试验企业", "credit_code": "91330110MA2H3K7L01", "division": "330110",
            "gateways": [{"id": "gw1", "devices": [{"protocol": "opcua", "id": "ua", **device}]}],
            "hazard_sources": [{
                "code": "H1", "name": "罐区", "people_within_500m": 0,
                "chemicals": [{"name": "氨", "max_quantity_t": 20}],
                "responsibles": {"principal": "a", "technical": "b", "operational": "c"},
                "equipment": [{"code": "T1", "name": "罐", "kind": "tank", "tags": tags}],
            }],
        }],
    }  # fmt: skip
    enterprise = load_plant_text(yaml.safe_dump(doc, allow_unicode=True)).enterprises[0]
    found = enterprise.gateway("gw1").devices[0]
    assert isinstance(found, OpcUaDevice)
    return found, enterprise.tags_of_device("ua")


# -- certificates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    certificate: Path  # DER
    private_key: Path  # PEM

    def der(self) -> bytes:
        return self.certificate.read_bytes()


def make_key_pair(directory: Path, name: str, uri: str, *, server: bool) -> KeyPair:
    """A self-signed OPC-UA application certificate (the URI and this host as alternative names)."""
    key = cert_gen.generate_private_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri), x509.DNSName(socket.gethostname())]
    certificate = cert_gen.generate_self_signed_app_certificate(key, name, {}, names, [usage])
    pair = KeyPair(directory / f"{name}.der", directory / f"{name}-key.pem")
    pair.certificate.write_bytes(certificate.public_bytes(Encoding.DER))
    pair.private_key.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return pair


class OneUser(UserManager):
    """Accepts exactly one user name and password."""

    def __init__(self, name: str, password: str) -> None:
        self._name = name
        self._password = password

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:  # fmt: skip
        if username == self._name and password == self._password:
            return User(role=UserRole.User, name=username)
        return None


@dataclass(frozen=True)
class Secured:
    """How the server is secured: its key pair, the one client certificate it trusts, its user."""

    server: KeyPair
    trusted_client: KeyPair
    user: str
    password: str


# -- a real asyncua server --------------------------------------------------------------------


SOURCE_TIME = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)


class UaServer:
    """An asyncua server with Double variables ``ns=2;s=<name>``; it records reads and monitored items."""

    def __init__(self, port: int, variables: Mapping[str, float], secured: Secured | None = None) -> None:
        self.endpoint = f"opc.tcp://127.0.0.1:{port}/test/"
        self.variables = dict(variables)
        self.secured = secured
        user_manager = OneUser(secured.user, secured.password) if secured is not None else None
        self.server = Server(user_manager=user_manager)
        self.reads: Counter[str] = Counter()  # node id → Read requests that carried it
        self.monitored: Counter[str] = Counter()  # node id → monitored items created on it
        self._folder: Any = None

    async def start(self) -> None:
        server = self.server
        await server.init()
        server.set_endpoint(self.endpoint)
        if self.secured is None:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        else:
            await self._secure(self.secured)
        index = await server.register_namespace(NS)
        assert index == 2
        self._folder = await server.nodes.objects.add_object(index, "T")
        for name, value in self.variables.items():
            await self.add(name, value)
        server.subscribe_server_callback(CallbackType.PreRead, self._on_read)
        server.subscribe_server_callback(CallbackType.ItemSubscriptionCreated, self._on_monitored)
        await server.start()

    async def _secure(self, secured: Secured) -> None:
        server = self.server
        server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
        server.set_identity_tokens([ua.UserNameIdentityToken])
        await server.load_certificate(str(secured.server.certificate))
        await server.load_private_key(str(secured.server.private_key))
        await server.set_application_uri(SERVER_URI)
        trusted = secured.trusted_client.der()

        async def trust_one(certificate: x509.Certificate, _app: ua.ApplicationDescription) -> None:
            if certificate.public_bytes(Encoding.DER) != trusted:
                raise ServiceError(StatusCodes.BadCertificateUntrusted)

        server.set_certificate_validator(trust_one)

    async def add(self, name: str, value: float) -> None:
        """A variable, now (a node may appear while clients are connected)."""
        await self._folder.add_variable(node(name), name, ua.Variant(value, ua.VariantType.Double))

    async def write(self, name: str, value: float, status: int = StatusCodes.Good,
                    when: datetime | None = None) -> int:  # fmt: skip
        """Write a value with a source timestamp; returns that timestamp in UTC ms."""
        moment = when or datetime.now(UTC)
        stamp = ua.DateTime.fromtimestamp(moment.timestamp(), UTC)
        data = ua.DataValue(
            ua.Variant(value, ua.VariantType.Double),
            StatusCode=ua.StatusCode(ua.UInt32(status)),
            SourceTimestamp=stamp,
            ServerTimestamp=stamp,
        )
        await self.server.write_attribute_value(ua.NodeId.from_string(node(name)), data)
        return int(stamp.timestamp() * 1000)

    async def silence_subscriptions(self) -> None:
        """Stop every subscription publishing, sessions left alone: what a hung server does."""
        for subscription in list(self.server.iserver.subscription_service.subscriptions.values()):
            await subscription.stop()

    async def stop(self) -> None:
        await self.server.stop()

    def _on_read(self, event: ServerItemCallback, _dispatcher: Any) -> None:
        if event.is_external:
            for item in event.request_params.NodesToRead:
                self.reads[item.NodeId.to_string()] += 1

    def _on_monitored(self, event: ServerItemCallback, _dispatcher: Any) -> None:
        for item, result in zip(event.request_params.ItemsToCreate, event.response_params, strict=True):
            if result.StatusCode.is_good():
                self.monitored[item.ItemToMonitor.NodeId.to_string()] += 1


@contextlib.asynccontextmanager
async def serving(server: UaServer) -> AsyncIterator[UaServer]:
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


# -- the source under test --------------------------------------------------------------------


@dataclass
class Emitted:
    """What a source emitted: (tag, ts ms, value, quality) in order."""

    readings: list[tuple[str, int, float | None, Quality]] = field(default_factory=list)

    def __call__(self, tag: str, ts_ms: int, value: float | None, quality: Quality) -> None:
        self.readings.append((tag, ts_ms, value, quality))

    def of(self, tag: str) -> list[tuple[int, float | None, Quality]]:
        return [(ts, value, quality) for code, ts, value, quality in self.readings if code == tag]

    def values(self, tag: str) -> list[float | None]:
        return [value for _, value, _ in self.of(tag)]

    def latest(self, tag: str) -> tuple[int, float | None, Quality] | None:
        readings = self.of(tag)
        return readings[-1] if readings else None

    def quality(self, tag: str) -> Quality | None:
        last = self.latest(tag)
        return last[2] if last is not None else None


@contextlib.asynccontextmanager
async def running(source: OpcUaSource) -> AsyncIterator[Emitted]:
    """Run the source until the block ends; it must stop without raising."""
    emitted = Emitted()
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(emitted, stop))
    try:
        yield emitted
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def until(probe: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.02)


async def until_up(source: OpcUaSource, emitted: Emitted, tags: list[str], timeout: float = 30) -> None:
    """Until the source is up and every tag has a reading."""
    await until(
        lambda: source.state == CommState.UP and all(emitted.latest(t) for t in tags),
        "the source up",
        timeout,
    )
