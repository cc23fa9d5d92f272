"""Outbox consumers and notifications against a real PostgreSQL and real receivers: a loopback
HTTP server counting signed webhooks, aiosmtpd for mail, the same HTTP server as SMS gateway.
The clock is injected: retries, grouping windows and rate limits are passed by moving it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage

import psycopg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

from alarms.channels import verify_signature
from alarms.escalation import EscalationTracker
from alarms.notify import Notifier, deliveries_of
from alarms.outbox import JournalRow, drain, position, run_batch
from alarms.policy import Policy
from alarms.workflows import Workflows
from hazardwatch.clock import FakeClock, utc_from_ms
from hazardwatch.errors import ConfigError
from hazardwatch.ledger import Plant
from tests.support import ADMIN_DSN, free_port
from tests.workflow_support import (
    ENTERPRISE,
    ENVIRON,
    OPERATIONAL,
    SECRET,
    START_MS,
    Conn,
    Receiver,
    raise_alarm,
    receiving,
    seed,
    source_tags,
    webhook_policy,
)


@pytest.fixture
def tags(database_url: str, sample_plant: Plant) -> dict[str, int]:
    return seed(database_url, sample_plant)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


@pytest.fixture
def conn(database_url: str, tags: dict[str, int]) -> Iterator[Conn]:
    with psycopg.connect(database_url, autocommit=True) as c:
        yield c


def told(receiver: Receiver, path: str = "operational", action: str = "raise") -> list[int]:
    """Journal ids of an action the receiver was told of at a path, digests unpacked."""
    out: list[int] = []
    for r in receiver.to(path):
        body = r.json
        out += [int(i["journal_id"]) for i in body.get("items", [body]) if i["action"] == action]
    return out


def raise_journal_ids(conn: Conn) -> list[int]:
    rows = conn.execute("SELECT id FROM alarm_journal WHERE action = 'raise' ORDER BY id").fetchall()
    return [int(str(r[0])) for r in rows]


# -- the outbox ---------------------------------------------------------------------------
class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[int] = []

    def handle(self, conn: Conn, rows: list[JournalRow]) -> None:
        self.seen += [r.id for r in rows]


def test_a_row_that_commits_late_with_a_lower_id_is_not_skipped(
    database_url: str, conn: Conn, tags: dict[str, int]
) -> None:
    """Ids commit out of order: B takes id n, A takes n+1 and commits first. A reader that kept
    "last id n+1" would never see B's row; the (xid, id) position below the horizon does."""
    clock = FakeClock(START_MS)
    first, second = source_tags(tags)[:2]
    recorder = Recorder()
    with psycopg.connect(database_url) as a, psycopg.connect(database_url) as b:
        a.execute("SELECT pg_current_xact_id()")  # A's transaction id is the older
        b.execute("SELECT 1")  # B's transaction is open: raise_alarm's block is a savepoint in it
        raise_alarm(b, first, clock)  # inside B's open transaction: the lower journal id
        b_id = int(str(b.execute("SELECT max(id) FROM alarm_journal").fetchone()[0]))  # type: ignore[index]
        raise_alarm(a, second, clock)
        a.commit()
        assert run_batch(conn, recorder) == 1  # A's row, id n+1, is final: B is younger than A
        assert recorder.seen == [b_id + 1]
        b.commit()
    assert drain(conn, recorder) == 1
    assert recorder.seen == [b_id + 1, b_id]  # B's row comes after, though its id is lower
    assert sorted(recorder.seen) == raise_journal_ids(conn)


def test_a_long_transaction_in_another_database_does_not_hold_consumers_back(
    conn: Conn, tags: dict[str, int]
) -> None:
    with psycopg.connect(ADMIN_DSN) as other:
        other.execute("SELECT pg_current_xact_id()")  # an open writing transaction elsewhere
        raise_alarm(conn, source_tags(tags)[0], FakeClock(START_MS))
        recorder = Recorder()
        assert drain(conn, recorder) == 1
        other.rollback()


