"""Ingest pipeline against a real PostgreSQL: readings, idempotence, dead letters, alarms."""

from __future__ import annotations

import json
import time

import msgpack
import psycopg
import pytest

from hazardwatch import wire
from hazardwatch.clock import FakeClock
from hazardwatch.ledger import Plant
from hazardwatch.quality import Quality
from ingest.ledger_sync import sync_ledger
from ingest.migrate import migrate
from ingest.pipeline import Limits, Message, Pipeline

TOPIC = wire.readings_topic("E330110001", "gw01")
Conn = psycopg.Connection[tuple[object, ...]]


def batch_message(
    seq: int, readings: list[tuple[str, int, float | None, Quality]], enterprise: str = "E330110001"
) -> Message:
    batch = wire.ReadingBatch(gateway="gw01", seq=seq, sent_ms=int(time.time() * 1000))
    for tag, ts, value, quality in readings:
        batch.append(tag, ts, value, quality)
    return Message(wire.readings_topic(enterprise, "gw01"), wire.encode(batch))


def query(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql.encode()).fetchall()


def test_readings_are_written_once_and_latest_kept(pipeline: Pipeline, database_url: str) -> None:
    now = int(time.time() * 1000)
    message = batch_message(1, [("LT101", now, 50.0, Quality.GOOD), ("PT101", now, 1.0, Quality.GOOD)])
    assert pipeline.process([message]).readings == 2
    assert pipeline.process([message]).readings == 0  # a redelivered message adds nothing
    rows = query(database_url, "SELECT count(*) FROM readings")
    assert rows == [(2,)]
    latest = query(
        database_url, "SELECT t.code, l.value FROM readings_latest l JOIN tags t ON t.id = l.tag_id"
    )
    assert sorted(latest) == [("LT101", 50.0), ("PT101", 1.0)]


def test_bad_payloads_go_to_dead_letters(pipeline: Pipeline, database_url: str) -> None:
    now = int(time.time() * 1000)
    good = batch_message(1, [("LT101", now, 50.0, Quality.GOOD)])
    mixed = batch_message(
        2,
        [
            ("NOPE9", now, 1.0, Quality.GOOD),
            ("LT102", now, float("nan"), Quality.GOOD),
            ("LT103", now + 3_600_000, 1.0, Quality.GOOD),
            ("PT102", now, None, Quality.BAD_COMM),
        ],
    )
    wrong_version = Message(TOPIC, msgpack.packb({"v": 99, "gw": "gw01"}))
    json_ok = Message(
        TOPIC,
        json.dumps({"v": 1, "gw": "gw01", "seq": 3, "sent": now, "tags": ["TT101"], "ts": [now],
                    "val": [20.5], "q": [0]}).encode(),
    )  # fmt: skip
    result = pipeline.process([Message(TOPIC, b"\xc1garbage"), good, mixed, wrong_version, json_ok])
    assert result.readings == 3  # LT101, PT102 (bad comm, no value), TT101
    reasons = [str(r[0]) for r in query(database_url, "SELECT reason FROM dead_letters ORDER BY id")]
    assert any("malformed msgpack" in r for r in reasons)
    assert any("unknown tag E330110001/NOPE9" in r for r in reasons)
    assert any("not a finite number" in r for r in reasons)
    assert any("ahead of the platform clock" in r for r in reasons)
    assert any("unknown wire version 99" in r for r in reasons)
    stored = query(
        database_url, "SELECT t.code, r.value, r.quality FROM readings r JOIN tags t ON t.id = r.tag_id"
    )
    assert ("PT102", None, int(Quality.BAD_COMM)) in stored


