"""The dead letters' size cap holds for a flood of small payloads: each letter costs its whole row
(reason, topic and the row itself), not its payload alone."""

from __future__ import annotations

import psycopg

from ingest import deadletters
from ingest.migrate import migrate

TOPIC = "hw/v1/E330110001/gw01/readings"


def test_a_flood_of_empty_payloads_stays_within_the_cap(database_url: str) -> None:
    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        reason = "unknown wire version " + "x" * 1500  # a reason as long as the payload lets it be
        deadletters.store(conn, [deadletters.DeadLetter(TOPIC, b"", reason)] * 2000)
        deadletters.prune(conn, days=30, max_bytes=1_000_000)
        kept = conn.execute(
            "SELECT count(*), sum(octet_length(payload) + octet_length(reason) + octet_length(topic))"
            " FROM dead_letters"
        ).fetchone()
    assert kept is not None
    count, size = int(str(kept[0])), int(str(kept[1]))
    assert 0 < count < 2000  # 2000 letters of ~1.5 KB are ~3 MB of rows: beyond the cap of 1 MB
    assert size <= 1_000_000