def test_a_consumer_resumes_from_its_stored_position(conn: Conn, tags: dict[str, int]) -> None:
    clock = FakeClock(START_MS)
    for tag in source_tags(tags)[:5]:
        raise_alarm(conn, tag, clock)
    recorder = Recorder()
    assert run_batch(conn, recorder, limit=2) == 2
    stored = position(conn, "recorder")
    assert stored is not None
    assert stored.processed == 2
    again = Recorder()  # a new process
    assert drain(conn, again, limit=2) == 3
    assert recorder.seen + again.seen == raise_journal_ids(conn)


# -- delivery: restart, grouping, rate limit, retry ---------------------------------------
class Crash(Exception):
    pass


class CrashingNotifier(Notifier):
    """Makes its effects, then dies before the batch commits."""

    def handle(self, conn: Conn, rows: list[JournalRow]) -> None:
        super().handle(conn, rows)
        raise Crash


def test_restart_in_the_middle_of_the_journal_loses_and_doubles_nothing(
    database_url: str, conn: Conn, tags: dict[str, int], receiver: Receiver
) -> None:
    clock = FakeClock(START_MS)
    policy = webhook_policy(receiver, group_window_s=0, rate_limit={"max_messages": 1000})
    ids = source_tags(tags)[:12]
    first = Workflows.from_environment(policy, clock, ENVIRON)
    for tag in ids[:5]:
        raise_alarm(conn, tag, clock)
        first.tick(conn)  # one webhook per alarm as they come
    for tag in ids[5:]:
        raise_alarm(conn, tag, clock)
    run_batch(conn, first.notifier, limit=3)  # part of the rest, then the process dies …
    crashing = CrashingNotifier(policy, clock)
    with pytest.raises(Crash):
        run_batch(conn, crashing, limit=3)  # … and one more died mid-batch: rolled back
    # a new process on a new connection
    with psycopg.connect(database_url, autocommit=True) as fresh:
        second = Workflows.from_environment(policy, clock, ENVIRON)
        second.tick(fresh)
        second.tick(fresh)
        clock.advance(3600)
        second.tick(fresh)
    raised = raise_journal_ids(conn)
    assert sorted(told(receiver)) == raised  # each alarm told exactly once
    assert all(r.signed for r in receiver.requests)
    keys = [r.headers["x-hazardwatch-delivery"] for r in receiver.requests]
    assert len(keys) == len(set(keys))
    for request in receiver.requests:  # and the receiver's own check, as documented
        assert verify_signature(
            SECRET.encode(),
            request.headers["x-hazardwatch-timestamp"],
            request.body,
            request.headers["x-hazardwatch-signature"],
            now_s=START_MS / 1000,
            tolerance_s=3600 + 60,
        )


def test_a_flood_for_one_recipient_becomes_one_digest(
    conn: Conn, tags: dict[str, int], receiver: Receiver
) -> None:
    clock = FakeClock(START_MS)
    flows = Workflows.from_environment(webhook_policy(receiver), clock, ENVIRON)  # window 60 s
    ids = source_tags(tags)
    raise_alarm(conn, ids[0], clock, level=1)
    flows.tick(conn)
    assert len(receiver.to("operational")) == 1  # the first goes at once
    for tag in ids[1:16]:
        clock.advance(2)
        raise_alarm(conn, tag, clock, level=2 if tag == ids[9] else 1)
        flows.tick(conn)
    assert len(receiver.to("operational")) == 1  # the rest wait for the window to end
    clock.advance(60)
    flows.tick(conn)
    requests = receiver.to("operational")
    assert len(requests) == 2
    digest = requests[1].json
    assert digest["digest"] is True
    assert digest["count"] == 15
    assert digest["items"][0]["priority"] == 1  # the gravest first
    assert sorted(told(receiver)) == raise_journal_ids(conn)


def test_rate_limit_per_recipient_holds_messages_and_sends_them_later(
    conn: Conn, tags: dict[str, int], receiver: Receiver
) -> None:
    clock = FakeClock(START_MS)
    policy = webhook_policy(receiver, group_window_s=0, rate_limit={"max_messages": 3, "per_minutes": 10})
    flows = Workflows.from_environment(policy, clock, ENVIRON)
    for tag in source_tags(tags)[:5]:
        raise_alarm(conn, tag, clock, level=1)  # 二级: no escalation step within the test's 11 min
        flows.tick(conn)
        clock.advance(30)
    assert len(receiver.to("operational")) == 3
    clock.advance(8 * 60)  # 10 min after the first message
    flows.tick(conn)
    requests = receiver.to("operational")
    assert len(requests) == 4
    assert requests[3].json["count"] == 2
    assert sorted(told(receiver)) == raise_journal_ids(conn)


