"""OPC-UA through asyncua: one subscription per device, source timestamps kept.

A supervisor loop owns the connection: connect, subscribe every node (a node that cannot be
subscribed is reported BAD and does not stop the others), then probe the server every second.
On loss every tag is reported BAD_COMM once, and the loop reconnects with capped backoff,
rebuilding the subscription (which delivers the current values again).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from datetime import UTC, datetime
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.common.subscription import Subscription
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from gateway_agent.sources.base import CommState, Emit
from hazardwatch.ledger.models import OpcUaDevice, Tag
from hazardwatch.quality import Quality

logger = logging.getLogger(__name__)

MIN_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
PROBE_INTERVAL_S = 1.0


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _quality(status: ua.StatusCode | None) -> Quality:
    if status is None or status.is_good():
        return Quality.GOOD
    if status.is_uncertain():
        return Quality.UNCERTAIN
    return Quality.BAD


def reading_of(val: Any, status: ua.StatusCode | None) -> tuple[float | None, Quality]:
    """Value and quality of a data change: a value that is not a finite number is BAD."""
    quality = _quality(status)
    if not quality.has_value:
        return None, quality
    if isinstance(val, bool):
        return float(val), quality
    if isinstance(val, int | float) and math.isfinite(val):
        return float(val), quality
    return None, Quality.BAD


def _ms(moment: datetime | None) -> int | None:
    """UTC milliseconds of an OPC-UA time; None when absent or at/before the Unix epoch (unset)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    ms = int(moment.timestamp() * 1000)
    return ms if ms > 0 else None


class _Handler:
    """asyncua calls this on its own task for every data change."""

    def __init__(self, emit: Emit, tags_by_node: dict[str, Tag]) -> None:
        self._emit = emit
        self._tags = tags_by_node

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        tag = self._tags.get(node.nodeid.to_string())
        if tag is None:
            return
        value: ua.DataValue = data.monitored_item.Value
        ts = _ms(value.SourceTimestamp) or _ms(value.ServerTimestamp) or _now_ms()
        number, quality = reading_of(val, value.StatusCode)
        self._emit(tag.code, ts, number, quality)

    def status_change_notification(self, status: Any) -> None:
        logger.debug("subscription status change: %s", status)


class OpcUaSource:
    def __init__(self, device: OpcUaDevice, tags: list[Tag]) -> None:
        self.device_id = device.id
        self._device = device
        self._tags = tags
        self._state = CommState.CONNECTING

    @property
    def state(self) -> CommState:
        return self._state

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        """The supervisor: connect, subscribe, watch; on loss BAD_COMM once and reconnect."""
        backoff = MIN_BACKOFF_S
        while not stop.is_set():
            client = Client(self._device.endpoint, timeout=self._device.timeout_s)
            try:
                await client.connect()
                subscription: Subscription | None = None
                try:
                    subscription = await self._subscribe(client, emit)
                    self._up()
                    backoff = MIN_BACKOFF_S
                    await self._watch(client, stop)
                finally:
                    await _disconnect(client, subscription)
            except (OSError, TimeoutError, UaError, ConnectionError) as err:
                self._down(emit, f"{type(err).__name__}: {err}")
            except Exception:  # the supervisor loop: a bug must not silence the device
                logger.exception("opcua device %s: supervisor failed", self.device_id)
                self._down(emit, "internal error")
            if not stop.is_set():
                await _wait(stop, backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _subscribe(self, client: Client, emit: Emit) -> Subscription:
        tags_by_node: dict[str, Tag] = {}
        handler = _Handler(emit, tags_by_node)
        subscription = await client.create_subscription(self._device.publishing_interval_ms, handler)
        for tag in self._tags:
            assert tag.opcua is not None  # noqa: S101 - only opcua tags reach this source
            try:
                node = client.get_node(tag.opcua.node)
                tags_by_node[node.nodeid.to_string()] = tag
                await subscription.subscribe_data_change(
                    node, sampling_interval=ua.Double(tag.opcua.sampling_interval_ms)
                )
            except (UaStatusCodeError, ValueError) as err:
                # one bad node id must not stall the others: report it and go on
                logger.warning(
                    "opcua %s: cannot subscribe %s (%s): %s", self.device_id, tag.code, tag.opcua.node, err
                )
                emit(tag.code, _now_ms(), None, Quality.BAD)
        return subscription

    async def _watch(self, client: Client, stop: asyncio.Event) -> None:
        """Probe the server until stop or loss (the probe raises on loss)."""
        while not stop.is_set():
            await _wait(stop, PROBE_INTERVAL_S)
            if stop.is_set():
                return
            await asyncio.wait_for(client.nodes.server_state.read_value(), timeout=self._device.timeout_s)

    def _up(self) -> None:
        if self._state == CommState.DOWN:
            logger.info("opcua device %s recovered", self.device_id)
        self._state = CommState.UP

    def _down(self, emit: Emit, why: str) -> None:
        if self._state == CommState.DOWN:
            return
        logger.warning("opcua device %s (%s) down: %s", self.device_id, self._device.endpoint, why)
        self._state = CommState.DOWN
        now = _now_ms()
        for tag in self._tags:
            emit(tag.code, now, None, Quality.BAD_COMM)


async def _disconnect(client: Client, subscription: Subscription | None) -> None:
    """Delete the subscription first, so no publish request is pending when the session closes."""
    try:
        if subscription is not None:
            await asyncio.wait_for(subscription.delete(), timeout=2)
        await asyncio.wait_for(client.disconnect(), timeout=2)
    except (OSError, TimeoutError, UaError, ConnectionError, RuntimeError):
        logger.debug("disconnect from a lost server failed", exc_info=True)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return
