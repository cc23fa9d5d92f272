"""Each gateway's batch sequence numbers: gaps that reveal loss, within bounds (owner: ingest).

A gateway numbers its batches; live batches go before an outage's backlog, so a gap opens when a
batch jumps ahead and closes as the missing ones arrive, whatever order they come in.
``gateways.seq_gaps`` counts the batches numbered and not received.

Nothing a payload says may open an unbounded amount of work:

- A batch numbered more than ``max_jump`` beyond the last one (a gateway whose buffer was
  replaced, or a forged number), or a live batch that far below it (an agent started on a new
  buffer counts from 1 again), starts a new **epoch**: the gateway's open gaps are given up and
  counting starts again from that batch, instead of asking for a million batches.
- A gap older than ``max_age_h`` (the agent keeps sent batches 24 h, so nobody can still send
  them) is given up, and so are the oldest beyond ``MAX_OPEN_GAPS`` a gateway.

What was given up is counted in ``gateways.seq_lost`` and logged; the epochs in ``seq_epochs``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

logger = logging.getLogger(__name__)
Conn = psycopg.Connection[tuple[object, ...]]
MAX_OPEN_GAPS = 1000


@dataclass(frozen=True, slots=True)
class GivenUp:
    gateway_id: int
    gaps: int
    batches: int


def record(conn: Conn, gateway_id: int, seq: int, *, replay: bool, at: datetime, max_jump: int) -> None:
    """Take batch ``seq`` of the gateway: open a gap, close one, or start a new epoch."""
    row = conn.execute("SELECT last_seq FROM gateways WHERE id = %s FOR UPDATE", (gateway_id,)).fetchone()
    last = int(str(row[0])) if row is not None and row[0] is not None else None
    if last is not None and (seq - last > max_jump or (not replay and last - seq > max_jump)):
        _new_epoch(conn, gateway_id, last, seq, at)
        return
    if last is None or seq > last:
        missing = 0 if last is None else seq - last - 1
        if missing:
            conn.execute(
                "INSERT INTO gateway_seq_gaps (gateway_id, first_seq, last_seq, opened_at)"
                " VALUES (%s, %s, %s, %s)",
                (gateway_id, seq - missing, seq - 1, at),
            )
        conn.execute(
            "UPDATE gateways SET last_seq = %s, seq_gaps = seq_gaps + %s WHERE id = %s",
            (seq, missing, gateway_id),
        )
        heard(conn, gateway_id, at)
        return
    _fill(conn, gateway_id, seq, at)


def _fill(conn: Conn, gateway_id: int, seq: int, at: datetime) -> None:
    """A batch numbered at or below the last: it closes its place in a gap, or is a duplicate."""
    gap = conn.execute(
        "DELETE FROM gateway_seq_gaps WHERE gateway_id = %s AND first_seq <= %s AND last_seq >= %s"
        " RETURNING first_seq, last_seq, opened_at, resend_requested_at",
        (gateway_id, seq, seq),
    ).fetchone()
    heard(conn, gateway_id, at)
    if gap is None:
        return  # a duplicate: nothing was missing
    first, last_missing, opened_at, requested_at = int(str(gap[0])), int(str(gap[1])), gap[2], gap[3]
    for a, b in ((first, seq - 1), (seq + 1, last_missing)):
        if a <= b:
            # the rest keeps its age and when it was asked for (no second ask while one is answered);
            # a batch arriving is progress, so its count of requests starts again
            conn.execute(
                "INSERT INTO gateway_seq_gaps"
                " (gateway_id, first_seq, last_seq, opened_at, resend_requested_at, resend_requests)"
                " VALUES (%s, %s, %s, %s, %s, 0)",
                (gateway_id, a, b, opened_at, requested_at),
            )
    conn.execute("UPDATE gateways SET seq_gaps = seq_gaps - 1 WHERE id = %s", (gateway_id,))


def heard(conn: Conn, gateway_id: int, at: datetime) -> None:
    """The gateway was heard at ``at``: its last contact, and its first if it had none."""
    conn.execute(
        "UPDATE gateways SET last_seen_at = %s, first_seen_at = coalesce(first_seen_at, %s) WHERE id = %s",
        (at, at, gateway_id),
    )


def _new_epoch(conn: Conn, gateway_id: int, last: int, seq: int, at: datetime) -> None:
    row = conn.execute(
        "WITH gone AS (DELETE FROM gateway_seq_gaps WHERE gateway_id = %s"
        " RETURNING last_seq - first_seq + 1 AS n) SELECT count(*), coalesce(sum(n), 0) FROM gone",
        (gateway_id,),
    ).fetchone()
    gaps, batches = (int(str(row[0])), int(str(row[1]))) if row is not None else (0, 0)
    conn.execute(
        "UPDATE gateways SET last_seq = %s, seq_gaps = 0, seq_lost = seq_lost + %s,"
        " seq_epochs = seq_epochs + 1 WHERE id = %s",
        (seq, batches, gateway_id),
    )
    heard(conn, gateway_id, at)
    logger.warning(
        "gateway %d: batch %d is numbered far from the last one (%d): a new sequence epoch (a new buffer "
        "on the gateway, or a forged number); %d open gaps (%d batches) given up",
        gateway_id, seq, last, gaps, batches,
    )  # fmt: skip


def give_up(conn: Conn, gateway_ids: Sequence[int], max_age_h: float) -> list[GivenUp]:
    """Forget the gaps nobody can fill any more: older than ``max_age_h``, or beyond the newest
    ``MAX_OPEN_GAPS`` of their gateway. Counted in ``seq_lost``; returns what was given up."""
    rows = conn.execute(
        "WITH ranked AS ("
        "   SELECT gateway_id, first_seq, opened_at,"
        "          row_number() OVER (PARTITION BY gateway_id ORDER BY first_seq DESC) AS newest"
        "   FROM gateway_seq_gaps WHERE gateway_id = ANY(%s)),"
        " gone AS ("
        "   DELETE FROM gateway_seq_gaps s USING ranked r"
        "   WHERE s.gateway_id = r.gateway_id AND s.first_seq = r.first_seq"
        "     AND (r.opened_at < now() - make_interval(secs => %s) OR r.newest > %s)"
        "   RETURNING s.gateway_id, s.last_seq - s.first_seq + 1 AS n)"
        " SELECT gateway_id, count(*), sum(n) FROM gone GROUP BY gateway_id",
        (list(gateway_ids), max_age_h * 3600, MAX_OPEN_GAPS),
    ).fetchall()
    given = [GivenUp(int(str(r[0])), int(str(r[1])), int(str(r[2]))) for r in rows]
    for g in given:
        conn.execute(
            "UPDATE gateways SET seq_gaps = greatest(seq_gaps - %s, 0), seq_lost = seq_lost + %s"
            " WHERE id = %s",
            (g.batches, g.batches, g.gateway_id),
        )
    return given