def test_overfill_raises_escalates_and_returns(pipeline: Pipeline, database_url: str) -> None:
    t = int(time.time() * 1000) - 600_000
    # H 85, HH 90, deadband 2 % of span; a level tag's on- and off-delay are 60 s by default, so
    # each level must be read again 60 s after it was reached (readings every 30 s)
    levels = [50.0, 86.0, 86.0, 86.0, 91.0, 91.0, 91.0, 86.0, 86.0, 86.0, 82.0, 82.0, 82.0]
    for i, level in enumerate(levels):
        pipeline.process([batch_message(i + 1, [("LT101", t + i * 30_000, level, Quality.GOOD)])])
    journal = query(
        database_url,
        "SELECT j.action, j.to_state, j.level FROM alarm_journal j ORDER BY j.id",
    )
    assert journal == [
        ("raise", "UNACK", 1),
        ("escalate", "UNACK", 2),
        ("deescalate", "UNACK", 1),  # 86 < 90 - 2 leaves HH, still above H
        ("clear", "RTN_UNACK", 1),  # 82 < 85 - 2
    ]
    alarms = query(database_url, "SELECT condition, state, active, priority FROM alarms")
    assert alarms == [("HIGH", "RTN_UNACK", False, 1)]


def test_sequence_gaps_open_on_a_jump_and_close_as_the_backlog_arrives(
    pipeline: Pipeline, database_url: str
) -> None:
    now = int(time.time() * 1000)

    def arrive(seq: int, replay: bool = False) -> None:
        message = batch_message(seq, [("LT101", now + seq, 50.0, Quality.GOOD)])
        if replay:
            message = Message(message.topic, wire.mark_replay(message.payload))
        pipeline.process([message])

    def gaps() -> tuple[object, ...]:
        counted = query(database_url, "SELECT last_seq, seq_gaps FROM gateways g JOIN enterprises e"
                        " ON e.id = g.enterprise_id WHERE e.code = 'E330110001'")  # fmt: skip
        ranges = query(database_url, "SELECT first_seq, last_seq FROM gateway_seq_gaps ORDER BY first_seq")
        return counted[0], ranges

    for seq in (1, 2, 9):  # live data goes first after an outage: 3…8 are still in the agent's buffer
        arrive(seq)
    assert gaps() == ((9, 6), [(3, 8)])
    for seq in (3, 4, 6):  # the backlog replays
        arrive(seq, replay=True)
    assert gaps() == ((9, 3), [(5, 5), (7, 8)])
    arrive(4, replay=True)  # a duplicate changes nothing
    arrive(10)
    assert gaps() == ((10, 3), [(5, 5), (7, 8)])
    for seq in (5, 7, 8):
        arrive(seq, replay=True)
    assert gaps() == ((10, 0), [])


def test_restart_raises_no_duplicate_alarm(pipeline: Pipeline, database_url: str) -> None:
    t = int(time.time() * 1000) - 100_000
    pipeline.process(
        [batch_message(1, [("LT101", t, 95.0, Quality.GOOD), ("LT101", t + 60_000, 95.0, Quality.GOOD)])]
    )
    assert query(database_url, "SELECT count(*) FROM alarm_journal") == [(1,)]  # raised after the on-delay
    fresh = Pipeline(database_url)
    try:
        fresh.process([batch_message(2, [("LT101", t + 61_000, 96.0, Quality.GOOD)])])
    finally:
        fresh.close()
    assert query(database_url, "SELECT count(*) FROM alarm_journal") == [(1,)]


def test_time_window_follows_the_injected_clock(database_url: str, sample_plant: Plant) -> None:
    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        sync_ledger(conn, sample_plant)
    clock = FakeClock(int(time.time() * 1000))
    now = clock.now_ms()
    p = Pipeline(database_url, limits=Limits(max_age_days=30, max_future_s=300), clock=clock)
    try:
        stale = batch_message(1, [("LT101", now - 31 * 86_400_000, 50.0, Quality.GOOD)])
        ahead = batch_message(2, [("LT101", now + 600_000, 50.0, Quality.GOOD)])
        assert p.process([stale, ahead]).readings == 0
        clock.advance(600)  # ten minutes later the reading from the future is on time
        assert p.process([ahead]).readings == 1
    finally:
        p.close()
    reasons = sorted(str(r[0]) for r in query(database_url, "SELECT reason FROM dead_letters"))
    assert reasons == [
        "timestamp ahead of the platform clock by more than 300 s (1 readings)",
        "timestamp older than raw retention (1 readings)",
    ]