def test_a_failing_receiver_is_retried_with_backoff_until_it_recovers(
    conn: Conn, tags: dict[str, int], receiver: Receiver
) -> None:
    clock = FakeClock(START_MS)
    flows = Workflows.from_environment(webhook_policy(receiver), clock, ENVIRON)  # 5 s, doubling
    receiver.fail_next = 2
    raise_alarm(conn, source_tags(tags)[0], clock)
    flows.tick(conn)
    assert len(receiver.requests) == 1  # 500
    clock.advance(4.9)
    flows.tick(conn)
    assert len(receiver.requests) == 1
    clock.advance(0.1)
    flows.tick(conn)
    assert len(receiver.requests) == 2  # 500 again; next in 10 s
    clock.advance(9.9)
    flows.tick(conn)
    assert len(receiver.requests) == 2
    clock.advance(0.1)
    flows.tick(conn)
    assert len(receiver.requests) == 3  # 200
    clock.advance(120)
    flows.tick(conn)
    assert len(receiver.requests) == 3
    assert len({r.headers["x-hazardwatch-delivery"] for r in receiver.requests}) == 1  # one message
    alarm = int(str(conn.execute("SELECT max(id) FROM alarms").fetchone()[0]))  # type: ignore[index]
    [delivery] = deliveries_of(conn, alarm)
    assert (delivery["status"], delivery["attempts"], delivery["last_error"]) == ("sent", 3, None)
    assert delivery["recipient"] == f"person:{ENTERPRISE}/{OPERATIONAL}"


def test_a_delivery_is_given_up_after_its_attempts(
    conn: Conn, tags: dict[str, int], receiver: Receiver
) -> None:
    clock = FakeClock(START_MS)
    policy = webhook_policy(receiver, retry={"max_attempts": 2, "first_delay_s": 1})
    flows = Workflows.from_environment(policy, clock, ENVIRON)
    receiver.fail_next = 10
    raise_alarm(conn, source_tags(tags)[0], clock)
    for _ in range(5):
        flows.tick(conn)
        clock.advance(10)
    assert len(receiver.requests) == 2
    row = conn.execute("SELECT status, attempts, last_error FROM notify_deliveries").fetchone()
    assert row is not None
    assert row[:2] == ("failed", 2)
    assert "HTTP 500" in str(row[2])


def test_a_sender_that_died_after_claiming_is_replaced_when_its_lease_ends(
    conn: Conn, tags: dict[str, int], receiver: Receiver
) -> None:
    clock = FakeClock(START_MS)
    policy = webhook_policy(receiver)
    dead = Workflows(policy, clock, {})  # knows no channel: claims nothing it cannot send
    flows = Workflows.from_environment(policy, clock, ENVIRON)
    raise_alarm(conn, source_tags(tags)[0], clock)
    dead.tick(conn)
    conn.execute("UPDATE notify_deliveries SET lease_until = %s, attempts = 1", (clock_time(clock, 60),))
    flows.tick(conn)
    assert receiver.requests == []  # another sender holds it
    clock.advance(60)
    flows.tick(conn)
    assert len(receiver.requests) == 1


def clock_time(clock: FakeClock, seconds: float) -> datetime:
    return utc_from_ms(clock.now_ms() + int(seconds * 1000))


