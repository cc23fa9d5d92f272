"""Notifications: from journal rows to messages, grouped, rate-limited, retried, sent once.

Three steps, each safe to repeat and to run in several processes:

1. :class:`Notifier`, an outbox consumer, turns each journal row that someone must hear of —
   an annunciation (raise, re-alarm, H → HH, a mask left with the condition active) for the
   ``on_raise`` rungs, an escalation step for its rung — into ``notify_items``, one per
   (journal row, recipient, channel), unique: a replayed row adds nothing. Its position
   advances in the same transaction.
2. :func:`schedule` puts each recipient's waiting items on one channel into one delivery: a
   single item alone (key ``journal:<id>``), several as one digest (``digest:<first item id>``).
   After a message, the next waits ``group_window_s`` (a flood becomes one digest per window),
   and at most ``rate_limit.max_messages`` go per ``rate_limit.per_minutes``; waiting items join
   the next digest, none is dropped.
3. :func:`send_due` claims due deliveries with a lease, sends them outside any transaction, and
   marks them sent, or due again after a doubling delay, or failed after ``retry.max_attempts``.
   A delivery marked sent is never sent again; one whose confirmation was lost in a crash is
   sent again with the same idempotency key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alarms.channels import Channel, Delivery, DeliveryError
from alarms.escalation import ACTION as ESCALATION
from alarms.escalation import PRIORITY_NAMES, target
from alarms.outbox import Conn, JournalRow
from alarms.policy import Policy
from alarms.workflow_policy import RUNG_NAMES, Contact, Notifications
from hazardwatch.clock import Clock, utc_from_ms

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Recipient:
    key: str  # "person:<enterprise>/<name>" or "duty:<division>"
    label: str
    contact: Contact


def recipient(config: Notifications, who: dict[str, object]) -> Recipient | None:
    """The contact of a rung's target, or None when nobody is configured for it."""
    rung = str(who.get("rung", ""))
    if who.get("division"):
        division = str(who["division"])
        contact = config.contacts.duty.get(division)
        key = f"duty:{division}"
    elif who.get("person"):
        person, enterprise = str(who["person"]), str(who.get("enterprise", ""))
        contact = config.contacts.people.get(f"{enterprise}/{person}") or config.contacts.people.get(person)
        key = f"person:{enterprise}/{person}"
    else:
        return None
    if contact is None:
        return None
    named = who.get("person") or who.get("division")
    return Recipient(key, f"{RUNG_NAMES.get(rung, rung)} {named}", contact)


def addresses(config: Notifications, contact: Contact) -> list[tuple[str, str]]:
    """(channel, address) pairs of a contact, for the configured channels."""
    pairs = [("webhook", contact.webhook), ("email", contact.email), ("sms", contact.phone)]
    return [(ch, addr) for ch, addr in pairs if addr and getattr(config.channels, ch) is not None]


_CONTEXT_SQL = (
    "SELECT a.priority, a.condition, a.state, a.subject_kind, coalesce(t.code, a.subject_id::text),"
    " coalesce(t.name, ''), en.code, en.name, en.division, hs.code, hs.name, hs.operational, hs.technical,"
    " hs.principal, a.limit_value FROM alarms a JOIN enterprises en ON en.id = a.enterprise_id"
    " LEFT JOIN hazard_sources hs ON hs.id = a.hazard_source_id LEFT JOIN tags t ON t.id = a.tag_id"
    " WHERE a.id = %s"
)


def annunciates(row: JournalRow) -> bool:
    """Whether a journal row (newly) puts an alarm in front of people."""
    if row.to_state != "UNACK":
        return False
    return row.from_state != "UNACK" or row.action == "escalate"


