"""The agent's observability: retained heartbeat, health files, `agent status` and /metrics."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway_agent.agent import GatewayRuntime, run_agent
from gateway_agent.status import gateway_statuses
from hazardwatch import wire
from hazardwatch.ledger import load_plant
from hazardwatch.settings import MqttAddress
from tests.support import ROOT, free_port, plant_doc_on_ports, private_mosquitto, write_plant
from tests.test_gateway_agent import simulators, until


@pytest.fixture
def mqtt_port() -> Iterator[int]:
    """A broker of this test's own: no retained heartbeat of another test's agent."""
    with private_mosquitto() as port:
        yield port


def fast_heartbeat_plant(tmp_path: Path) -> Path:
    doc = plant_doc_on_ports(free_port(), free_port())
    for enterprise in doc["enterprises"]:
        for gateway in enterprise["gateways"]:
            gateway["heartbeat_s"] = 1
    return write_plant(doc, tmp_path)


async def test_heartbeat_status_and_metrics_tell_the_gateways_health(tmp_path: Path, mqtt_port: int) -> None:
    devices = fast_heartbeat_plant(tmp_path)
    plant = load_plant(devices)
    health_seen: dict[str, Any] = {}
    got_health = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"health-{time.monotonic_ns()}")

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        health_seen[msg.topic] = json.loads(msg.payload)
        got_health.set()

    client.on_connect = lambda c, *_: c.subscribe("hw/v1/+/+/health", qos=1)
    client.on_message = on_message
    client.connect("127.0.0.1", mqtt_port)
    client.loop_start()
    state_dir = tmp_path / "agent"
    metrics_port = free_port()
    runtimes: dict[tuple[str, str], GatewayRuntime] = {}
    try:
        async with simulators(plant):
            stop = asyncio.Event()
            agent = asyncio.create_task(
                run_agent(
                    plant,
                    MqttAddress("127.0.0.1", mqtt_port),
                    state_dir=state_dir,
                    stop=stop,
                    metrics=("127.0.0.1", metrics_port),
                    runtimes=runtimes,
                )
            )
            try:
                await until(lambda: len(runtimes) == 2, 20, "both gateways running")
                await until(
                    lambda: all(
                        d["state"] == "up" and int(d["readings"]) > 0
                        for r in runtimes.values()
                        for d in r.health()["devices"]
                    ),
                    30,
                    "every device answering",
                )
                topics = {wire.health_topic(e, g) for e, g in runtimes}
                await until(lambda: topics <= set(health_seen), 15, "a retained heartbeat per gateway")
                topic = wire.health_topic("E330110001", "gw01")
                await until(
                    lambda: health_seen[topic]["mqtt"]["connected"], 15, "a heartbeat while connected"
                )
                url = f"http://127.0.0.1:{metrics_port}/metrics"
                async with aiohttp.ClientSession() as session, session.get(url) as response:
                    assert response.status == 200
                    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                    text = await response.text()
            finally:
                stop.set()
                await agent
    finally:
        client.disconnect()
        client.loop_stop()

    health = health_seen[wire.health_topic("E330110001", "gw01")]
    assert {d["id"] for d in health["devices"]} == {"plc-lpg", "plc-nh3"}
    assert health["buffer"]["durability"] == "power-loss"
    labels = 'enterprise="E330110001",gateway="gw01",device="plc-lpg"'
    assert f"hw_agent_device_up{{{labels}}} 1" in text
    produced = [line for line in text.splitlines() if line.startswith("hw_agent_readings_produced_total{")]
    assert len(produced) == 2
    assert all(float(line.split()[-1]) > 0 for line in produced)
    assert 'hw_agent_mqtt_connected{enterprise="E330281002",gateway="gw01"} 1' in text

    # after the agent stopped: the files tell what it last saw; later, that it is gone
    statuses = {(s.enterprise, s.gateway): s for s in gateway_statuses(state_dir)}
    assert set(statuses) == {("E330110001", "gw01"), ("E330281002", "gw01")}
    final = statuses["E330110001", "gw01"]
    assert final.health["buffer"]["produced_readings"] >= final.health["buffer"]["readings"]
    later = gateway_statuses(state_dir, now_ms=int(final.health["at"]) + 60_000)
    assert all(any("no heartbeat" in p for p in s.problems) for s in later)

    env = {**os.environ, "HW_VAR_DIR": str(tmp_path)}
    cli = subprocess.run(
        [sys.executable, "-m", "hazardwatch", "agent", "status", "--state-dir", str(state_dir)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=60,
    )  # fmt: skip
    assert "E330110001/gw01" in cli.stdout, cli.stderr
    assert "plc-lpg" in cli.stdout
    assert cli.returncode == 1  # the agent is stopped: not connected to the broker any more
    empty = subprocess.run(
        [sys.executable, "-m", "hazardwatch", "agent", "status", "--state-dir", str(tmp_path / "none")],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=60,
    )  # fmt: skip
    assert empty.returncode == 2
    assert "no gateway health" in empty.stdout
