"""End to end, every part a real process: simulators → agent → MQTT → ingest → alarms.

The broker and the database are private to the test; the simulated devices, the simulator
control endpoint and the dashboard listen on free ports.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

from hazardwatch import envfile
from hazardwatch.settings import parse_mqtt_url
from tests.support import (
    AuthBroker,
    authenticated_mosquitto,
    free_port,
    plant_doc_on_ports,
    wait_for_port,
    write_plant,
)

pytestmark = pytest.mark.e2e
T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Stack:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def hw(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "hazardwatch", *args]

    def start(self, name: str, *args: str) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            self.hw(*args), env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.hw(*args), env=self.env, capture_output=True, text=True, timeout=60, check=False
        )

    def alive(self, name: str) -> bool:
        return self.procs[name].poll() is None

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(encoding="utf-8", errors="replace")

    def stop(self) -> dict[str, int]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        return {name: proc.wait(timeout=20) for name, proc in self.procs.items()}


def make_stack(tmp_path: Path, mqtt_port: int, database_url: str, doc: dict[str, Any]) -> Stack:
    """A migrated stack on the given plant and broker; nothing started yet."""
    env = dict(os.environ)
    env.update(
        HW_DATABASE_URL=database_url,
        HW_MQTT_URL=f"mqtt://127.0.0.1:{mqtt_port}",
        HW_DEVICES=str(write_plant(doc, tmp_path)),
        HW_SIM_CONTROL=f"127.0.0.1:{free_port()}",
        HW_VAR_DIR=str(tmp_path / "var"),
        HW_AGENT_METRICS="off",
        PYTHONUNBUFFERED="1",
    )
    s = Stack(env, tmp_path)
    migrated = s.run("migrate", "--sync")
    assert migrated.returncode == 0, migrated.stderr
    return s


def start_everything(stack: Stack) -> None:
    stack.start("simulate", "simulate")
    wait_for_port(int(stack.env["HW_SIM_CONTROL"].rsplit(":", 1)[1]), timeout=30)
    stack.start("ingest", "ingest", "--no-sync")
    stack.start("agent", "agent")


def stop_and_show(stack: Stack) -> None:
    codes = stack.stop()
    for name in stack.procs:
        print(f"----- {name} (exit {codes[name]}) -----\n{stack.log(name)[-3000:]}")


def quick_plant_doc() -> dict[str, Any]:
    """The sample plant on free ports; LT101's delays (the level default is 60 s), frozen window and
    off-delay, prediction window and on-delay shortened to fit a test (a prediction needs readings
    over half its window)."""
    doc = plant_doc_on_ports(free_port(), free_port())
    for enterprise in doc["enterprises"]:
        for source in enterprise["hazard_sources"]:
            for equipment in source["equipment"]:
                for tag in equipment["tags"]:
                    if tag["code"] == "LT101":
                        tag.update(on_delay_s=3, off_delay_s=3, frozen={"window_s": 5, "off_delay_s": 5},
                                   predict={"response_s": 600, "window_s": 10, "on_delay_s": 1})  # fmt: skip
    return doc


def start_authenticated(stack: Stack, broker: AuthBroker) -> None:
    """As `hazardwatch up` runs its stack: ingest and an agent per gateway, each under its own broker
    identity (``--env-file``), on a broker configured by `hazardwatch broker config`."""
    stack.start("simulate", "simulate")
    wait_for_port(int(stack.env["HW_SIM_CONTROL"].rsplit(":", 1)[1]), timeout=30)
    stack.start("ingest", "ingest", "--no-sync", "--env-file", str(broker.env_file("hw-ingest-1")))
    for enterprise in ("E330110001", "E330281002"):
        stack.start(f"agent-{enterprise}", "agent", "--enterprise", enterprise, "--gateway", "gw01",
                    "--env-file", str(broker.env_file(f"hw-agent-{enterprise}-gw01")))  # fmt: skip


@pytest.fixture
def broker(tmp_path: Path) -> Path:
    return tmp_path / "broker"


@pytest.fixture
def stack(tmp_path: Path, broker: Path, database_url: str) -> Iterator[Stack]:
    """The README's scenarios run on the stack as `make up` runs it: authentication and ACL on."""
    port = free_port()
    s = make_stack(tmp_path, port, database_url, quick_plant_doc())
    with authenticated_mosquitto(broker, Path(s.env["HW_DEVICES"]), port) as running:
        start_authenticated(s, running)
        try:
            yield s
        finally:
            stop_and_show(s)