@dataclass
class Notifier:
    """The outbox consumer that turns journal rows into notify_items."""

    policy: Policy
    clock: Clock
    timezone: str = "Asia/Shanghai"
    name: str = "notify"
    skipped: int = field(default=0, init=False)

    def handle(self, conn: Conn, rows: list[JournalRow]) -> None:
        config = self.policy.notifications
        if not config.enabled:
            return
        now = utc_from_ms(self.clock.now_ms())
        oldest = now - timedelta(minutes=config.max_age_minutes)
        for row in rows:
            if row.action != ESCALATION and not annunciates(row):
                continue
            if row.at < oldest:
                self.skipped += 1
                continue
            self._items(conn, config, row, now)

    def _items(self, conn: Conn, config: Notifications, row: JournalRow, now: datetime) -> None:
        ctx = conn.execute(_CONTEXT_SQL, (row.alarm_id,)).fetchone()
        if ctx is None:
            return
        priority = int(str(ctx[0]))
        if row.action == ESCALATION:
            whos: list[dict[str, object]] = [row.detail]
        elif priority in config.raise_priorities:
            people = {"operational": _str(ctx[11]), "technical": _str(ctx[12]), "principal": _str(ctx[13])}
            found = (target(rung, str(ctx[6]), str(ctx[8]), people) for rung in config.on_raise)
            whos = [who for who in found if who is not None]
        else:
            return
        message = self._message(row, ctx)
        for who in whos:
            to = recipient(config, who)
            if to is None:
                continue
            for channel, address in addresses(config, to.contact):
                conn.execute(
                    "INSERT INTO notify_items (journal_id, alarm_id, recipient, channel, address, priority,"
                    " created_at, message) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (row.id, row.alarm_id, to.key, channel, address, priority, now, Jsonb(message)),
                )

    def _message(self, row: JournalRow, ctx: tuple[object, ...]) -> dict[str, object]:
        priority = int(str(ctx[0]))
        local = row.at.astimezone(ZoneInfo(self.timezone)).strftime("%Y-%m-%d %H:%M:%S")
        grade = PRIORITY_NAMES.get(priority, str(priority))
        where = " ".join(str(x) for x in (ctx[7], ctx[10] or "", ctx[4], ctx[5]) if x)
        value = "" if row.value is None else f" {row.value:g}"
        what = row.comment if row.action == ESCALATION else f"{row.action} → {row.to_state}"
        text = f"【{grade}报警】{where} {ctx[1]}{value} ({local}): {what}"
        return {
            "journal_id": row.id,
            "alarm_id": row.alarm_id,
            "action": row.action,
            "at": row.at.isoformat(),
            "priority": priority,
            "condition": str(ctx[1]),
            "state": row.to_state,
            "level": row.level,
            "value": row.value,
            "limit": ctx[14] if isinstance(ctx[14], float) else None,
            "enterprise": str(ctx[6]),
            "enterprise_name": str(ctx[7]),
            "division": str(ctx[8]),
            "hazard_source": _str(ctx[9]),
            "subject_kind": str(ctx[3]),
            "subject_code": str(ctx[4]),
            "escalation": row.detail if row.action == ESCALATION else None,
            "subject": f"[HazardWatch] {grade} {ctx[6]} {ctx[4]} {ctx[1]} {row.action}",
            "subject_name": str(ctx[5]),
            "text": text,
        }


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def digest(messages: list[dict[str, object]]) -> dict[str, object]:
    """One message for several: the gravest first, then the oldest."""
    ordered = sorted(messages, key=lambda m: (int(str(m.get("priority", 3))), str(m.get("at", ""))))
    counts = {p: sum(1 for m in ordered if m.get("priority") == p) for p in (1, 2, 3)}
    summary = ", ".join(f"{counts[p]} {PRIORITY_NAMES[p]}" for p in (1, 2, 3) if counts[p])
    lines = [str(m.get("text", "")) for m in ordered]
    return {
        "digest": True,
        "count": len(ordered),
        "subject": f"[HazardWatch] {len(ordered)} alarm notifications ({summary})",
        "text": f"{len(ordered)} alarm notifications ({summary}):\n" + "\n".join(lines),
        "items": ordered,
    }


def schedule(conn: Conn, policy: Policy, clock: Clock) -> int:
    """Put waiting items into deliveries, per recipient and channel; returns deliveries made."""
    config = policy.notifications
    now = utc_from_ms(clock.now_ms())
    made = 0
    with conn.transaction():
        pairs = conn.execute(
            "SELECT DISTINCT recipient, channel FROM notify_items WHERE delivery_id IS NULL"
        ).fetchall()
        for who, channel in pairs:
            made += _schedule_pair(conn, config, str(who), str(channel), now)
    return made


