"""Synchronize the ledger tables with a devices file (upsert by code; ids stay stable).

Re-running is idempotent. A hazard source's S, R and grade are recomputed exactly (GB 18218-2018)
on every sync, and a row is added to its grade history whenever they change, saying from which
grade, why (the figures, what changed in the ledger, any override of the standard's tables and its
justification). A source with S < 1 is kept, monitored, with no grade (NULL). Tags that disappear from
the file are kept (alarms refer to them) but taken out of service with the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg

from hazardwatch.ledger import Enterprise, GradeResult, HazardSource, Plant
from hazardwatch.ledger.grading import GRADE_NAMES, NOT_MAJOR, decimal_text
from hazardwatch.ledger.models import Tag
from ingest.cameras import sync_cameras
from ingest.composites import sync_composites
from ingest.protection import UPDATE as PROTECTION_UPDATE
from ingest.protection import row as protection_row

logger = logging.getLogger(__name__)

REMOVED_REASON = "removed from the devices file"


@dataclass(frozen=True, slots=True)
class SyncReport:
    enterprises: int
    hazard_sources: int
    tags: int
    grade_changes: int
    retired_tags: int


Conn = psycopg.Connection[tuple[object, ...]]


def _one_id(conn: Conn, query: str, params: tuple[object, ...]) -> int:
    row = conn.execute(query.encode(), params).fetchone()
    assert row is not None  # noqa: S101 - INSERT … RETURNING always returns a row
    return int(str(row[0]))


def _grade_label(major: object, grade: object) -> str:
    if major is None:
        return "—"
    return NOT_MAJOR if grade is None else GRADE_NAMES[_int(grade)]


def _int(value: object) -> int:
    return int(str(value))


def _why(source: HazardSource, grade: GradeResult, terms: str, previous: tuple[object, ...] | None) -> str:
    """The journal's reason for a grade row: old → new, the figures, and what changed."""
    figures = f"S = {decimal_text(grade.s)}, R = {terms} = {decimal_text(grade.r)}"
    if not grade.is_major:
        figures = f"S = {grade.s_terms()} = {decimal_text(grade.s)} < 1: not a major hazard source"
    overrides = [o for c in source.chemicals for o in c.resolved().overrides]
    tail = f"; overrides: {'; '.join(overrides)}" if overrides else ""
    if previous is None:
        return f"first computation → {grade.grade_name}: {figures}{tail}"
    old_people, old_terms, old_grade = previous[3], str(previous[4]), previous[2]
    changes = []
    if old_people != source.people_within_500m:
        changes.append(f"people within 500 m {old_people} → {source.people_within_500m}")
    if old_terms and old_terms != terms:
        changes.append(f"terms {old_terms} → {terms}")
    if not changes:
        changes.append("regraded by GB 18218-2018 tables 1–5 in exact arithmetic")
    return f"{_grade_label(True, old_grade)} → {grade.grade_name}: {figures}; {', '.join(changes)}{tail}"


def _sync_hazard_source(conn: Conn, enterprise_id: int, source: HazardSource) -> tuple[int, bool]:
    grade = source.grade()
    terms = grade.r_terms()
    r = source.responsibles
    previous = conn.execute(
        "SELECT s, r, grade, people_within_500m, grade_terms FROM hazard_sources"
        " WHERE enterprise_id = %s AND code = %s",
        (enterprise_id, source.code),
    ).fetchone()
    s_value, r_value = float(grade.s), float(grade.r)
    source_id = _one_id(
        conn,
        "INSERT INTO hazard_sources (enterprise_id, code, name, people_within_500m, s, r, grade, grade_terms,"
        " principal, technical, operational) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (enterprise_id, code) DO UPDATE SET name = EXCLUDED.name,"
        " people_within_500m = EXCLUDED.people_within_500m, s = EXCLUDED.s, r = EXCLUDED.r,"
        " grade = EXCLUDED.grade, grade_terms = EXCLUDED.grade_terms, principal = EXCLUDED.principal,"
        " technical = EXCLUDED.technical, operational = EXCLUDED.operational, updated_at = now()"
        " RETURNING id",
        (enterprise_id, source.code, source.name, source.people_within_500m, s_value, r_value,
         grade.grade, terms, r.principal, r.technical, r.operational),
    )  # fmt: skip
    # terms left empty (sources graded before the terms were kept) are filled in without a history row
    changed = (previous is None or previous[:3] != (s_value, r_value, grade.grade)
               or previous[4] not in ("", terms))  # fmt: skip
    if changed:
        reason = _why(source, grade, terms, previous)
        conn.execute(
            "INSERT INTO hazard_source_grades (hazard_source_id, s, r, grade, from_grade, from_major, reason)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (source_id, s_value, r_value, grade.grade, None if previous is None else previous[2],
             None if previous is None else previous[2] is not None, reason),
        )  # fmt: skip
        logger.info("hazard source %s: %s", source.code, reason)
    return source_id, changed