def test_gateway_health_is_kept_and_bad_health_dead_lettered(pipeline: Pipeline, database_url: str) -> None:
    topic = wire.health_topic("E330110001", "gw01")
    health = {"v": 1, "buffer": {"batches": 3}, "devices": [{"id": "plc-lpg", "state": "up"}]}
    pipeline.process([Message(topic, json.dumps(health).encode())])
    rows = query(database_url, "SELECT health, health_at IS NOT NULL FROM gateways WHERE code = 'gw01'"
                 " AND enterprise_id = (SELECT id FROM enterprises WHERE code = 'E330110001')")  # fmt: skip
    assert rows == [(health, True)]
    pipeline.process([Message(topic, b"[1, 2]"), Message(wire.health_topic("NOPE", "gw01"), b"{}")])
    reasons = sorted(str(r[0]) for r in query(database_url, "SELECT reason FROM dead_letters"))
    assert reasons == ["health of unknown gateway NOPE/gw01", "health payload must be a JSON object"]


def test_silent_modbus_tags_go_stale_on_the_clock(database_url: str, sample_plant: Plant) -> None:
    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        sync_ledger(conn, sample_plant)
    clock = FakeClock(int(time.time() * 1000))
    p = Pipeline(database_url, clock=clock)
    try:
        assert p.tick() == 0  # watching starts: every tag gets its full period (3 polls, ≥ 10 s)
        clock.advance(5)
        p.process([batch_message(1, [("LT101", clock.now_ms(), 50.0, Quality.GOOD)])])
        clock.advance(6)  # 11 s after the start: every Modbus tag but LT101 is silent
        raised = p.tick()
        clock.advance(5)
        for seq in range(2, 9):  # PT101 is back, heard for its STALE off-delay (30 s) without a silence
            p.process([batch_message(seq, [("PT101", clock.now_ms(), 1.0, Quality.GOOD)])])
            clock.advance(5)
        p.tick()  # LT101 silent for 46 s now
    finally:
        p.close()
    rows = query(database_url, "SELECT t.code, a.state FROM alarms a JOIN tags t ON t.id = a.tag_id"
                               " WHERE a.condition = 'STALE'")  # fmt: skip
    stale = {str(code): str(state) for code, state in rows}
    modbus = {tag.code for e, _, _, tag in sample_plant.iter_tags() if tag.modbus is not None}
    assert raised == len(modbus) - 1
    assert set(stale) == modbus  # OPC-UA tags report by exception: not watched by default
    assert stale["PT101"] == "RTN_UNACK"  # readings for the off-delay ended its silence
    assert stale["LT101"] == "UNACK"


def test_a_restart_keeps_an_on_delay_that_was_running(pipeline: Pipeline, database_url: str) -> None:
    """LT101 went above H 40 s before the restart: 20 s after it, its 60 s on-delay has passed."""
    t = int(time.time() * 1000) - 70_000  # t + 61 s is in the past: ingest believes no time ahead of it
    pipeline.process([batch_message(1, [("LT101", t - 40_000, 50.0, Quality.GOOD),
                                        ("LT101", t, 87.0, Quality.GOOD)])])  # fmt: skip
    pipeline.close()
    fresh = Pipeline(database_url)  # a restarted ingest: rule state rebuilt from the database
    try:
        fresh.process([batch_message(2, [("LT101", t + 61_000, 87.5, Quality.GOOD)])])
    finally:
        fresh.close()
    raised = query(database_url, "SELECT condition, level FROM alarms")
    assert raised == [("HIGH", 1)]  # held since t (before the restart), not since t + 61 s


