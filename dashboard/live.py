"""Live push: one LISTEN on 'hw_alarms' per app, fanned out to WebSockets by scope.

Each journal row announces ``{journal_id, alarm_id, action}`` at commit. The hub fetches the
alarm once (unscoped) and offers it to every socket whose principal may see it. A socket
that falls behind, or any socket after the listener lost the database, is told to
``resync`` (refetch the board) rather than silently missing changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import psycopg
from aiohttp import WSCloseCode, WSMsgType, web

from dashboard.context import HUB
from dashboard.db import Pool
from dashboard.errors import DatabaseUnavailable
from dashboard.queries import get_alarm
from dashboard.responses import ApiError, dumps, require_session
from dashboard.sessions import Session

logger = logging.getLogger(__name__)

CHANNEL = "hw_alarms"
QUEUE_SIZE = 256
PROBE_EVERY_S = 15.0
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
_CLOSE = {"type": "close"}


@dataclass(eq=False)
class Client:
    ws: web.WebSocketResponse
    session: Session
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))

    def offer(self, message: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:  # too slow: drop what is queued and ask for a full refresh
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait({"type": "resync"})


class LiveHub:
    def __init__(self, url: str, pool: Pool) -> None:
        self.url = url
        self.pool = pool
        self.clients: set[Client] = set()
        self.listening = asyncio.Event()
        self.backend_pid: int | None = None
        self._task: asyncio.Task[None] | None = None

    # -- sockets ---------------------------------------------------------------------------
    def register(self, ws: web.WebSocketResponse, session: Session) -> Client:
        client = Client(ws, session)
        self.clients.add(client)
        return client

    def unregister(self, client: Client) -> None:
        self.clients.discard(client)

    def close_session(self, token_hash: bytes) -> None:
        """Close the sockets of a session that logged out."""
        for client in list(self.clients):
            if client.session.token_hash == token_hash:
                client.offer(_CLOSE)

    def resync_all(self) -> None:
        for client in list(self.clients):
            client.offer({"type": "resync"})

    async def close_all(self) -> None:
        for client in list(self.clients):
            await client.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    async def publish(self, alarm_id: int, journal_id: int, action: str) -> int:
        """Send the alarm to every socket that may see it; returns how many were offered it."""
        if not self.clients:
            return 0
        async with self.pool.connection() as conn:
            row = await get_alarm(conn, None, alarm_id)
        if row is None:
            return 0
        message = {"type": "alarm", "action": action, "journal_id": journal_id, "alarm": row}
        sent = 0
        for client in list(self.clients):
            who = client.session.principal
            if who.sees_alarms and who.can_see(int(row["enterprise_id"]), str(row["division"])):
                client.offer(message)
                sent += 1
        return sent

    # -- the listener ----------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="hw-live-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen_forever(self) -> None:
        delay, down = BACKOFF_FIRST_S, False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=5
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.backend_pid = conn.info.backend_pid
                    self.listening.set()
                    if down:
                        logger.info("live push: listening on %s again", CHANNEL)
                        self.resync_all()  # changes while we were away were not announced to us
                    delay, down = BACKOFF_FIRST_S, False
                    await self._pump(conn)
            except psycopg.OperationalError as err:
                if not down:
                    logger.warning("live push: lost the database (%s); reconnecting", err)
                    down = True
            except Exception:
                logger.exception("live push: listener failed; restarting")
                down = True
            self.listening.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def _pump(self, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        while True:
            async for note in conn.notifies(timeout=PROBE_EVERY_S):
                await self._dispatch(note.payload)
            await conn.execute("SELECT 1")  # a silent, half-open connection fails here

    async def _dispatch(self, payload: str) -> None:
        try:
            note = json.loads(payload)
            alarm_id, journal_id, action = int(note["alarm_id"]), int(note["journal_id"]), str(note["action"])
        except (ValueError, KeyError, TypeError):
            logger.warning("live push: ignoring a malformed notification %r", payload[:200])
            return
        try:
            await self.publish(alarm_id, journal_id, action)
        except DatabaseUnavailable as err:
            logger.warning("live push: cannot read alarm %s (%s)", alarm_id, err)


async def live_handler(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/live — a WebSocket authenticated by the session cookie."""
    session = require_session(request)
    origin = request.headers.get("Origin")
    if origin is not None and origin.split("://", 1)[-1] != request.host:
        raise ApiError(403, "forbidden", "cross-origin WebSocket refused")
    hub = request.app[HUB]
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=4096)
    await ws.prepare(request)
    client = hub.register(ws, session)
    sender = asyncio.create_task(_send_loop(client), name="hw-live-sender")
    try:
        await ws.send_str(dumps({"type": "hello", "listening": hub.listening.is_set()}))
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data == "ping":
                client.offer({"type": "pong"})
    finally:
        hub.unregister(client)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
    return ws


async def _send_loop(client: Client) -> None:
    while True:
        message = await client.queue.get()
        if message is _CLOSE:
            await client.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"logged out")
            return
        try:
            await client.ws.send_str(dumps(message))
        except ConnectionResetError:
            return
