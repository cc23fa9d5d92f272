"""Outbox consumers: named readers of the alarm journal, each at its own stored position.

A consumer handles journal rows in order, in batches. The batch's effects and the new position
commit in one transaction, so a consumer that stops anywhere resumes after the last committed
batch and repeats nothing whose effects were committed. Effects outside the database (a
webhook, a mail) are not made here: a consumer writes them as rows with an idempotency key
(see :mod:`alarms.notify`), and a sender delivers those.

Ordering and safety. Journal ids are taken at insert and become visible at commit, so under
concurrent writers they commit out of order; remembering "the last id" could skip an id that
commits later. Every journal row carries the id of its transaction (``xid``, migration 0014).
A batch first takes the horizon ``hw_outbox_horizon()`` — ``pg_snapshot_xmin`` of the current
snapshot, leaving out transactions of other databases — and then, in a later statement (a later
snapshot), reads only rows whose xid is below it: every transaction below it has ended, so no
row can ever appear there again. Rows are read in ``(xid, id)`` order and the position is the
``(xid, id)`` of the last row handled; a row that commits later has a larger xid and sorts after
the position. The price: a row waits until every older transaction writing to this database has
ended (milliseconds normally; a long transaction holds the consumers back, it never loses a row).
Within one alarm, rows of different transactions may come in an order other than their ids;
consumers decide from the alarm's current row, with the journal row as the trigger (see
:mod:`alarms.escalation`).

Several processes may run the same consumer: the position row is locked with SKIP LOCKED, so
one batch is handled by one process at a time and the others do nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import psycopg

logger = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[object, ...]]

_COLUMNS = (
    "id, xid::text, alarm_id, at, actor, role, action, from_state, to_state, level, value, comment, detail"
)


@dataclass(frozen=True, slots=True)
class JournalRow:
    id: int
    xid: int
    alarm_id: int
    at: datetime
    actor: str
    role: str
    action: str
    from_state: str | None
    to_state: str
    level: int | None
    value: float | None
    comment: str
    detail: dict[str, object] = field(default_factory=dict)


class Consumer(Protocol):
    """What the runner needs of a consumer."""

    @property
    def name(self) -> str:
        """Unique, lower case; the key of its position."""
        ...

    def handle(self, conn: Conn, rows: list[JournalRow]) -> None:
        """Make the effects of a batch, in the caller's transaction; raise to roll it back."""
        ...


@dataclass(frozen=True, slots=True)
class Position:
    xid: int
    journal_id: int
    processed: int


def _row(r: tuple[object, ...]) -> JournalRow:
    detail = r[12] if isinstance(r[12], dict) else {}
    at = r[3]
    assert isinstance(at, datetime)  # noqa: S101 - timestamptz column
    return JournalRow(
        id=int(str(r[0])),
        xid=int(str(r[1])),
        alarm_id=int(str(r[2])),
        at=at,
        actor=str(r[4]),
        role=str(r[5]),
        action=str(r[6]),
        from_state=None if r[7] is None else str(r[7]),
        to_state=str(r[8]),
        level=None if r[9] is None else int(str(r[9])),
        value=r[10] if isinstance(r[10], float) else None,
        comment=str(r[11]),
        detail=detail,
    )


def position(conn: Conn, consumer: str) -> Position | None:
    """Where a consumer stands, or None if it has never run."""
    row = conn.execute(
        "SELECT xid::text, journal_id, processed FROM outbox_positions WHERE consumer = %s", (consumer,)
    ).fetchone()
    return None if row is None else Position(int(str(row[0])), int(str(row[1])), int(str(row[2])))


def _lock_position(conn: Conn, consumer: str) -> Position | None:
    conn.execute("INSERT INTO outbox_positions (consumer) VALUES (%s) ON CONFLICT DO NOTHING", (consumer,))
    row = conn.execute(
        "SELECT xid::text, journal_id, processed FROM outbox_positions WHERE consumer = %s"
        " FOR UPDATE SKIP LOCKED",
        (consumer,),
    ).fetchone()
    return None if row is None else Position(int(str(row[0])), int(str(row[1])), int(str(row[2])))


def horizon(conn: Conn) -> int:
    """The xid below which every transaction that could write the journal has ended."""
    row = conn.execute("SELECT hw_outbox_horizon()::text").fetchone()
    assert row is not None  # noqa: S101 - a function call returns a row
    return int(str(row[0]))


def read_batch(conn: Conn, after: Position, limit: int) -> list[JournalRow]:
    """The next rows after a position that no running transaction can still precede.

    Two statements: the horizon's snapshot must come before the snapshot that reads the rows,
    or a transaction ending in between would be below the horizon yet unseen.
    """
    below = horizon(conn)
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM alarm_journal WHERE (xid, id) > (%s::text::xid8, %s)"
        " AND xid < %s::text::xid8 ORDER BY xid, id LIMIT %s",
        (str(after.xid), after.journal_id, str(below), limit),
    ).fetchall()
    return [_row(r) for r in rows]


def run_batch(conn: Conn, consumer: Consumer, limit: int = 500) -> int:
    """Handle the next batch of one consumer and advance its position, in one transaction.

    Returns the number of rows handled: 0 when there is nothing new or another process holds
    the consumer. The connection must not be in a transaction.
    """
    with conn.transaction():
        at = _lock_position(conn, consumer.name)
        if at is None:
            return 0
        rows = read_batch(conn, at, limit)
        if not rows:
            return 0
        consumer.handle(conn, rows)
        last = rows[-1]
        conn.execute(
            "UPDATE outbox_positions SET xid = %s::text::xid8, journal_id = %s, processed = processed + %s,"
            " updated_at = now() WHERE consumer = %s",
            (str(last.xid), last.id, len(rows), consumer.name),
        )
    logger.debug("consumer %s handled %d journal rows up to %d", consumer.name, len(rows), last.id)
    return len(rows)


def drain(conn: Conn, consumer: Consumer, limit: int = 500) -> int:
    """Run batches until the consumer has caught up; returns the rows handled."""
    total = 0
    while (n := run_batch(conn, consumer, limit)) > 0:
        total += n
    return total
