"""Composite conditions in the database: voting groups and hazard-source warnings synchronized
from the ledger, loaded for the rule engine, and their open alarms for a restart."""

from __future__ import annotations

import numpy as np
import psycopg

from hazardwatch.ledger import HazardSource
from hazardwatch.ledger.composites import SourceWarning
from rules.composite import CODE, TAG_CONDITIONS, CompositeConfig
from rules.types import Condition, Subject

Conn = psycopg.Connection[tuple[object, ...]]


def _int(value: object) -> int:
    return int(str(value))


def sync_composites(conn: Conn, enterprise_id: int, source_id: int, source: HazardSource) -> None:
    """Upsert a hazard source's voting groups (after its tags) and its warning threshold; groups no
    longer in the file are kept for their alarms but taken out of service."""
    warning = source.source_warning
    conditions = (warning or SourceWarning()).conditions
    conn.execute(
        "UPDATE hazard_sources SET warning_min_tags = %s, warning_conditions = %s WHERE id = %s",
        (warning.min_tags if warning else 0, list(conditions), source_id),
    )
    kept: list[str] = []
    for group in source.voting:
        rows = conn.execute(
            "SELECT code, id, equipment_id FROM tags WHERE enterprise_id = %s AND code = ANY(%s)",
            (enterprise_id, group.tags),
        ).fetchall()
        found = {str(code): (_int(tag_id), equipment) for code, tag_id, equipment in rows}
        equipment = {found[code][1] for code in group.tags}
        conn.execute(
            "INSERT INTO vote_groups (hazard_source_id, equipment_id, code, name, condition, k, tag_ids)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (hazard_source_id, code) DO UPDATE SET"
            " equipment_id = EXCLUDED.equipment_id, name = EXCLUDED.name, condition = EXCLUDED.condition,"
            " k = EXCLUDED.k, tag_ids = EXCLUDED.tag_ids, in_service = true, updated_at = now()",
            (source_id, equipment.pop() if len(equipment) == 1 else None, group.code, group.name,
             group.condition, group.k, [found[code][0] for code in group.tags]),
        )  # fmt: skip
        kept.append(group.code)
    conn.execute(
        "UPDATE vote_groups SET in_service = false, updated_at = now()"
        " WHERE hazard_source_id = %s AND in_service AND NOT (code = ANY(%s))",
        (source_id, kept),
    )


def load_composites(
    conn: Conn, index_of: dict[int, int], enterprise_ids: list[int] | None = None
) -> CompositeConfig:
    """The engine's composites; ``index_of`` maps tag ids to engine indexes. With
    ``enterprise_ids``, only those enterprises' (a worker's own: it must never clear another's)."""
    scope = {"all": enterprise_ids is None, "owned": enterprise_ids or []}
    groups = conn.execute(
        "SELECT v.id, v.k, v.condition = 'LOW', v.tag_ids FROM vote_groups v"
        " JOIN hazard_sources hs ON hs.id = v.hazard_source_id"
        " WHERE v.in_service AND (%(all)s OR hs.enterprise_id = ANY(%(owned)s)) ORDER BY v.id",
        scope,
    ).fetchall()
    sources = conn.execute(
        "SELECT id, warning_min_tags, warning_conditions FROM hazard_sources"
        " WHERE %(all)s OR enterprise_id = ANY(%(owned)s) ORDER BY id",
        scope,
    ).fetchall()
    source_index = {_int(r[0]): i for i, r in enumerate(sources)}
    tag_source = np.full(len(index_of), -1, np.int64)
    for tag_id, source_id in conn.execute("SELECT id, hazard_source_id FROM tags").fetchall():
        i = index_of.get(_int(tag_id))
        if i is not None:
            tag_source[i] = source_index[_int(source_id)]
    members = [
        (g, index_of[int(tag_id)])
        for g, row in enumerate(groups)
        for tag_id in (row[3] if isinstance(row[3], list) else [])
        if int(tag_id) in index_of
    ]
    counted = [[c in _names(r[2]) for c in TAG_CONDITIONS] for r in sources]
    return CompositeConfig(
        vote_id=np.array([_int(r[0]) for r in groups], dtype=np.int64),
        vote_k=np.array([_int(r[1]) for r in groups], dtype=np.int64),
        vote_low=np.array([bool(r[2]) for r in groups], dtype=bool),
        member_group=np.array([m[0] for m in members], dtype=np.int64),
        member_tag=np.array([m[1] for m in members], dtype=np.int64),
        source_id=np.array([_int(r[0]) for r in sources], dtype=np.int64),
        source_min_tags=np.array([_int(r[1]) for r in sources], dtype=np.int64),
        source_conditions=np.array(counted, dtype=bool).reshape(len(sources), len(TAG_CONDITIONS)),
        tag_source=tag_source,
    )


def _names(value: object) -> set[str]:
    return {str(v) for v in value if str(v) in CODE} if isinstance(value, list) else set()


def open_composite_levels(conn: Conn) -> list[tuple[Subject, int, int]]:
    """(subject, subject id, level) of every open, active VOTE and SOURCE alarm: the composites'
    state after a restart (the tags' comes from ``alarms.store.open_alarm_levels``)."""
    rows = conn.execute(
        "SELECT subject_kind, subject_id, level FROM alarms WHERE state <> 'NORMAL' AND active AND"
        " ((subject_kind = %s AND condition = %s) OR (subject_kind = %s AND condition = %s))",
        (Subject.VOTE_GROUP.value, Condition.VOTE.value, Subject.HAZARD_SOURCE.value, Condition.SOURCE.value),
    ).fetchall()
    return [(Subject(str(r[0])), _int(r[1]), _int(r[2])) for r in rows]