def _rows(url: str, query: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query.encode(), params).fetchall()


def test_overfill_raises_one_alarm_and_clears_it(stack: Stack, database_url: str) -> None:
    # every tag of both enterprises reports, over Modbus and OPC-UA
    eventually(
        lambda: _rows(database_url, "SELECT count(*) FROM readings_latest")[0][0] == 49, 60, "all 49 tags"
    )
    # 1 %/s: a climb through its 10 s trend window (at the default 4 %/s it is a step, not a trend)
    scenario = stack.run("simulate", "--scenario", "overfill", "--tag", "LT101", "--enterprise", "E330110001",
                         "--rate", "1")  # fmt: skip
    assert scenario.returncode == 0, scenario.stderr

    alarm_query = (
        "SELECT a.id, a.level, a.priority, a.state, e.code, hs.code FROM alarms a"
        " JOIN tags t ON t.id = a.tag_id JOIN enterprises e ON e.id = a.enterprise_id"
        " JOIN hazard_sources hs ON hs.id = a.hazard_source_id"
        " WHERE t.code = 'LT101' AND a.condition = 'HIGH'"
    )
    raised = eventually(
        lambda: [r for r in _rows(database_url, alarm_query) if r[1] == 2], 60, "the HH alarm of LT101"
    )
    alarm_id, _, priority, _, enterprise, source = raised[0]
    assert (priority, enterprise, source) == (1, "E330110001", "HS330110001-01")

    cleared = eventually(
        lambda: [r for r in _rows(database_url, alarm_query) if r[3] == "RTN_UNACK"],
        90,
        "the return to normal",
    )
    assert len(cleared) == 1
    actions = [
        r[0]
        for r in _rows(
            database_url, "SELECT action FROM alarm_journal WHERE alarm_id = %s ORDER BY id", alarm_id
        )
    ]
    assert actions[0] == "raise"
    assert actions.count("raise") == 1
    # reaching HH: by escalation, or raised at HH at once when the level passed H and HH within
    # the on-delay (the alarm follows the level that held for the delay)
    assert "escalate" in actions or _rows(
        database_url, "SELECT level FROM alarm_journal WHERE alarm_id = %s AND action = 'raise'", alarm_id
    ) == [(2,)]
    assert actions[-1] == "clear"
    assert len(_rows(database_url, alarm_query)) == 1  # raised once, one alarm row
    predicted = _rows(
        database_url,
        "SELECT a.priority FROM alarms a JOIN tags t ON t.id = a.tag_id"
        " WHERE t.code = 'LT101' AND a.condition = 'PREDICT'",
    )
    assert predicted == [(3,)]  # the climb was seen coming (预警), as a low-priority warning
    # the value was back below H minus the deadband (85 - 2) when it cleared
    clear_value = _rows(
        database_url, "SELECT value FROM alarm_journal WHERE alarm_id = %s AND action = 'clear'", alarm_id
    )[0][0]
    assert isinstance(clear_value, float)
    assert clear_value < 83.0


