"""What an alarm is about, in SQL: the code or name of its subject, whatever its kind."""

from __future__ import annotations

_SUBJECT = (
    "CASE {a}.subject_kind WHEN 'tag' THEN (SELECT t.{column} FROM tags t WHERE t.id = {a}.subject_id)"
    " WHEN 'hazard_source' THEN (SELECT h.{column} FROM hazard_sources h WHERE h.id = {a}.subject_id)"
    " WHEN 'camera' THEN (SELECT c.{column} FROM cameras c WHERE c.id = {a}.subject_id)"
    " WHEN 'vote_group' THEN (SELECT v.{column} FROM vote_groups v WHERE v.id = {a}.subject_id)"
    " WHEN 'gateway' THEN (SELECT g.{column} FROM gateways g WHERE g.id = {a}.subject_id) END"
)


def subject_sql(column: str, alarm: str = "a") -> str:
    """An expression for the ``code`` or ``name`` of the subject of the alarm aliased ``alarm``."""
    if column not in ("code", "name") or not alarm.isidentifier():
        raise ValueError(f"no subject column {column!r} of {alarm!r}")
    return _SUBJECT.format(column=column, a=alarm)