def _schedule_pair(conn: Conn, config: Notifications, who: str, channel: str, now: datetime) -> int:
    lock = conn.execute(
        "SELECT pg_try_advisory_xact_lock(hashtext('notify'), hashtext(%s || '|' || %s))", (who, channel)
    ).fetchone()
    if lock is None or not lock[0]:
        return 0  # another scheduler has this pair now
    window = timedelta(minutes=config.rate_limit.per_minutes)
    recent = conn.execute(
        "SELECT max(created_at), count(*) FILTER (WHERE created_at > %s) FROM notify_deliveries"
        " WHERE recipient = %s AND channel = %s AND created_at > %s",
        (now - window, who, channel, now - max(window, timedelta(seconds=config.group_window_s))),
    ).fetchone()
    assert recent is not None  # noqa: S101 - an aggregate always returns a row
    last, count = recent[0], int(str(recent[1]))
    if isinstance(last, datetime) and now < last + timedelta(seconds=config.group_window_s):
        return 0  # grouping: wait for the window to end, then send what gathered as one digest
    if count >= config.rate_limit.max_messages:
        return 0
    items = conn.execute(
        "SELECT id, journal_id, address, message FROM notify_items WHERE recipient = %s AND channel = %s"
        " AND delivery_id IS NULL ORDER BY id FOR UPDATE SKIP LOCKED",
        (who, channel),
    ).fetchall()
    if not items:
        return 0
    messages = [m if isinstance(m, dict) else {} for m in (i[3] for i in items)]
    key = f"journal:{items[0][1]}" if len(items) == 1 else f"digest:{items[0][0]}"
    message = messages[0] if len(items) == 1 else digest(messages)
    row = conn.execute(
        "INSERT INTO notify_deliveries (key, recipient, channel, address, items, message, created_at,"
        " next_attempt_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
        (key, who, channel, str(items[-1][2]), len(items), Jsonb(message), now, now),
    ).fetchone()
    if row is None:
        return 0
    conn.execute(
        "UPDATE notify_items SET delivery_id = %s WHERE id = ANY(%s)",
        (row[0], [int(str(i[0])) for i in items]),
    )
    return 1


@dataclass
class Sender:
    """Sends due deliveries; logs a channel going down once and coming back once."""

    policy: Policy
    clock: Clock
    channels: dict[str, Channel]
    _down: set[str] = field(default_factory=set)

    def send_due(self, conn: Conn, limit: int = 50) -> int:
        """Send what is due; returns how many were confirmed sent."""
        config = self.policy.notifications
        now = utc_from_ms(self.clock.now_ms())
        with conn.transaction():
            claimed = conn.execute(
                "UPDATE notify_deliveries SET lease_until = %s, attempts = attempts + 1 WHERE id IN ("
                " SELECT id FROM notify_deliveries WHERE status = 'pending' AND next_attempt_at <= %s"
                " AND (lease_until IS NULL OR lease_until <= %s) AND channel = ANY(%s)"
                " ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED)"
                " RETURNING id, key, recipient, channel, address, message, attempts",
                (now + timedelta(seconds=config.lease_s), now, now, list(self.channels), limit),
            ).fetchall()
        sent = 0
        for r in sorted(claimed, key=lambda r: int(str(r[0]))):
            message = r[5] if isinstance(r[5], dict) else {}
            delivery = Delivery(int(str(r[0])), str(r[1]), str(r[2]), str(r[3]), str(r[4]), message)
            sent += self._send(conn, delivery, int(str(r[6])))
        return sent

    def _send(self, conn: Conn, delivery: Delivery, attempt: int) -> int:
        retry = self.policy.notifications.retry
        try:
            self.channels[delivery.channel].send(delivery)
        except DeliveryError as err:
            now = utc_from_ms(self.clock.now_ms())
            failed = attempt >= retry.max_attempts
            delay = min(retry.first_delay_s * 2 ** (attempt - 1), retry.max_delay_s)
            conn.execute(
                "UPDATE notify_deliveries SET status = %s, next_attempt_at = %s, lease_until = NULL,"
                " last_error = %s WHERE id = %s AND status = 'pending'",
                ("failed" if failed else "pending", now + timedelta(seconds=delay), str(err), delivery.id),
            )
            if delivery.channel not in self._down:
                self._down.add(delivery.channel)
                logger.warning("notification channel %s is failing: %s", delivery.channel, err)
            if failed:
                logger.error(  # noqa: TRY400 - an expected outcome, not a crash: no traceback
                    "gave up delivery %s to %s after %d attempts", delivery.key, delivery.recipient, attempt
                )
            return 0
        conn.execute(
            "UPDATE notify_deliveries SET status = 'sent', sent_at = %s, lease_until = NULL,"
            " last_error = NULL WHERE id = %s",
            (utc_from_ms(self.clock.now_ms()), delivery.id),
        )
        if delivery.channel in self._down:
            self._down.discard(delivery.channel)
            logger.info("notification channel %s delivers again", delivery.channel)
        return 1


def deliveries_of(conn: Conn, alarm_id: int) -> list[dict[str, object]]:
    """Every delivery that told someone of an alarm (alone or in a digest), oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT d.id, d.key, d.recipient, d.channel, d.items, d.status, d.attempts, d.created_at,"
            " d.sent_at, d.last_error, array_agg(i.journal_id ORDER BY i.journal_id) AS journal_ids"
            " FROM notify_deliveries d JOIN notify_items i ON i.delivery_id = d.id WHERE i.alarm_id = %s"
            " GROUP BY d.id ORDER BY d.id",
            (alarm_id,),
        ).fetchall()