def test_garbage_is_dead_lettered_and_ingest_keeps_running(
    stack: Stack, database_url: str, broker: Path
) -> None:
    """The README's example: a throwaway identity (the real gateway's would throw its agent off
    the broker) publishes garbage; anonymous publishing is refused."""
    eventually(lambda: _rows(database_url, "SELECT count(*) FROM readings")[0][0] != 0, 60, "first readings")
    issued = stack.run("credentials", "issue", "--enterprise", "E330110001", "--gateway", "test01",
                       "--broker-dir", str(broker))  # fmt: skip
    assert issued.returncode == 0, issued.stderr
    creds = envfile.read(broker / "credentials" / "hw-agent-E330110001-test01.env")
    address = parse_mqtt_url(creds["HW_MQTT_URL"])
    topic = "hw/v1/E330110001/test01/readings"
    pub = [
        "mosquitto_pub",
        "-h",
        address.host,
        "-p",
        str(address.port),
        "-q",
        "1",
        "-t",
        topic,
        "-m",
        "garbage",
    ]
    anonymous = subprocess.run(pub, capture_output=True, text=True, timeout=10, check=False)
    assert anonymous.returncode != 0  # not authorised
    authenticated = [*pub, "-u", str(address.username), "-P", creds["HW_MQTT_PASSWORD"]]
    eventually(
        lambda: subprocess.run(authenticated, capture_output=True, timeout=10, check=False).returncode == 0,
        15,
        "the broker to take the new identity (reloaded)",
    )
    letters = eventually(
        lambda: _rows(database_url, "SELECT topic, reason FROM dead_letters WHERE topic = %s", topic),
        30,
        "the dead letter",
    )
    assert letters[0][0] == topic
    assert "malformed" in str(letters[0][1])
    before = _rows(database_url, "SELECT count(*) FROM readings")[0][0]
    assert isinstance(before, int)
    eventually(
        lambda: int(str(_rows(database_url, "SELECT count(*) FROM readings")[0][0])) > before,
        30,
        "more readings",
    )
    assert stack.alive("ingest")
    listing = stack.run("deadletters")
    assert listing.returncode == 0
    assert "malformed" in listing.stdout
    assert "+08:00 hw/v1/" in listing.stdout  # shown in the user's time zone (stored in UTC)
    online = stack.run("online", "--hours", "0.1", "--by", "enterprise")
    assert online.returncode == 0, online.stderr
    assert "+08:00 (received / expected readings)" in online.stdout.splitlines()[0]
    rates = {line.split()[0]: float(line.split()[1]) for line in online.stdout.splitlines()[1:]}
    assert set(rates) == {"E330110001", "E330281002"}  # the figures themselves: tests/test_storage.py


def scenario_alarm(stack: Stack, database_url: str, scenario: str, enterprise: str, tag: str,
                   condition: str) -> str:  # fmt: skip
    """Drive a scenario on a tag; wait for its alarm, then for its return to normal; the query."""
    eventually(
        lambda: _rows(database_url, "SELECT count(*) FROM readings_latest")[0][0] == 49, 60, "all 49 tags"
    )
    started = stack.run("simulate", "--scenario", scenario, "--enterprise", enterprise, "--tag", tag)
    assert started.returncode == 0, started.stderr
    query = (
        "SELECT a.state, a.priority FROM alarms a JOIN tags t ON t.id = a.tag_id"
        f" WHERE t.code = '{tag}' AND a.condition = '{condition}'"
    )
    # UNACK, not just present: a machine under load may have seen one transient bad reading of the
    # tag at start-up (a read timeout), an alarm already back to normal that the scenario re-raises
    raised = eventually(
        lambda: [r for r in _rows(database_url, query) if r[0] == "UNACK"],
        30,
        f"the {condition} alarm of {tag}",
    )
    assert raised[0] == ("UNACK", 3)
    eventually(lambda: _rows(database_url, query)[0][0] == "RTN_UNACK", 60, f"{tag} back to normal")
    return query


def test_failed_transmitter_raises_an_instrument_fault(stack: Stack, database_url: str) -> None:
    """OPC-UA BadSensorFailure → BAD quality → a FAULT alarm, cleared when the transmitter recovers."""
    scenario_alarm(stack, database_url, "sensor-fault", "E330281002", "PT301", "FAULT")
    high = _rows(
        database_url, "SELECT count(*) FROM alarms a JOIN tags t ON t.id = a.tag_id WHERE t.code = 'PT301'"
    )
    assert high == [(1,)]  # a dead sensor raises a fault, never a process alarm


def test_frozen_transmitter_raises_a_frozen_value_alarm(stack: Stack, database_url: str) -> None:
    """A transmitter stuck at one value for longer than its frozen window (5 s here) is an alarm."""
    scenario_alarm(stack, database_url, "sensor-freeze", "E330110001", "LT101", "FROZEN")


