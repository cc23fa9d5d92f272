"""Helpers for the workflow tests: a seeded database, alarms raised as ingest raises them, a real
loopback HTTP receiver that checks webhook signatures, and a policy whose contacts point at it."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg

from alarms.policy import Policy
from alarms.store import apply_transitions
from hazardwatch.clock import Clock
from hazardwatch.ledger import Plant
from ingest.ledger_sync import sync_ledger
from ingest.migrate import migrate
from rules.types import Condition, Transition

Conn = psycopg.Connection[tuple[object, ...]]
SECRET = "test-webhook-secret"
SECRET_ENV = "HW_TEST_WEBHOOK_SECRET"
ENVIRON = {SECRET_ENV: SECRET}
# The first hazard source of E330110001 (division 330110) and its 包保责任制.
ENTERPRISE = "E330110001"
OPERATIONAL, TECHNICAL, PRINCIPAL = "赵海峰", "王立新", "陈建国"
START_MS = 1_796_090_400_000  # 2026-12-01 02:00 UTC


def seed(url: str, plant: Plant) -> dict[str, int]:
    """Schema and the sample ledger; returns tag ids by 'ENTERPRISE/TAG'."""
    migrate(url)
    with psycopg.connect(url) as conn:
        sync_ledger(conn, plant)
        conn.commit()
        rows = conn.execute(
            "SELECT e.code || '/' || t.code, t.id FROM tags t JOIN enterprises e ON e.id = t.enterprise_id"
        ).fetchall()
    return {str(code): int(str(tag_id)) for code, tag_id in rows}


def source_tags(tags: dict[str, int]) -> list[int]:
    """Tag ids of the first hazard source (LPG sphere farm) of E330110001, all 18."""
    codes = "LT101 PT101 TT101 LT102 PT102 TT102 LT103 PT103 TT103 FT101 FT102 GT101 GT102 GT103 GT104"
    codes += " GT105 GT106 WS101"
    return [tags[f"{ENTERPRISE}/{code}"] for code in codes.split()]


def raise_alarm(conn: Conn, tag_id: int, clock: Clock, level: int = 2, value: float = 95.0) -> int:
    """Raise (or change) a HIGH alarm at the clock's time, as ingest does; returns its id."""
    with conn.transaction():
        apply_transitions(conn, [Transition(tag_id, Condition.HIGH, level, clock.now_ms(), value, 90.0)])
    row = conn.execute(
        "SELECT id FROM alarms WHERE tag_id = %s ORDER BY id DESC LIMIT 1", (tag_id,)
    ).fetchone()
    assert row is not None
    return int(str(row[0]))


@dataclass
class Request:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    signed: bool

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server on loopback that records every request and answers 200 (or 500 while
    told to fail). A webhook counts as signed when its HMAC-SHA256 matches."""

    port: int = 0
    requests: list[Request] = field(default_factory=list)
    fail_next: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def record(self, path: str, headers: dict[str, str], body: bytes) -> int:
        timestamp = headers.get("x-hazardwatch-timestamp", "")
        expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        signed = headers.get("x-hazardwatch-signature") == f"sha256={expected}"
        with self.lock:
            self.requests.append(Request(path, headers, body, signed))
            if self.fail_next > 0:
                self.fail_next -= 1
                return 500
        return 200

    def to(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path.startswith(f"/{path}")]


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            status = receiver.record(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = _answer
        do_GET = _answer

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver")
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def webhook_policy(receiver: Receiver, **notifications: Any) -> Policy:
    """The default policy, with every rung of the chain reachable by webhook at the receiver."""
    people = {
        f"{ENTERPRISE}/{OPERATIONAL}": {"webhook": receiver.url("operational")},
        TECHNICAL: {"webhook": receiver.url("technical")},
        PRINCIPAL: {"webhook": receiver.url("principal")},
    }
    duty = {
        "330110": {"webhook": receiver.url("county")},
        "3301": {"webhook": receiver.url("city")},
        "33": {"webhook": receiver.url("province")},
    }
    doc: dict[str, Any] = {
        "channels": {"webhook": {"secret_env": SECRET_ENV}},
        "contacts": {"people": people, "duty": duty},
        **notifications,
    }
    return Policy.model_validate({"notifications": doc})
