"""Ingest believes the edge only as far as it can check it: time, size, sequence numbers, range.

Each test drives a real pipeline on a real PostgreSQL with a fixed clock (``FakeClock``), so a
reading "from the future" is exactly as far ahead as the test says.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import psycopg
import pytest

from hazardwatch import wire
from hazardwatch.clock import FakeClock
from hazardwatch.ledger import Plant
from hazardwatch.quality import Quality
from ingest import deadletters
from ingest.clockskew import CLEAR_AFTER_S
from ingest.ledger_sync import sync_ledger
from ingest.migrate import migrate
from ingest.pipeline import Limits, Message, Pipeline

ENTERPRISE = "E330110001"
TOPIC = wire.readings_topic(ENTERPRISE, "gw01")
Row = tuple[object, ...]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(int(time.time() * 1000))


@pytest.fixture
def pipeline(database_url: str, sample_plant: Plant, clock: FakeClock) -> Iterator[Pipeline]:
    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        sync_ledger(conn, sample_plant)
    p = Pipeline(database_url, clock=clock)
    yield p
    p.close()


def message(seq: int, readings: list[tuple[str, int, float | None]], *, replay: bool = False,
            quality: Quality = Quality.GOOD) -> Message:  # fmt: skip
    batch = wire.ReadingBatch(gateway="gw01", seq=seq, sent_ms=0, replay=replay)
    for tag, ts, value in readings:
        batch.append(tag, ts, value, quality)
    return Message(TOPIC, wire.encode(batch))


def rows(url: str, sql: str, *params: object) -> list[Row]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql.encode(), params).fetchall()


def alarms(url: str) -> list[Row]:
    return rows(url, "SELECT condition, level, active FROM alarms ORDER BY id")


def test_a_reading_from_the_future_neither_clears_an_alarm_nor_blinds_its_tag(
    pipeline: Pipeline, clock: FakeClock, database_url: str
) -> None:
    """The issue's attack: GT101 in HH, then 1.0 %LEL stamped 290 s ahead (a forged reading, or a
    gateway clock running fast). It must not clear HH, and the next leak must still be seen."""
    now = clock.now_ms()
    pipeline.process([message(1, [("GT101", now, 60.0)])])
    assert alarms(database_url) == [("HIGH", 2, True)]
    pipeline.process([message(2, [("GT101", now + 290_000, 1.0)])])
    assert alarms(database_url)[0] == ("HIGH", 2, True)  # not cleared
    stored = rows(database_url, "SELECT count(*) FROM readings WHERE ts > now() + interval '1 minute'")
    assert stored == [(0,)]  # not stored either: the real reading of that time is still to come
    letters = rows(database_url, "SELECT reason FROM dead_letters")
    assert letters == [("timestamp ahead of the platform clock by more than 5 s (1 readings)",)]
    clock.advance(1)
    pipeline.process([message(3, [("GT101", clock.now_ms(), 10.0)])])  # the real value falls: heard
    assert [active for condition, _, active in alarms(database_url) if condition == "HIGH"] == [False]
    clock.advance(1)
    pipeline.process([message(4, [("GT101", clock.now_ms(), 70.0)])])  # a new leak: raised at once
    assert [a for a in alarms(database_url) if a[0] == "HIGH"] == [("HIGH", 2, True)]


def test_a_gateway_clock_ahead_raises_one_alarm_that_clears_when_it_is_right_again(
    pipeline: Pipeline, clock: FakeClock, database_url: str
) -> None:
    for seq in range(1, 6):  # five batches, every one of them 30 s ahead
        clock.advance(0.5)
        pipeline.process(
            [message(seq, [("GT101", clock.now_ms() + 30_000, 1.0), ("GT102", clock.now_ms(), 1.0)])]
        )
    clock_alarms = rows(database_url, "SELECT condition, level, priority, value, limit_value, detail->'tags'"
                        " FROM alarms WHERE subject_kind = 'gateway'")  # fmt: skip
    assert clock_alarms == [("CLOCK_AHEAD", 1, 3, 30.0, 5.0, ["GT101"])]  # once, 三级
    assert rows(database_url, "SELECT count(*) FROM readings") == [(5,)]  # GT102's, on time, are kept
    clock.advance(CLEAR_AFTER_S / 2)
    pipeline.process([message(6, [("GT101", clock.now_ms(), 1.0)])])
    assert rows(database_url, "SELECT active FROM alarms WHERE condition = 'CLOCK_AHEAD'") == [(True,)]
    clock.advance(CLEAR_AFTER_S / 2)
    pipeline.tick()  # a minute without a reading ahead: the clock is right again
    assert rows(database_url, "SELECT active FROM alarms WHERE condition = 'CLOCK_AHEAD'") == [(False,)]


def test_a_clock_that_steps_back_within_the_tolerance_recovers_by_itself(
    pipeline: Pipeline, clock: FakeClock, database_url: str
) -> None:
    """A reading 4 s ahead is believed; when the gateway's clock steps back, the tag's next real
    reading (older than that one) is still evaluated: no tag waits for the future to arrive."""
    now = clock.now_ms()
    pipeline.process([message(1, [("GT101", now + 4_000, 1.0)])])
    clock.advance(0.5)
    pipeline.process([message(2, [("GT101", now + 1_000, 60.0)])])
    assert alarms(database_url) == [("HIGH", 2, True)]


def test_a_restarted_ingest_does_not_clear_the_clock_alarm_it_did_not_watch(
    pipeline: Pipeline, clock: FakeClock, database_url: str
) -> None:
    pipeline.process([message(1, [("GT101", clock.now_ms() + 60_000, 1.0)])])
    pipeline.close()
    fresh = Pipeline(database_url, clock=clock)
    try:
        fresh.tick()
        assert rows(database_url, "SELECT active FROM alarms WHERE condition = 'CLOCK_AHEAD'") == [(True,)]
        clock.advance(CLEAR_AFTER_S)
        fresh.tick()
    finally:
        fresh.close()
    assert rows(database_url, "SELECT active FROM alarms WHERE condition = 'CLOCK_AHEAD'") == [(False,)]


def test_a_huge_payload_is_refused_unread_and_kept_as_a_bounded_prefix(
    database_url: str, sample_plant: Plant
) -> None:
    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        sync_ledger(conn, sample_plant)
    huge = b"\x93" + bytes(range(256)) * (20 * 4096)  # 20 MiB of garbage
    p = Pipeline(database_url)
    try:
        assert p.process([Message(TOPIC, huge)]).dead_letters == 1
    finally:
        p.close()
    [(reason, size, kept, digest)] = rows(
        database_url, "SELECT reason, payload_size, octet_length(payload), payload_sha256 FROM dead_letters"
    )
    assert reason == f"payload of {len(huge)} bytes exceeds {Limits().max_payload_bytes}; not read"
    assert (size, kept) == (len(huge), deadletters.MAX_PREFIX_BYTES)
    assert isinstance(digest, bytes)
    assert digest == hashlib.sha256(huge).digest()


def test_a_forged_sequence_number_starts_an_epoch_instead_of_a_resend_storm(
    pipeline: Pipeline, clock: FakeClock, database_url: str
) -> None:
    now = clock.now_ms()
    for seq in (1, 2, 900_000, 3, 4):  # the forgery, then the real agent goes on
        pipeline.process([message(seq, [("GT101", now + seq % 1000, 1.0)])])
    gateway = "SELECT last_seq, seq_gaps, seq_epochs FROM gateways WHERE code = 'gw01' AND enterprise_id ="
    gateway += " (SELECT id FROM enterprises WHERE code = %s)"
    assert rows(database_url, gateway, ENTERPRISE) == [(4, 0, 2)]  # away and back: two epochs, no gap
    clock.advance(3600)
    assert rows(database_url, "SELECT count(*) FROM gateway_seq_gaps") == [(0,)]
    assert pipeline.resend_requests() == []
    pipeline.process([message(6, [("GT101", clock.now_ms(), 1.0)])])  # and loss is still detected
    assert rows(database_url, gateway, ENTERPRISE) == [(6, 1, 2)]


def test_gaps_nobody_can_fill_are_given_up_and_counted(
    database_url: str, sample_plant: Plant, clock: FakeClock
) -> None:
    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        sync_ledger(conn, sample_plant)
    p = Pipeline(database_url, clock=clock, limits=Limits(max_gap_age_h=0.0))
    try:
        p.process([message(1, [("GT101", clock.now_ms(), 1.0)])])
        p.process([message(11, [("GT101", clock.now_ms() + 1, 1.0)])])  # batches 2..10 missing
        assert p.resend_requests() == []  # too old to ask for: given up
    finally:
        p.close()
    assert rows(database_url, "SELECT seq_gaps, seq_lost FROM gateways WHERE last_seq = 11") == [(0, 9)]


def test_a_value_far_beyond_its_range_is_stored_as_an_instrument_fault(
    pipeline: Pipeline, clock: FakeClock, database_url: str
) -> None:
    """PT101 measures 0–2.5 MPa: 1e308 is no pressure; 2.55 (within NE 43's +3.125 %) still is."""
    now = clock.now_ms()
    pipeline.process([message(1, [("PT101", now - 2000, 1e308), ("PT101", now - 1000, 2.55),
                                  ("LT101", now - 1000, 50.0)])])  # fmt: skip
    stored = rows(database_url, "SELECT t.code, r.value, r.quality FROM readings r"
                  " JOIN tags t ON t.id = r.tag_id ORDER BY r.ts, t.code")  # fmt: skip
    assert stored == [
        ("PT101", None, int(Quality.INSTRUMENT_FAULT)),
        ("LT101", 50.0, int(Quality.GOOD)),
        ("PT101", 2.55, int(Quality.GOOD)),
    ]


def test_dead_letters_keep_their_retention_and_size_cap(database_url: str) -> None:
    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        letters = [deadletters.DeadLetter(TOPIC, bytes([i]) * 40_000, f"letter {i}") for i in range(6)]
        deadletters.store(conn, letters)
        conn.execute(
            "UPDATE dead_letters SET received_at = now() - interval '40 days' WHERE reason = 'letter 0'"
        )
        done = deadletters.prune(conn, days=30, max_bytes=100_000)
        kept = [str(r[0]) for r in conn.execute("SELECT reason FROM dead_letters ORDER BY id")]
    assert kept == ["letter 4", "letter 5"]  # the newest within 100,000 bytes
    assert done == [
        "dropped 1 dead letters older than 30 days",
        "dropped the 3 oldest dead letters beyond 0 MiB of payload",
    ]


def test_ingest_records_each_tags_first_reading_and_each_gateways_first_contact(
    pipeline: Pipeline, clock: FakeClock, database_url: str
) -> None:
    """Online rates count a tag from its first reading (or its gateway's first contact)."""
    first = clock.now_ms() - 5000
    pipeline.process([message(1, [("GT101", first, 1.0)])])
    pipeline.process([message(2, [("GT101", first + 1000, 1.0), ("GT102", first + 2000, 1.0)])])
    read = rows(database_url, "SELECT code, (extract(epoch FROM first_read_at) * 1000)::bigint FROM tags"
                " WHERE first_read_at IS NOT NULL ORDER BY code")  # fmt: skip
    assert read == [("GT101", first), ("GT102", first + 2000)]
    heard = rows(database_url, "SELECT e.code, g.first_seen_at IS NOT NULL FROM gateways g"
                 " JOIN enterprises e ON e.id = g.enterprise_id ORDER BY 1")  # fmt: skip
    assert heard == [("E330110001", True), ("E330281002", False)]