@pytest.mark.usefixtures("conn")  # the schema and the sample ledger
def test_a_worker_watches_and_evaluates_only_its_own_enterprises(database_url: str) -> None:
    """With several workers, one never raises silence for, nor clears a composite of, another's tags."""
    clock = FakeClock(int(time.time() * 1000))
    home, away = (
        Pipeline(database_url, clock=clock, enterprises=["E330110001"]),
        Pipeline(database_url, clock=clock, enterprises=["E330281002"]),
    )
    try:
        home.tick()
        away.tick()
        t = clock.now_ms()
        gas: list[tuple[str, int, float | None, Quality]] = [
            (c, t + 1000, 60.0, Quality.GOOD) for c in ("GT101", "GT102")
        ]  # 2 of GV101's 3 at HH
        home.process([batch_message(1, gas)])
        vote = query(database_url, "SELECT state, level FROM alarms WHERE condition = 'VOTE'")
        assert vote == [("UNACK", 2)]
        away.process([batch_message(1, [("LT301", t + 2000, 50.0, Quality.GOOD)], "E330281002")])
        clock.advance(60)  # both gateways still publish; every tag but those just heard is silent
        home.process([batch_message(2, [("LT101", clock.now_ms(), 50.0, Quality.GOOD)])])
        away.process([batch_message(2, [("LT301", clock.now_ms(), 50.0, Quality.GOOD)], "E330281002")])
        assert away.tick() == 0  # E330110001's silent Modbus tags are not this worker's
        assert query(database_url, "SELECT state, level FROM alarms WHERE condition = 'VOTE'") == vote
        assert home.tick() > 0  # its own silent Modbus tags go stale on its clock
    finally:
        home.close()
        away.close()
    stale = query(database_url, "SELECT DISTINCT e.code FROM alarms a JOIN enterprises e"
                                " ON e.id = a.enterprise_id WHERE a.condition = 'STALE'")  # fmt: skip
    assert stale == [("E330110001",)]


@pytest.mark.usefixtures("conn")  # the schema and the sample ledger
def test_a_silent_gateway_raises_one_offline_alarm_instead_of_one_stale_per_tag(database_url: str) -> None:
    clock = FakeClock(int(time.time() * 1000))
    p = Pipeline(database_url, clock=clock, enterprises=["E330110001"])

    def gateway_alarm() -> list[tuple[object, ...]]:
        return query(database_url, "SELECT state, active, detail->>'status', detail ? 'silent_s' FROM alarms"
                                   " WHERE condition = 'GATEWAY_OFFLINE' ORDER BY id")  # fmt: skip

    try:
        assert p.tick() == 0  # never heard: not watched
        p.process([batch_message(1, [("LT101", clock.now_ms(), 50.0, Quality.GOOD)])])
        clock.advance(5)
        assert p.tick() == 0
        clock.advance(7)  # 12 s without a batch or a heartbeat
        assert p.tick() == 1
        assert gateway_alarm() == [("UNACK", True, "unknown", True)]  # no status message yet: silence
        stale = query(database_url, "SELECT count(*) FROM alarms WHERE condition = 'STALE'")
        assert stale == [(0,)]  # its tags' silence is the gateway's: no flood of STALE
        p.process([batch_message(2, [("LT101", clock.now_ms(), 50.0, Quality.GOOD)])])
        clock.advance(1)
        p.tick()
        assert gateway_alarm()[0][:2] == ("RTN_UNACK", False)
        # the last will says offline: raised at the next tick, though heard a moment ago
        p.process([Message(wire.status_topic("E330110001", "gw01"), b'{"status": "offline"}')])
        p.tick()
        assert gateway_alarm()[0][:3] == ("UNACK", True, "offline")
        p.process([Message(wire.status_topic("E330110001", "gw01"), b'{"status": "online"}')])
        p.tick()
        assert gateway_alarm()[0][:3] == ("RTN_UNACK", False, "online")
    finally:
        p.close()


def _device_comm(url: str) -> list[tuple[object, ...]]:
    return query(
        url,
        "SELECT a.state, a.level, a.value, a.detail->'devices' FROM alarms a"
        " JOIN gateways g ON g.id = a.subject_id"
        " WHERE a.subject_kind = 'gateway' AND a.condition = 'DEVICE_COMM' AND g.code = 'gw01'",
    )


def _device_comm_journal(url: str) -> int:
    rows = query(
        url,
        "SELECT count(*) FROM alarm_journal j JOIN alarms a ON a.id = j.alarm_id"
        " WHERE a.condition = 'DEVICE_COMM'",
    )
    return int(str(rows[0][0]))


def _tag_faults(url: str) -> list[tuple[object, ...]]:
    return query(
        url,
        "SELECT t.code, a.state FROM alarms a JOIN tags t ON t.id = a.tag_id WHERE a.condition = 'FAULT'"
        " ORDER BY t.code",
    )


