"""One bad message never costs a good one: each hostile payload becomes one dead letter with a
reason, its neighbours in the same step are stored, and nothing logs a traceback (a traceback
means a bug, not bad input). A real pipeline on a real PostgreSQL."""

from __future__ import annotations

import logging
import time

import psycopg
import pytest

from hazardwatch import wire
from hazardwatch.quality import Quality
from ingest.pipeline import Message, Pipeline

CHLORINE = "E330281002"
LPG = "E330110001"


def readings(enterprise: str, seq: int, *values: tuple[str, float], at: int | None = None) -> Message:
    batch = wire.ReadingBatch(gateway="gw01", seq=seq, sent_ms=0)
    for tag, value in values:
        batch.append(tag, at or int(time.time() * 1000) - 1000, value, Quality.GOOD)
    return Message(wire.readings_topic(enterprise, "gw01"), wire.encode(batch))


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql.encode()).fetchall()


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("kind", "payload", "reason"),
    [
        ("health", b'{"v": 1, "at": NaN}', "health holds a number that is not finite"),
        ("health", b'{"v": 1, "at": 1e400}', "health holds a number that is not finite"),
        ("health", b'{"v": 1, "note": "a\\u0000b"}', "health holds text with a NUL character"),
        ("health", b'{"v": 1, "note": "\\ud800"}', "health holds text that is not valid Unicode"),
        ("health", b"[" * 3000 + b"]" * 3000, "malformed health payload: RecursionError"),
        ("health", b'{"a":' * 40 + b"1" + b"}" * 40, "health nests deeper than 32"),
        ("status", b"[" * 3000 + b"]" * 3000, "malformed status payload: RecursionError"),
        ("status", b'{"status": "online\\u0000"}', "status holds text with a NUL character"),
        (
            "cameras",
            b'{"v": 1, "cameras": {"CAM101": {"status": "online", "x": NaN}}}',
            "camera status holds a number that is not finite",
        ),
    ],
)
def test_a_hostile_document_costs_only_itself(
    pipeline: Pipeline, database_url: str, caplog: pytest.LogCaptureFixture, kind: str, payload: bytes,
    reason: str,
) -> None:  # fmt: skip
    hostile = Message(f"hw/v1/{LPG}/gw01/{kind}", payload)
    good = readings(LPG, 1, ("LT101", 50.0))
    with caplog.at_level(logging.INFO):
        result = pipeline.process([hostile, good])
    assert (result.readings, result.dead_letters) == (1, 1)  # the good batch of the same step is stored
    [(stored_reason,)] = rows(database_url, "SELECT reason FROM dead_letters")
    assert reason in str(stored_reason)
    assert no_tracebacks(caplog) == []


def test_a_neighbour_beyond_range_does_not_cost_a_good_reading(pipeline: Pipeline, database_url: str) -> None:
    """The issue's case: LT302 = 1e308 twice in a minute used to overflow the rollup and dead-letter
    the whole second batch, LT303's good 42.0 with it."""
    t = int(time.time() * 1000) - 2000
    pipeline.process([readings(CHLORINE, 1, ("LT302", 1e308), at=t)])
    result = pipeline.process([readings(CHLORINE, 2, ("LT302", 1e308), ("LT303", 42.0), at=t + 500)])
    assert (result.readings, result.dead_letters) == (2, 0)
    stored = rows(database_url, "SELECT t.code, r.value, r.quality FROM readings r"
                  " JOIN tags t ON t.id = r.tag_id ORDER BY r.ts, t.code")  # fmt: skip
    fault = int(Quality.INSTRUMENT_FAULT)
    assert stored == [("LT302", None, fault), ("LT302", None, fault), ("LT303", 42.0, 0)]


def test_hostile_events_are_refused_whole(pipeline: Pipeline, database_url: str) -> None:
    now = int(time.time() * 1000)

    def event(ts: int, detail: dict[str, object]) -> Message:
        e = wire.EdgeEvent("gw01", 1, ts, f"CAM101.INTRUSION.dike.{ts}", "CAM101", "INTRUSION", "new", ts, ts,
                           "dike", 0.4, False, None, detail)  # fmt: skip
        return Message(wire.events_topic(LPG, "gw01"), wire.encode_event(e))

    result = pipeline.process([
        event(now, {"note": "a\x00b"}),
        event(now, {"score": float("nan")}),
        event(now + 3_600_000, {}),  # an hour ahead: its alarm would be raised at a time not yet come
        event(2**62, {}),  # beyond any date
    ])  # fmt: skip
    assert result.dead_letters == 4
    reasons = sorted(str(r[0]) for r in rows(database_url, "SELECT kind FROM dead_letters"))
    assert reasons == ["clock_ahead", "invalid", "invalid", "invalid"]
    assert rows(database_url, "SELECT count(*) FROM alarms") == [(0,)]


def test_a_seq_of_two_to_the_32_does_not_disable_loss_detection(
    pipeline: Pipeline, database_url: str
) -> None:
    now = int(time.time() * 1000) - 10_000
    pipeline.process([readings(CHLORINE, seq, ("LT303", 10.0), at=now + seq) for seq in (1, 2)])
    pipeline.process([readings(CHLORINE, 2**32, ("LT303", 10.0), at=now + 3)])
    pipeline.process([readings(CHLORINE, seq, ("LT303", 10.0), at=now + seq + 10) for seq in (3, 5)])
    gateway = rows(database_url, "SELECT g.last_seq, g.seq_gaps, g.seq_epochs FROM gateways g"
                   f" JOIN enterprises e ON e.id = g.enterprise_id WHERE e.code = '{CHLORINE}'")  # fmt: skip
    assert gateway == [(5, 1, 2)]  # batch 4 is missing, and known to be


def test_dead_letters_are_counted_by_kind(pipeline: Pipeline, database_url: str) -> None:
    topic = wire.readings_topic(LPG, "gw01")
    pipeline.process([
        Message(topic, b"\xc1garbage"),
        Message(topic, b"x" * (5 * 2**20)),
        readings(LPG, 1, ("NOPE1", 1.0)),
        Message(wire.health_topic("NOPE", "gw01"), b"{}"),
    ])  # fmt: skip
    kinds = rows(database_url, "SELECT kind, count(*) FROM dead_letters GROUP BY 1 ORDER BY 1")
    assert kinds == [("malformed", 1), ("too_large", 1), ("unknown_gateway", 1), ("unknown_tag", 1)]


def test_a_camera_status_naming_an_unknown_camera_leaves_evidence(
    pipeline: Pipeline, database_url: str
) -> None:
    """CAM101's status is kept; CAM999, no camera of the gateway, is a dead letter, not silence."""
    body = {"CAM101": {"status": "online"}, "CAM999": {"status": "online"}}
    payload = wire.cameras_payload("gw01", body, int(time.time() * 1000))
    result = pipeline.process([Message(wire.cameras_topic(LPG, "gw01"), payload)])
    assert result.dead_letters == 1
    assert rows(database_url, "SELECT kind, reason FROM dead_letters") == [
        ("unknown_camera", f"unknown camera {LPG}/CAM999 (the others kept)")
    ]
    assert rows(database_url, "SELECT code, status FROM cameras WHERE code = 'CAM101'") == [
        ("CAM101", "online")
    ]
