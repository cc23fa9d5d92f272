"""A configuration pushed by the platform: validated, applied atomically, rolled back if it cannot start."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway_agent import remote_config
from gateway_agent.agent import GatewayRuntime, run_agent
from gateway_agent.sources.base import CommState
from hazardwatch import wire
from hazardwatch.errors import ConfigError
from hazardwatch.ledger import Plant, load_plant
from hazardwatch.settings import MqttAddress
from tests.support import free_port, plant_doc_on_ports, private_mosquitto, write_plant
from tests.test_gateway_agent import simulators, until

KEY = ("E330110001", "gw01")


@pytest.fixture
def mqtt_port() -> Iterator[int]:
    """A broker of this test's own: pushes are retained."""
    with private_mosquitto() as port:
        yield port


def variant(doc: dict[str, Any], tmp_path: Path, name: str, change: Any) -> Plant:
    changed = copy.deepcopy(doc)
    change(changed["enterprises"][0]["gateways"][0]["devices"])
    directory = tmp_path / name
    directory.mkdir()
    return load_plant(write_plant(changed, directory))


def publish_raw(port: int, payload: bytes) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(wire.config_topic(*KEY), payload, qos=1, retain=True).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def readings_of(runtime: GatewayRuntime, device: str) -> int:
    return runtime.collector.devices[device].readings


async def test_pushed_configuration_is_applied_rejected_or_rolled_back(
    tmp_path: Path, mqtt_port: int
) -> None:
    doc = plant_doc_on_ports(free_port(), free_port())
    plant = load_plant(write_plant(doc, tmp_path))
    faster = variant(doc, tmp_path, "faster", lambda devices: devices[0].update(poll_interval_s=0.3))
    dead_port = variant(
        doc, tmp_path, "dead", lambda devices: devices[0].update(port=free_port(), timeout_s=0.3)
    )
    address = MqttAddress("127.0.0.1", mqtt_port)
    runtimes: dict[tuple[str, str], GatewayRuntime] = {}
    async with simulators(plant):
        stop = asyncio.Event()
        run = run_agent(plant, address, state_dir=tmp_path / "agent", stop=stop, gateway="gw01",
                        enterprise=KEY[0], runtimes=runtimes)  # fmt: skip
        agent = asyncio.create_task(run)
        try:
            await until(lambda: KEY in runtimes and runtimes[KEY].source_set.up() == {"plc-lpg", "plc-nh3"},
                        30, "both PLCs answering")  # fmt: skip
            runtime = runtimes[KEY]
            original = runtime.config.version
            assert runtime.config.origin == "devices file"

            # a valid change: applied, the device polled at the new period
            [(_, version)] = await asyncio.to_thread(remote_config.push, faster, address, enterprise=KEY[0])
            await until(lambda: runtime.config.version == version, 30, "the faster configuration applied")
            assert (runtime.config.origin, runtime.config.status) == ("pushed", "applied")
            assert runtime.gateway.devices[0].poll_interval_s == 0.3
            before = readings_of(runtime, "plc-lpg")
            await until(
                lambda: readings_of(runtime, "plc-lpg") > before + 2 * 18, 20, "polls under the new period"
            )

            # not JSON, and a schema error: rejected, the running configuration untouched
            await asyncio.to_thread(publish_raw, mqtt_port, b"\x00garbage")
            await until(lambda: runtime.config.status == "rejected", 20, "the garbage rejected")
            assert "not JSON" in (runtime.config.error or "")
            broken = json.loads(remote_config.payload(faster.enterprises[0]))
            broken["version"] = "broken"
            broken["enterprise"]["gateways"][0]["devices"][0]["poll_interval_s"] = -1
            await asyncio.to_thread(publish_raw, mqtt_port, json.dumps(broken).encode())
            await until(
                lambda: "invalid configuration" in (runtime.config.error or ""), 20, "the schema error"
            )
            assert runtime.config.version == version
            assert runtime.source_set.up() == {"plc-lpg", "plc-nh3"}

            # a device moved to where nothing answers: rolled back to the running configuration
            [(_, bad)] = await asyncio.to_thread(remote_config.push, dead_port, address, enterprise=KEY[0])
            await until(lambda: runtime.config.status == "rolled back", 60, "the rollback")
            assert runtime.config.version == version != bad
            assert "plc-lpg" in (runtime.config.error or "")
            await until(lambda: runtime.source_set.up() == {"plc-lpg", "plc-nh3"}, 30, "the old sources back")
            assert runtime.gateway.devices[0].poll_interval_s == 0.3
            health = runtime.health()
            assert health["config"]["status"] == "rolled back"
            assert all(d["state"] == CommState.UP for d in health["devices"])
            assert original != version
        finally:
            stop.set()
            await agent


def test_a_push_for_another_gateway_or_enterprise_is_refused(sample_plant: Plant) -> None:
    raw = remote_config.payload(sample_plant.enterprises[0])
    assert remote_config.parse(raw, "E330110001", "gw01").gateway.id == "gw01"
    with pytest.raises(ConfigError, match="for enterprise E330110001"):
        remote_config.parse(raw, "E330281002", "gw01")
    with pytest.raises(ConfigError, match="no gateway gw99"):
        remote_config.parse(raw, "E330110001", "gw99")
    with pytest.raises(ConfigError, match="must be"):
        remote_config.parse(b'{"enterprise": {}}', "E330110001", "gw01")
