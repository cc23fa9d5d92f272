"""Configuration pushed by the platform on a gateway's ``config`` topic.

The payload is JSON: ``{"version": "<id>", "enterprise": {…}}`` where ``enterprise`` is the
enterprise's section of a devices file (ledger and device map, the same schema, validated the
same way). The agent takes the gateway with its own id from it, starts the new sources in place
of the old ones and keeps them only if they start (see ``gateway_agent.agent``); otherwise it
goes back to the old ones. The outcome is reported in the heartbeat's ``config`` section.

The platform publishes it retained, so an agent that (re)connects gets the latest one.
``hazardwatch agent push-config`` does that from a devices file.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass

from pydantic import ValidationError

from hazardwatch import wire
from hazardwatch.errors import ConfigError
from hazardwatch.ledger import Enterprise, Gateway, Plant
from hazardwatch.mqttconn import make_client
from hazardwatch.settings import MqttAddress

MAX_CONFIG_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PushedConfig:
    version: str
    enterprise: Enterprise
    gateway: Gateway


def payload(enterprise: Enterprise) -> bytes:
    """The push for an enterprise; its version is a digest of the content, so equal pushes are one."""
    section = enterprise.model_dump(mode="json", exclude_none=True)
    body = json.dumps(section, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    version = hashlib.sha256(body.encode()).hexdigest()[:16]
    return json.dumps({"version": version, "enterprise": section}, ensure_ascii=False).encode()


def version_of(enterprise: Enterprise) -> str:
    doc: dict[str, str] = json.loads(payload(enterprise))
    return doc["version"]


def parse(raw: bytes, enterprise_code: str, gateway_id: str) -> PushedConfig:
    """Validate a push for this gateway; ConfigError with the reason otherwise."""
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"configuration of {len(raw)} bytes exceeds {MAX_CONFIG_BYTES}")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as err:
        raise ConfigError(f"configuration is not JSON: {err}") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("version"), str) or not doc["version"]:
        raise ConfigError('configuration must be {"version": "…", "enterprise": {…}}')
    try:
        enterprise = Enterprise.model_validate(doc.get("enterprise"))
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "enterprise"
        raise ConfigError(f"invalid configuration at {where}: {first['msg']}") from err
    if enterprise.code != enterprise_code:
        raise ConfigError(
            f"configuration is for enterprise {enterprise.code}, this gateway is in {enterprise_code}"
        )
    try:
        gateway = enterprise.gateway(gateway_id)
    except KeyError:
        raise ConfigError(f"configuration has no gateway {gateway_id}") from None
    return PushedConfig(doc["version"], enterprise, gateway)


def push(plant: Plant, address: MqttAddress, *, enterprise: str | None = None, gateway: str | None = None,
         timeout_s: float = 10.0) -> list[tuple[str, str]]:  # fmt: skip
    """Publish each selected gateway's configuration, retained, and wait for the broker's PUBACKs.

    Returns (topic, version) per gateway; raises ConfigError when the broker cannot be reached.
    """
    selected = [
        (e, g) for e in plant.enterprises if enterprise in (None, e.code)
        for g in e.gateways if gateway in (None, g.id)
    ]  # fmt: skip
    if not selected:
        raise ConfigError(f"no gateway matches enterprise={enterprise!r} gateway={gateway!r}")
    # the identity's name when the broker binds client ids to identities (hw-config), else a fresh id
    client = make_client(address, address.username or f"hw-config-{uuid.uuid4().hex[:12]}")
    try:
        client.connect(address.host, address.port, keepalive=30)
    except OSError as err:
        raise ConfigError(f"cannot reach the broker at {address.host}:{address.port}: {err}") from err
    client.loop_start()
    try:
        pushed = []
        for e, g in selected:
            body = payload(e)
            topic = wire.config_topic(e.code, g.id)
            info = client.publish(topic, body, qos=1, retain=True)
            info.wait_for_publish(timeout_s)
            if not info.is_published():
                raise ConfigError(f"the broker did not acknowledge {topic} within {timeout_s} s")
            pushed.append((topic, json.loads(body)["version"]))
        return pushed
    finally:
        client.disconnect()
        client.loop_stop()
