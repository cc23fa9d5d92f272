"""A small pool of psycopg async connections (psycopg_pool is not a dependency).

Connections are autocommit: every read is its own statement; writes that need a transaction
open one explicitly with ``conn.transaction()``. A broken connection is dropped, never reused.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg import pq

from dashboard.errors import DatabaseUnavailable

logger = logging.getLogger(__name__)

AsyncConn = psycopg.AsyncConnection[tuple[object, ...]]
_PING_AFTER_S = 10.0
# psycopg prepares a statement run five times; a generic plan of a scoped, filtered, ordered
# LIMIT query (the board, the history) can be orders of magnitude slower than the custom plan
# for the actual scope and filters, so every execution is planned for its parameters
SESSION_OPTIONS = "-c plan_cache_mode=force_custom_plan"


class Pool:
    def __init__(self, url: str, *, max_size: int = 10, connect_timeout: float = 5.0) -> None:
        self.url = url
        self._idle: list[tuple[AsyncConn, float]] = []  # (connection, when it was given back)
        self._slots = asyncio.Semaphore(max_size)
        self._connect_timeout = connect_timeout
        self._closed = False
        self._down = False

    async def _connect(self) -> AsyncConn:
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, connect_timeout=int(self._connect_timeout), options=SESSION_OPTIONS
            )
        except psycopg.OperationalError as err:
            if not self._down:
                logger.warning("database unreachable: %s", err)
                self._down = True
            raise DatabaseUnavailable(str(err)) from err
        if self._down:
            logger.info("database reachable again")
            self._down = False
        return conn

    async def _take(self) -> AsyncConn:
        """An idle connection that still answers (pinged when idle a while), else a new one."""
        while self._idle:
            conn, since = self._idle.pop()
            if time.monotonic() - since < _PING_AFTER_S:
                return conn
            try:
                await conn.execute("SELECT 1")
            except psycopg.Error:
                await self._discard(conn)
                continue
            return conn
        return await self._connect()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConn]:
        """Borrow a connection; a psycopg.OperationalError inside becomes DatabaseUnavailable."""
        if self._closed:
            raise DatabaseUnavailable("the pool is closed")
        async with self._slots:
            conn = await self._take()
            try:
                yield conn
            except psycopg.OperationalError as err:
                await self._discard(conn)
                raise DatabaseUnavailable(str(err)) from err
            except BaseException:
                await self._give_back(conn)
                raise
            else:
                await self._give_back(conn)

    async def _give_back(self, conn: AsyncConn) -> None:
        if self._closed or conn.closed or conn.broken:
            await self._discard(conn)
            return
        if conn.info.transaction_status != pq.TransactionStatus.IDLE:
            try:
                await conn.rollback()
            except psycopg.Error:
                await self._discard(conn)
                return
        self._idle.append((conn, time.monotonic()))

    @staticmethod
    async def _discard(conn: AsyncConn) -> None:
        try:
            await conn.close()
        except psycopg.Error:
            logger.debug("closing a broken connection failed", exc_info=True)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            await self._discard(conn)