# -- e-mail and SMS -----------------------------------------------------------------------
class Mailbox:
    def __init__(self) -> None:
        self.mails: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: object, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        mail = message_from_bytes(content, policy=email_policy.default)
        assert isinstance(mail, EmailMessage)
        self.mails.append((list(envelope.rcpt_tos), mail))
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def test_mail_through_a_real_smtp_server(
    conn: Conn, tags: dict[str, int], mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    clock = FakeClock(START_MS)
    policy = Policy.model_validate(
        {
            "notifications": {
                "channels": {"email": {"host": "127.0.0.1", "port": port, "sender": "alarms@hw.example"}},
                "contacts": {"people": {OPERATIONAL: {"email": "zhao@plant.example"}}},
            }
        }
    )
    flows = Workflows.from_environment(policy, clock, {})
    raise_alarm(conn, source_tags(tags)[0], clock, level=2)
    flows.tick(conn)
    flows.tick(conn)
    assert len(box.mails) == 1
    recipients, mail = box.mails[0]
    assert recipients == ["zhao@plant.example"]
    assert "一级" in str(mail["Subject"])
    assert str(mail["Message-ID"]).endswith("@hazardwatch>")
    assert "【一级报警】" in mail.get_content()
    assert "LT101" in mail.get_content()


def test_sms_through_an_http_gateway_template(conn: Conn, tags: dict[str, int], receiver: Receiver) -> None:
    clock = FakeClock(START_MS)
    policy = Policy.model_validate(
        {
            "notifications": {
                "channels": {
                    "sms": {
                        "url": receiver.url("sms/send?to={phone}"),
                        "body": '{"mobile": "{phone}", "content": "{text}", "id": "{key}"}',
                        "headers": {"Authorization": "Bearer {secret}"},
                        "max_chars": 40,
                    }
                },
                "contacts": {"duty": {"330110": {"phone": "+8613800000000"}}},
                "on_raise": ["county"],
            }
        }
    )
    with pytest.raises(ConfigError, match="HW_SMS_TOKEN"):
        Workflows.from_environment(policy, clock, {})
    flows = Workflows.from_environment(policy, clock, {"HW_SMS_TOKEN": "tok-1"})
    raise_alarm(conn, source_tags(tags)[0], clock, level=2)
    flows.tick(conn)
    [sms] = receiver.to("sms")
    assert sms.path == "/sms/send?to=%2B8613800000000"
    assert sms.headers["authorization"] == "Bearer tok-1"
    body = json.loads(sms.body)  # the text, with its Chinese and quotes, is escaped for JSON
    assert body["mobile"] == "+8613800000000"
    assert body["content"].startswith("【一级报警】")
    assert len(body["content"]) == 40
    assert body["id"] == sms.headers["x-hazardwatch-delivery"]


# -- configuration ------------------------------------------------------------------------
def test_configuration_errors(receiver: Receiver) -> None:
    with pytest.raises(ValueError, match=r"channels\.email is not set"):
        Policy.model_validate({"notifications": {"contacts": {"people": {"x": {"email": "a@b.c"}}}}})
    with pytest.raises(ValueError, match="division code"):
        Policy.model_validate({"notifications": {"contacts": {"duty": {"3301100": {}}}}})
    with pytest.raises(ValueError, match="names a rung twice"):
        Policy.model_validate({"escalation": {"chain": ["county", "county"]}})
    with pytest.raises(ValueError, match="cannot be shorter"):
        Policy.model_validate(
            {
                "escalation": {
                    "timers": {1: {"acknowledge_minutes": 10, "feedback_minutes": 5, "step_minutes": 5}}
                }
            }
        )
    with pytest.raises(ConfigError, match="HW_TEST_WEBHOOK_SECRET"):
        Workflows.from_environment(webhook_policy(receiver), FakeClock(START_MS), {})


def test_the_tracker_and_notifier_are_separate_consumers(conn: Conn, tags: dict[str, int]) -> None:
    clock = FakeClock(START_MS)
    raise_alarm(conn, source_tags(tags)[0], clock)
    assert drain(conn, EscalationTracker(Policy())) == 1
    assert drain(conn, Notifier(Policy(), clock)) == 1
    assert drain(conn, Notifier(Policy(), clock)) == 0


def test_an_annunciation_read_too_late_is_not_told_but_its_escalation_is(
    conn: Conn, tags: dict[str, int], receiver: Receiver
) -> None:
    clock = FakeClock(START_MS)
    flows = Workflows.from_environment(webhook_policy(receiver), clock, ENVIRON)
    raise_alarm(conn, source_tags(tags)[0], clock, level=2)
    clock.advance(25 * 3600)  # the workflows process was down for a day
    report = flows.tick(conn)
    assert flows.notifier.skipped == 1
    assert told(receiver) == []
    assert report.escalated == 6  # the whole chain is overdue: every rung is told now
    assert {r.path for r in receiver.requests} == {
        "/operational",
        "/technical",
        "/principal",
        "/county",
        "/city",
        "/province",
    }
