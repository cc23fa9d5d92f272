"""Cameras of the ledger: synchronized from the devices file, upserted by code (ids stay stable).

A camera that disappears from the file is kept (its alarms and snapshots refer to it) with
``in_ledger = false``; its events are then refused like an unknown camera's.
"""

from __future__ import annotations

import psycopg

from hazardwatch.ledger import Enterprise

Conn = psycopg.Connection[tuple[object, ...]]


def sync_cameras(conn: Conn, enterprise: Enterprise) -> int:
    """Upsert an enterprise's cameras (its hazard sources, equipment and gateways are synced)."""
    row = conn.execute("SELECT id FROM enterprises WHERE code = %s", (enterprise.code,)).fetchone()
    if row is None:
        return 0
    enterprise_id = int(str(row[0]))
    kept: list[str] = []
    for source, camera in enterprise.iter_cameras():
        conn.execute(
            "INSERT INTO cameras (enterprise_id, hazard_source_id, equipment_id, gateway_id, code, name, url)"
            " SELECT %(e)s, hs.id,"
            " (SELECT id FROM equipment WHERE hazard_source_id = hs.id AND code = %(eq)s),"
            " g.id, %(code)s, %(name)s, %(url)s FROM hazard_sources hs, gateways g"
            " WHERE hs.enterprise_id = %(e)s AND hs.code = %(hs)s"
            " AND g.enterprise_id = %(e)s AND g.code = %(gw)s"
            " ON CONFLICT (enterprise_id, code) DO UPDATE SET hazard_source_id = EXCLUDED.hazard_source_id,"
            " equipment_id = EXCLUDED.equipment_id, gateway_id = EXCLUDED.gateway_id, name = EXCLUDED.name,"
            " url = EXCLUDED.url, in_ledger = true, updated_at = now()",
            {"e": enterprise_id, "eq": camera.equipment, "code": camera.code, "name": camera.name,
             "url": camera.url, "hs": source.code, "gw": camera.gateway},
        )  # fmt: skip
        kept.append(camera.code)
    conn.execute(
        "UPDATE cameras SET in_ledger = false, updated_at = now()"
        " WHERE enterprise_id = %s AND in_ledger AND NOT (code = ANY(%s))",
        (enterprise_id, kept),
    )
    return len(kept)
