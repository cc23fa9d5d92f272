"""OPC-UA through asyncua: one supervised session per device, source timestamps kept.

The supervisor owns the connection: resolve the device's secrets, connect (Basic256Sha256 and a
user when configured), open a :class:`~gateway_agent.sources.opcua_session.Session` (monitored
items per tag, pollers for the rest, current values read), then watch it: a probe every second,
the subscription's keep-alive, the pollers. On loss every tag is reported BAD_COMM once and the
loop reconnects with capped backoff, rebuilding the subscription and reading the values again.
A configuration the device cannot run with (an unset password variable, a missing certificate)
is logged as an error for that device alone; its tags read BAD_COMM, the agent runs on.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.uaerrors import UaError

from gateway_agent.sources.base import CommState, Emit
from gateway_agent.sources.opcua_security import OpcUaConfigError, credentials, describe, secure
from gateway_agent.sources.opcua_session import Point, Reporter, Session, bad_now
from gateway_agent.sources.opcua_values import now_ms
from hazardwatch.ledger.models import OpcUaDevice, Tag
from hazardwatch.quality import Quality

logger = logging.getLogger(__name__)

MIN_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0


class OpcUaSource:
    def __init__(
        self, device: OpcUaDevice, tags: list[Tag], environ: Mapping[str, str] | None = None
    ) -> None:
        self.device_id = device.id
        self._device = device
        self._tags = tags
        self._environ = os.environ if environ is None else environ
        self._state = CommState.CONNECTING
        self._points, self._unparsable = _points(device, tags)
        self._refused: set[str] = set()  # tags whose refusal was logged; logged again only after a success

    @property
    def state(self) -> CommState:
        return self._state

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        """The supervisor: connect, open the session, watch; on loss BAD_COMM once and reconnect."""
        reporter = Reporter(emit)
        backoff = MIN_BACKOFF_S
        while not stop.is_set():
            try:
                await self._session(reporter, stop)
                backoff = MIN_BACKOFF_S
            except OpcUaConfigError as err:
                self._down(reporter, str(err), level=logging.ERROR)
                backoff = MAX_BACKOFF_S  # the configuration does not change by itself soon
            except (OSError, TimeoutError, UaError, ConnectionError) as err:
                self._down(reporter, describe(err, self._device))
            except Exception:  # the supervisor loop: a bug must not silence the device
                logger.exception("opcua device %s: supervisor failed", self.device_id)
                self._down(reporter, "internal error")
            if not stop.is_set():
                await _wait(stop, backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _session(self, reporter: Reporter, stop: asyncio.Event) -> None:
        """One connection, from connect to loss (raised) or stop (returned)."""
        creds = credentials(self._device, self._environ)
        client = Client(self._device.endpoint, timeout=self._device.timeout_s)
        await secure(client, self._device, creds)
        await client.connect()
        session = Session(client, self._device, self._points, reporter, self._on_refused)
        try:
            await session.open()
            for tag in self._unparsable:
                bad_now(reporter, tag)
            for point in session.subscribed:
                self._refused.discard(point.tag.code)
            self._up()
            await session.watch(stop)
        finally:
            await _close(client, session)

    def _on_refused(self, point: Point, reason: str, period_s: float) -> None:
        if point.tag.code in self._refused:
            return
        self._refused.add(point.tag.code)
        logger.warning(
            "opcua device %s: no monitored item for %s (%s): %s; polling it every %g s instead",
            self.device_id, point.tag.code, point.config.node, reason, period_s,
        )  # fmt: skip

    def _up(self) -> None:
        if self._state == CommState.DOWN:
            logger.info("opcua device %s recovered", self.device_id)
        self._state = CommState.UP

    def _down(self, reporter: Reporter, why: str, level: int = logging.WARNING) -> None:
        if self._state == CommState.DOWN:
            return
        logger.log(level, "opcua device %s (%s) down: %s", self.device_id, self._device.endpoint, why)
        self._state = CommState.DOWN
        now = now_ms()
        for tag in self._tags:
            reporter.emit(tag.code, now, None, Quality.BAD_COMM)


def _points(device: OpcUaDevice, tags: list[Tag]) -> tuple[list[Point], list[Tag]]:
    """The tags with their parsed node ids, and the tags whose node id asyncua cannot parse."""
    points: list[Point] = []
    unparsable: list[Tag] = []
    for tag in tags:
        assert tag.opcua is not None  # noqa: S101 - only opcua tags reach this source
        try:
            points.append(Point(tag, tag.opcua, ua.NodeId.from_string(tag.opcua.node)))
        except (UaError, ValueError) as err:
            logger.warning(
                "opcua device %s: %s has a node id that cannot be read (%s)", device.id, tag.code, err
            )
            unparsable.append(tag)
    return points, unparsable


async def _close(client: Client, session: Session) -> None:
    """Close the session's items first, so no publish request is pending when the client goes."""
    try:
        await session.close()
    except (OSError, TimeoutError, UaError, ConnectionError, RuntimeError):
        logger.debug("closing the session on a lost server failed", exc_info=True)
    try:
        await asyncio.wait_for(client.disconnect(), timeout=2)
    except (OSError, TimeoutError, UaError, ConnectionError, RuntimeError):
        logger.debug("disconnect from a lost server failed", exc_info=True)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return