def _sync_enterprise(conn: Conn, enterprise: Enterprise) -> tuple[int, int, int]:
    loc = enterprise.location
    enterprise_id = _one_id(
        conn,
        "INSERT INTO enterprises (code, name, credit_code, division, address, lon, lat)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (code) DO UPDATE SET"
        " name = EXCLUDED.name, credit_code = EXCLUDED.credit_code, division = EXCLUDED.division,"
        " address = EXCLUDED.address, lon = EXCLUDED.lon, lat = EXCLUDED.lat, updated_at = now()"
        " RETURNING id",
        (enterprise.code, enterprise.name, enterprise.credit_code, enterprise.division,
         enterprise.address, loc.lon if loc else None, loc.lat if loc else None),
    )  # fmt: skip
    gateway_ids: dict[str, int] = {}
    device_gateway: dict[str, tuple[int, float]] = {}
    for gateway in enterprise.gateways:
        gateway_ids[gateway.id] = _one_id(
            conn,
            "INSERT INTO gateways (enterprise_id, code, name) VALUES (%s, %s, %s)"
            " ON CONFLICT (enterprise_id, code) DO UPDATE SET name = EXCLUDED.name RETURNING id",
            (enterprise_id, gateway.id, gateway.name),
        )
        for device in gateway.devices:
            device_gateway[device.id] = (gateway_ids[gateway.id], device.poll_interval_s)
    grade_changes = 0
    kept: list[str] = []
    for source in enterprise.hazard_sources:
        source_id, changed = _sync_hazard_source(conn, enterprise_id, source)
        grade_changes += changed
        for equipment in source.equipment:
            equipment_id = _one_id(
                conn,
                "INSERT INTO equipment (hazard_source_id, code, name, kind) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (hazard_source_id, code) DO UPDATE SET name = EXCLUDED.name,"
                " kind = EXCLUDED.kind RETURNING id",
                (source_id, equipment.code, equipment.name, equipment.kind.value),
            )
            for tag in equipment.tags:
                gateway_id, poll = device_gateway[tag.device_id]
                oos = tag.out_of_service
                lim = tag.effective_limits
                conn.execute(
                    "INSERT INTO tags (enterprise_id, hazard_source_id, equipment_id, gateway_id, code,"
                    " name, kind, unit, range_low, range_high, ll, l, h, hh, deadband, poll_interval_s,"
                    " in_service, oos_reason, oos_by, oos_at, on_delay_s, off_delay_s, roc_limit,"
                    " roc_period_s, frozen_window_s, frozen_eps, predict_window_s, predict_response_s,"
                    " stale_after_s, device) VALUES (%s, %s, %s, %s,"
                    " %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
                    " %s, %s, %s, %s)"
                    " ON CONFLICT (enterprise_id, code) DO UPDATE SET"
                    " hazard_source_id = EXCLUDED.hazard_source_id, equipment_id = EXCLUDED.equipment_id,"
                    " gateway_id = EXCLUDED.gateway_id, name = EXCLUDED.name, kind = EXCLUDED.kind,"
                    " unit = EXCLUDED.unit, range_low = EXCLUDED.range_low, range_high = EXCLUDED.range_high,"
                    " ll = EXCLUDED.ll, l = EXCLUDED.l, h = EXCLUDED.h, hh = EXCLUDED.hh,"
                    " deadband = EXCLUDED.deadband, poll_interval_s = EXCLUDED.poll_interval_s,"
                    # an operator's out-of-service declaration outlives a resync
                    " in_service = CASE WHEN tags.oos_origin = 'operator' THEN tags.in_service"
                    "   ELSE EXCLUDED.in_service END,"
                    " oos_reason = CASE WHEN tags.oos_origin = 'operator' THEN tags.oos_reason"
                    "   ELSE EXCLUDED.oos_reason END,"
                    " oos_by = CASE WHEN tags.oos_origin = 'operator' THEN tags.oos_by"
                    "   ELSE EXCLUDED.oos_by END,"
                    " oos_at = CASE WHEN tags.oos_origin = 'operator' THEN tags.oos_at"
                    "   ELSE EXCLUDED.oos_at END,"
                    " on_delay_s = EXCLUDED.on_delay_s,"
                    " off_delay_s = EXCLUDED.off_delay_s, roc_limit = EXCLUDED.roc_limit,"
                    " roc_period_s = EXCLUDED.roc_period_s, frozen_window_s = EXCLUDED.frozen_window_s,"
                    " frozen_eps = EXCLUDED.frozen_eps, predict_window_s = EXCLUDED.predict_window_s,"
                    " predict_response_s = EXCLUDED.predict_response_s,"
                    " stale_after_s = EXCLUDED.stale_after_s, device = EXCLUDED.device, updated_at = now()",
                    (enterprise_id, source_id, equipment_id, gateway_id, tag.code, tag.name,
                     tag.kind.value, tag.unit, tag.range[0], tag.range[1], lim.ll, lim.l, lim.h,
                     lim.hh, tag.effective_deadband, poll, oos is None,
                     oos.reason if oos else None, oos.by if oos else None, oos.at if oos else None,
                     *tag.effective_delays_s, *_window_settings(tag), tag.effective_stale_after_s(poll),
                     tag.device_id),
                )  # fmt: skip
                conn.execute(
                    PROTECTION_UPDATE, (*protection_row(tag.effective_protection), enterprise_id, tag.code)
                )
                kept.append(tag.code)
        sync_composites(conn, enterprise_id, source_id, source)
    retired = conn.execute(
        "UPDATE tags SET in_service = false, oos_reason = %s, oos_by = 'ledger', oos_at = now()"
        " WHERE enterprise_id = %s AND in_service AND NOT (code = ANY(%s))",
        (REMOVED_REASON, enterprise_id, kept),
    ).rowcount
    return len(enterprise.hazard_sources), grade_changes, retired


