"""The uplink publishes every alarm change to a real Mosquitto, at least once, never skipping one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from alarms.outbox import drain, position
from alarms.store import Actor, acknowledge
from alarms.uplink import NAME, Uplink, UplinkUnavailable
from hazardwatch.clock import FakeClock, SystemClock
from hazardwatch.ledger import Plant
from hazardwatch.settings import MqttAddress
from tests.support import free_port, private_mosquitto
from tests.workflow_support import START_MS, raise_alarm, seed

Conn = psycopg.Connection[tuple[object, ...]]


@contextmanager
def listening(port: int) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """A downstream subscriber of hw/v1/alarms/#; yields the (topic, message) list it fills."""
    got: list[tuple[str, dict[str, Any]]] = []
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"downstream-{port}-{time.time_ns()}")
    client.on_connect = lambda c, *_: c.subscribe("hw/v1/alarms/#", qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, m: got.append((m.topic, json.loads(m.payload)))
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert subscribed.wait(10)
    try:
        yield got
    finally:
        client.disconnect()
        client.loop_stop()


def until(probe: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def tags(database_url: str, sample_plant: Plant) -> dict[str, int]:
    return seed(database_url, sample_plant)


@pytest.fixture
def conn(database_url: str, tags: dict[str, int]) -> Iterator[Conn]:
    with psycopg.connect(database_url, autocommit=True) as c:
        yield c


def test_every_change_goes_up_once_the_broker_acknowledged_it_and_waits_out_an_outage(
    conn: Conn, tags: dict[str, int]
) -> None:
    lt101 = tags["E330110001/LT101"]
    clock = FakeClock(START_MS)
    alarm_id = raise_alarm(conn, lt101, clock)  # HH of LT101: 一级
    acknowledge(conn, alarm_id, Actor("qiye", "enterprise"), "现场确认")
    port = free_port()
    uplink = Uplink(MqttAddress("127.0.0.1", port), client_id="hw-uplink-test", ack_timeout_s=3)
    uplink.start()
    try:
        with private_mosquitto(port=port), listening(port) as got:
            assert uplink.wait_connected(20)
            assert drain(conn, uplink) == 2
            until(lambda: len(got) == 2)
            topics = {t for t, _ in got}
            assert topics == {"hw/v1/alarms/330110/E330110001"}
            raise_msg, ack_msg = (m for _, m in got)
            assert (raise_msg["v"], raise_msg["action"], raise_msg["to_state"]) == (1, "raise", "UNACK")
            assert raise_msg["alarm"] | {"raised_at": None} == raise_msg["alarm"] | {
                "id": alarm_id, "enterprise": "E330110001", "division": "330110",
                "hazard_source": "HS330110001-01", "subject_kind": "tag", "subject": "LT101",
                "condition": "HIGH", "kind": "limit", "priority": 1, "raised_at": None,
            }  # fmt: skip
            assert (ack_msg["action"], ack_msg["actor"], ack_msg["role"], ack_msg["comment"]) == (
                "ack", "qiye", "enterprise", "现场确认")  # fmt: skip
            assert raise_msg["journal_id"] < ack_msg["journal_id"]
            assert drain(conn, uplink) == 0  # caught up: nothing twice
        # the broker is away: a new change waits; the position does not move past it
        raise_alarm(conn, lt101, clock, level=0)
        before = position(conn, NAME)
        assert before is not None
        with pytest.raises(UplinkUnavailable):
            drain(conn, uplink)
        assert position(conn, NAME) == before
        with private_mosquitto(port=port), listening(port) as got:
            assert uplink.wait_connected(40)  # paho reconnects by itself
            assert drain(conn, uplink) == 1
            until(lambda: len(got) == 1)
            assert (got[0][1]["action"], got[0][1]["to_state"]) == ("clear", "NORMAL")
    finally:
        uplink.close()


def test_workflows_once_with_an_uplink_publishes_the_journal(
    database_url: str, conn: Conn, tags: dict[str, int], mqtt_port: int
) -> None:
    raise_alarm(conn, tags["E330281002/LT301"], SystemClock())  # now: nothing overdue yet
    env = {**os.environ, "HW_DATABASE_URL": database_url, "HW_UPLINK_URL": f"mqtt://127.0.0.1:{mqtt_port}"}
    with listening(mqtt_port) as got:
        result = subprocess.run([sys.executable, "-m", "hazardwatch", "workflows", "--once"], env=env,
                                capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "uplinked 1" in result.stdout
        until(lambda: len(got) == 1)
    assert got[0][0] == "hw/v1/alarms/330281/E330281002"
    assert got[0][1]["alarm"]["subject"] == "LT301"