def test_a_device_that_does_not_answer_is_one_alarm_on_its_gateway_not_a_fault_per_tag(
    pipeline: Pipeline, database_url: str, sample_plant: Plant
) -> None:
    tags = sample_plant.enterprise("E330110001").tags_of_device("plc-lpg")
    lpg = [tag.code for tag in tags]
    normal = {tag.code: (tag.range[0] + tag.range[1]) / 2 for tag in tags}  # the middle of the range
    t = int(time.time() * 1000) - 60_000

    def poll(seq: int, at: int, quality: Quality) -> None:
        readings = [(code, at, normal[code] if quality.has_value else None, quality) for code in lpg]
        pipeline.process([batch_message(seq, readings)])

    poll(1, t, Quality.GOOD)
    poll(2, t + 1000, Quality.BAD_COMM)  # the PLC drops off the network: every tag BAD_COMM
    poll(3, t + 3000, Quality.BAD_COMM)
    assert _device_comm(database_url) == []  # not yet: down for 2 s, the on-delay is 5 s
    assert _tag_faults(database_url) == []  # its tags' readings are covered from the start
    poll(4, t + 6000, Quality.BAD_COMM)
    assert _device_comm(database_url) == [("UNACK", 1, 1.0, ["plc-lpg"])]
    assert _tag_faults(database_url) == []  # the device's one alarm stands for its tags
    poll(5, t + 7000, Quality.BAD_COMM)  # the next poll changes nothing
    assert _device_comm_journal(database_url) == 1

    restarted = Pipeline(database_url)  # ingest restarts while the PLC is still down
    try:
        restarted.process([batch_message(6, [(code, t + 8000, None, Quality.BAD_COMM) for code in lpg])])
        assert _device_comm_journal(database_url) == 1  # not raised twice
        assert _tag_faults(database_url) == []
        good: list[tuple[str, int, float | None, Quality]] = [
            (code, t + 9000, normal[code], Quality.GOOD) for code in lpg
        ]
        restarted.process([batch_message(7, good)])  # it answers again
        # none down now; the record keeps the worst it reached: one device down
        assert _device_comm(database_url) == [("RTN_UNACK", 1, 1.0, ["plc-lpg"])]
        assert _tag_faults(database_url) == []
        # one tag alone unreadable, the PLC answering for the others: that tag's own FAULT (after
        # FAULT's on-delay, 2 s)
        for seq, at in ((8, t + 10_000), (9, t + 12_000)):
            alone = [(code, at, None if code == lpg[0] else normal[code],
                      Quality.BAD_COMM if code == lpg[0] else Quality.GOOD) for code in lpg]  # fmt: skip
            restarted.process([batch_message(seq, alone)])
        assert _tag_faults(database_url) == [(lpg[0], "UNACK")]
        assert _device_comm(database_url)[0][0] == "RTN_UNACK"
        # a lone lost answer, back at the next poll: nothing (the on-delay)
        restarted.process([batch_message(10, [(code, t + 13_000, None, Quality.BAD_COMM) for code in lpg])])
        restarted.process([batch_message(11, [(c, t + 14_000, normal[c], Quality.GOOD) for c in lpg])])
        assert restarted.tick() >= 0
        assert _device_comm_journal(database_url) == 2  # the raise and the clear above, nothing more
    finally:
        restarted.close()


def test_a_tag_out_of_service_does_not_keep_its_device_from_being_down(
    pipeline: Pipeline, database_url: str, sample_plant: Plant
) -> None:
    lpg = [tag.code for tag in sample_plant.enterprise("E330110001").tags_of_device("plc-lpg")]
    with psycopg.connect(database_url) as conn:  # taken out of service, no longer read at all
        conn.execute("UPDATE tags SET in_service = false WHERE code = %s", (lpg[-1],))
    t = int(time.time() * 1000) - 60_000
    pipeline.process([batch_message(1, [(code, t, None, Quality.BAD_COMM) for code in lpg[:-1]])])
    assert _device_comm(database_url) == []  # reported once, as OPC-UA does: the clock raises it
    pipeline.tick()  # a minute later
    assert _device_comm(database_url) == [("UNACK", 1, 1.0, ["plc-lpg"])]