def sync_ledger(conn: Conn, plant: Plant) -> SyncReport:
    """Upsert the whole plant in one transaction.

    A gas limit missing or above GB/T 50493-2019's is stored as the plant gave it (the plant's
    ledger is the record) and logged as a warning, once per tag: ``hazardwatch check`` exits 1 on it.
    """
    for enterprise, _, _, tag in plant.iter_tags():
        for finding in tag.gas_findings():
            logger.warning("ledger %s %s (%s): %s", enterprise.code, tag.code, tag.name, finding)
    sources = changes = retired = 0
    with conn.transaction():
        for enterprise in plant.enterprises:
            s, c, r = _sync_enterprise(conn, enterprise)
            sources, changes, retired = sources + s, changes + c, retired + r
            sync_cameras(conn, enterprise)
    return SyncReport(
        enterprises=len(plant.enterprises),
        hazard_sources=sources,
        tags=sum(1 for _ in plant.iter_tags()),
        grade_changes=changes,
        retired_tags=retired,
    )


def _window_settings(tag: Tag) -> tuple[float | None, float, float, float, float, float]:
    """roc_limit, roc_period_s, frozen_window_s, frozen_eps, predict_window_s, predict_response_s."""
    roc, frozen, predict = tag.roc, tag.frozen, tag.predict
    return (
        roc.limit if roc else None,
        roc.period_s if roc else 0.0,
        frozen.window_s if frozen else 0.0,
        frozen.epsilon if frozen else 0.0,
        predict.window_s if predict else 0.0,
        predict.response_s if predict else 0.0,
    )