def test_a_gas_leak_on_two_detectors_raises_them_their_vote_and_the_hazard_source_warning(
    stack: Stack, database_url: str
) -> None:
    """A gas leak reaching GT101 and GT102 drives both through 25 % and 50 % LEL: two 一级 gas
    alarms, the 2oo3 group GV101 voting at HH, and the LPG farm's hazard-source warning — each once."""
    eventually(
        lambda: _rows(database_url, "SELECT count(*) FROM readings_latest")[0][0] == 49, 60, "all 49 tags"
    )
    started = stack.run("simulate", "--scenario", "gas-leak", "--enterprise", "E330110001", "--tag", "GT101",
                        "--spread", "1")  # the leak reaches GT102 too  # fmt: skip
    assert started.returncode == 0, started.stderr
    gas = (
        "SELECT t.code, max(j.level), min(a.priority) FROM alarms a JOIN tags t ON t.id = a.tag_id"
        " JOIN alarm_journal j ON j.alarm_id = a.id"
        " WHERE a.condition = 'HIGH' AND t.code IN ('GT101', 'GT102')"
        " GROUP BY t.code ORDER BY t.code"
    )

    def both_at_hh() -> list[tuple[object, ...]] | None:
        rows = _rows(database_url, gas)
        return rows if [r[1] for r in rows] == [2, 2] else None

    assert eventually(both_at_hh, 60, "HH (50 % LEL) on both") == [("GT101", 2, 1), ("GT102", 2, 1)]
    composites = (
        "SELECT a.condition, a.subject_kind, max(j.level), count(DISTINCT a.id) FROM alarms a"
        " JOIN alarm_journal j ON j.alarm_id = a.id WHERE a.condition IN ('VOTE', 'SOURCE')"
        " GROUP BY a.condition, a.subject_kind ORDER BY a.condition"
    )

    def voted() -> list[tuple[object, ...]] | None:
        rows = _rows(database_url, composites)
        return rows if len(rows) == 2 and rows[1][2] == 2 else None

    got = eventually(voted, 30, "the vote at HH and the hazard-source warning")
    assert got == [("SOURCE", "hazard_source", 1, 1), ("VOTE", "vote_group", 2, 1)]
    source = _rows(
        database_url,
        "SELECT hs.code, v.code FROM alarms a JOIN hazard_sources hs ON hs.id = a.hazard_source_id"
        " LEFT JOIN vote_groups v ON v.id = a.subject_id AND a.subject_kind = 'vote_group'"
        " WHERE a.condition = 'VOTE'",
    )
    assert source == [("HS330110001-01", "GV101")]
    cleared = "SELECT bool_and(NOT active) FROM alarms WHERE condition IN ('VOTE', 'SOURCE')"
    eventually(lambda: _rows(database_url, cleared) == [(True,)], 90, "the composites back to normal")


def test_devices_that_stop_answering_raise_one_alarm_per_gateway_not_a_fault_per_tag(
    stack: Stack, database_url: str
) -> None:
    eventually(
        lambda: _rows(database_url, "SELECT count(*) FROM readings_latest")[0][0] == 49, 60, "all 49 tags"
    )
    since = _rows(database_url, "SELECT now()")[0][0]
    stack.procs["simulate"].terminate()  # the PLCs and the DCS go: Modbus and OPC-UA both unreachable
    stack.procs["simulate"].wait(timeout=20)
    query = (
        "SELECT e.code, a.state, a.detail->'devices' FROM alarms a JOIN gateways g ON g.id = a.subject_id"
        " JOIN enterprises e ON e.id = g.enterprise_id"
        " WHERE a.subject_kind = 'gateway' AND a.condition = 'DEVICE_COMM' ORDER BY e.code"
    )
    # one alarm per gateway; the first one names both of its PLCs once the second is down too
    expected = [("E330110001", "UNACK", ["plc-lpg", "plc-nh3"]), ("E330281002", "UNACK", ["dcs"])]
    eventually(lambda: _rows(database_url, query) == expected, 60, "both gateways' DEVICE_COMM")
    time.sleep(3)  # more polls of the dead devices
    faults = _rows(
        database_url,
        "SELECT count(*) FROM alarm_journal j JOIN alarms a ON a.id = j.alarm_id"
        " WHERE a.condition = 'FAULT' AND j.action = 'raise' AND j.at >= %s",
        since,
    )
    assert faults == [(0,)]  # no flood of one FAULT per tag
