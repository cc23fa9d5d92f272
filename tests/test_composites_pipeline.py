"""Composite alarms through ingest against a real PostgreSQL: VOTE on a voting group, SOURCE on a
hazard source, the ledger tables behind them, and no duplicate after a restart."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg

from hazardwatch.ledger import Plant, load_plant
from hazardwatch.quality import Quality
from ingest.ledger_sync import sync_ledger
from ingest.migrate import migrate
from ingest.pipeline import Pipeline
from tests.support import sample_plant_doc, write_plant
from tests.test_pipeline import batch_message, query

COMPOSITES = (
    "SELECT a.subject_kind, a.condition, a.level, a.state, a.active, a.value, a.limit_value,"
    " coalesce(v.code, hs.code), hs.code, eq.code FROM alarms a"
    " LEFT JOIN vote_groups v ON a.subject_kind = 'vote_group' AND v.id = a.subject_id"
    " LEFT JOIN hazard_sources hs ON hs.id = a.hazard_source_id"
    " LEFT JOIN equipment eq ON eq.id = a.equipment_id"
    " WHERE a.subject_kind <> 'tag' ORDER BY a.condition"
)


def _ingest(pipeline: Pipeline, seq: int, ts: int, **values: float) -> None:
    pipeline.process([batch_message(seq, [(tag, ts, v, Quality.GOOD) for tag, v in values.items()])])


def test_vote_and_source_alarms_land_on_their_subjects_and_survive_a_restart(
    database_url: str, sample_plant: Plant
) -> None:
    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        sync_ledger(conn, sample_plant)
    t = int(time.time() * 1000) - 60_000
    pipeline = Pipeline(database_url)
    try:
        _ingest(pipeline, 1, t, GT101=30.0, GT104=5.0)  # one detector of the 2oo3 at H: no composite
        assert query(database_url, COMPOSITES) == []
        _ingest(pipeline, 2, t + 1000, GT102=28.0)  # two of three: VOTE; two tags of the farm: SOURCE
        assert query(database_url, COMPOSITES) == [
            ("hazard_source", "SOURCE", 1, "UNACK", True, 2.0, 2.0, "HS330110001-01", "HS330110001-01", None),
            ("vote_group", "VOTE", 1, "UNACK", True, 2.0, 2.0, "GV101", "HS330110001-01", "A101"),
        ]
        _ingest(pipeline, 3, t + 2000, GT101=55.0, GT102=60.0)  # both at HH at once: VOTE level 2
    finally:
        pipeline.close()
    fresh = Pipeline(database_url)  # a restarted ingest: composites rebuilt from the open alarms
    try:
        _ingest(fresh, 4, t + 3000, GT101=56.0, GT102=61.0, GT103=2.0)
        _ingest(fresh, 5, t + 4000, GT101=3.0, GT102=4.0)
    finally:
        fresh.close()
    journal = query(
        database_url,
        "SELECT a.subject_kind, a.condition, j.action, j.level FROM alarm_journal j JOIN alarms a"
        " ON a.id = j.alarm_id WHERE a.subject_kind <> 'tag' ORDER BY j.id",
    )
    assert journal == [
        ("vote_group", "VOTE", "raise", 1),
        ("hazard_source", "SOURCE", "raise", 1),
        ("vote_group", "VOTE", "escalate", 2),
        ("vote_group", "VOTE", "clear", 2),  # no second raise after the restart
        ("hazard_source", "SOURCE", "clear", 1),
    ]
    owners = query(
        database_url,
        "SELECT DISTINCT a.enterprise_id = e.id, a.tag_id IS NULL FROM alarms a, enterprises e"
        " WHERE e.code = 'E330110001' AND a.subject_kind <> 'tag'",
    )
    assert owners == [(True, True)]


def test_ledger_sync_keeps_voting_groups_and_warning_thresholds(database_url: str, tmp_path: Path) -> None:
    migrate(database_url)
    doc = sample_plant_doc()
    with psycopg.connect(database_url) as conn:
        sync_ledger(conn, load_plant(write_plant(doc, tmp_path)))
    groups = query(
        database_url,
        "SELECT v.code, v.k, v.condition, v.in_service, (SELECT array_agg(t.code ORDER BY t.code) FROM tags t"
        " WHERE t.id = ANY(v.tag_ids)) FROM vote_groups v",
    )
    assert groups == [("GV101", 2, "HIGH", True, ["GT101", "GT102", "GT103"])]
    farm = doc["enterprises"][0]["hazard_sources"][0]
    farm["voting"] = [{"code": "GV102", "tags": ["GT105", "GT106"], "k": 2}]
    farm["source_warning"] = None
    doc["enterprises"][0]["hazard_sources"][1]["source_warning"] = {"min_tags": 3, "conditions": ["HIGH"]}
    with psycopg.connect(database_url) as conn:
        sync_ledger(conn, load_plant(write_plant(doc, tmp_path)))
    groups = query(database_url, "SELECT code, in_service FROM vote_groups ORDER BY code")
    assert groups == [("GV101", False), ("GV102", True)]  # removed from the file: kept for its alarms
    warnings = query(database_url, "SELECT code, warning_min_tags, warning_conditions FROM hazard_sources"
                     " WHERE code LIKE 'HS330110001%' ORDER BY code")  # fmt: skip
    assert warnings == [
        ("HS330110001-01", 0, ["HIGH", "LOW", "ROC", "PREDICT"]),
        ("HS330110001-02", 3, ["HIGH"]),
    ]
