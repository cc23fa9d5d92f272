"""What one connected OPC-UA session reads: monitored items, polled nodes, the keep-alive watchdog.

Subscribed tags become monitored items of one subscription, each with its own sampling
interval, queue size and absolute-deadband data-change filter. A tag configured ``mode: poll``,
or whose monitored item the server refuses (an unknown node id, a filter it does not support),
is read by a poller every sampling interval through the same data-change filter, so that one
bad node never stalls the others. After the items are created the current values are read once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.common.subscription import DataChangeNotif, Subscription
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.uaerrors import UaStatusCodeError

from gateway_agent.sources.opcua_values import ChangeFilter, now_ms, reading_of, source_ms, value_of
from hazardwatch.ledger.models import MIN_POLL_MS, OpcUaDevice, OpcUaPoint, Tag
from hazardwatch.quality import Quality

logger = logging.getLogger(__name__)

PROBE_INTERVAL_S = 1.0
KEEPALIVE_MISSES = 3  # keep-alive periods of silence that mean the subscription is lost
ITEMS_PER_CALL = 500  # monitored items per CreateMonitoredItems, nodes per Read

T = TypeVar("T")


class SubscriptionLost(ConnectionError):
    """The subscription went silent past its keep-alive, or the server reported it gone."""


@dataclass(frozen=True, slots=True)
class Point:
    """A tag with its OPC-UA settings and parsed node id."""

    tag: Tag
    config: OpcUaPoint
    node: ua.NodeId


# (point, reason, poll period) for a point whose monitored item the server refused: it is polled
Refused = Callable[["Point", str, float], None]


class Reporter:
    """Turns data values into readings; drops an exact repeat (a current value read twice)."""

    def __init__(self, emit: Callable[[str, int, float | None, Quality], None]) -> None:
        self._emit = emit
        self._last: dict[str, tuple[int, float | None, Quality]] = {}

    def report(self, tag: Tag, data: ua.DataValue) -> None:
        number, quality = reading_of(value_of(data), data.StatusCode)
        self.emit(tag.code, source_ms(data), number, quality)

    def emit(self, code: str, ts_ms: int, number: float | None, quality: Quality) -> None:
        reading = (ts_ms, number, quality)
        if self._last.get(code) == reading:
            return
        self._last[code] = reading
        self._emit(code, ts_ms, number, quality)


class _Handler:
    """asyncua calls this on a task of its own for every data change and status change."""

    def __init__(self, reporter: Reporter, points: dict[int, Point], lost: asyncio.Event) -> None:
        self._reporter = reporter
        self._points = points  # client handle → point
        self._lost = lost

    def datachange_notification(self, node: Node, val: Any, data: DataChangeNotif) -> None:
        handle = data.subscription_data.client_handle
        point = self._points.get(handle) if handle is not None else None
        if point is not None:
            self._reporter.report(point.tag, data.monitored_item.Value)

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        if status.Status is not None and not status.Status.is_good():
            logger.debug("subscription status change: %s", status.Status.name)
            self._lost.set()


class Session:
    """The monitored items and pollers of one connected client, and the watch over them."""

    def __init__(self, client: Client, device: OpcUaDevice, points: Sequence[Point], reporter: Reporter,
                 refused: Refused) -> None:  # fmt: skip
        self._client = client
        self._device = device
        self._points = list(points)
        self._reporter = reporter
        self._refused = refused
        self._lost = asyncio.Event()
        self._subscription: Subscription | None = None
        self._keepalive_s = device.keepalive_s  # as the server revised it
        self._opened_at = time.monotonic()
        self._pollers: list[asyncio.Task[None]] = []
        self.subscribed: list[Point] = []
        self.polled: list[Point] = []

    async def open(self) -> None:
        """Create the monitored items, read the current values, start the pollers."""
        wanted = [p for p in self._points if p.config.mode == "subscribe"]
        polled = [p for p in self._points if p.config.mode == "poll"]
        if wanted:
            subscribed, refused = await self._subscribe(wanted)
            for point, reason in refused:
                self._refused(point, reason, self._poll_period_s(point))
            polled += [p for p, _ in refused]
            self.subscribed = subscribed
            for point, data in zip(subscribed, await self._read(subscribed), strict=True):
                self._reporter.report(point.tag, data)
        self.polled = polled
        by_period: dict[float, list[Point]] = {}
        for point in polled:
            by_period.setdefault(self._poll_period_s(point), []).append(point)
        self._pollers = [
            asyncio.create_task(self._poll(period, points), name=f"opcua-poll-{self._device.id}-{period}")
            for period, points in sorted(by_period.items())
        ]

    async def watch(self, stop: asyncio.Event) -> None:
        """Return at stop; raise when the connection, the subscription or a poller is lost."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PROBE_INTERVAL_S)
            if stop.is_set():
                return
            for poller in self._pollers:
                if poller.done():
                    poller.result()  # raises what ended it
            self._check_keepalive()
            await asyncio.wait_for(
                self._client.nodes.server_state.read_value(), timeout=self._device.timeout_s
            )

    async def close(self) -> None:
        """Stop the pollers and delete the subscription, so nothing is pending when the session closes."""
        for poller in self._pollers:
            poller.cancel()
        await asyncio.gather(*self._pollers, return_exceptions=True)
        if self._subscription is not None:
            await asyncio.wait_for(self._subscription.delete(), timeout=2)

    def _check_keepalive(self) -> None:
        if self._lost.is_set():
            raise SubscriptionLost("the server reported the subscription lost")
        if self._subscription is None:
            return
        last = self._subscription.last_publish_at or self._opened_at
        silent_s = time.monotonic() - last
        if silent_s > KEEPALIVE_MISSES * self._keepalive_s + self._device.timeout_s:
            raise SubscriptionLost(f"no publish response or keep-alive for {silent_s:.1f} s")

    async def _subscribe(self, points: list[Point]) -> tuple[list[Point], list[tuple[Point, str]]]:
        """(subscribed, refused with the reason); a refused service call refuses all it carried."""
        handles = list(enumerate(points, start=1))
        handler = _Handler(self._reporter, dict(handles), self._lost)
        # made here rather than by Client.create_subscription, which would trade a revised
        # publishing interval for a keep-alive of minutes: the watchdog needs the revised values
        subscription = Subscription(self._client.uaclient.session, self._parameters(), handler)
        try:
            created = await subscription.init()
        except UaStatusCodeError as err:
            return [], [(p, _name(err)) for p in points]
        self._subscription = subscription
        self._keepalive_s = created.RevisedPublishingInterval * created.RevisedMaxKeepAliveCount / 1000
        subscribed: list[Point] = []
        refused: list[tuple[Point, str]] = []
        for chunk in _chunks(handles):
            try:
                results = await subscription.create_monitored_items([_request(h, p) for h, p in chunk])
            except UaStatusCodeError as err:
                results = [ua.StatusCode(ua.UInt32(err.code))] * len(chunk)
            for (_, point), result in zip(chunk, results, strict=True):
                if isinstance(result, ua.StatusCode):
                    refused.append((point, result.name))
                else:
                    subscribed.append(point)
        return subscribed, refused

    def _parameters(self) -> ua.CreateSubscriptionParameters:
        interval = self._device.publishing_interval_ms
        keepalive = max(1, round(self._device.keepalive_s * 1000 / interval))
        return ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=float(interval),
            RequestedLifetimeCount=ua.UInt32(max(10_000, keepalive * 3)),
            RequestedMaxKeepAliveCount=ua.UInt32(keepalive),
            MaxNotificationsPerPublish=ua.UInt32(10_000),
            PublishingEnabled=True,
            Priority=ua.Byte(0),
        )

    def _poll_period_s(self, point: Point) -> float:
        interval_ms = point.config.sampling_interval_ms or self._device.publishing_interval_ms
        return max(interval_ms, MIN_POLL_MS) / 1000

    async def _poll(self, period_s: float, points: list[Point]) -> None:
        """Read the points every period; report what passes each tag's data-change filter."""
        filters = [ChangeFilter(p.config.deadband) for p in points]
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            for point, flt, data in zip(points, filters, await self._read(points), strict=True):
                number, _ = reading_of(value_of(data), data.StatusCode)
                if flt.passes(data.StatusCode, number):
                    self._reporter.report(point.tag, data)
            due = max(due + period_s, loop.time())  # a late read is not made up for
            await asyncio.sleep(due - loop.time())

    async def _read(self, points: Sequence[Point]) -> list[ua.DataValue]:
        """The current data values of the points, with source and server timestamps."""
        values: list[ua.DataValue] = []  # an empty Read is an error (BadNothingToDo): none is sent
        for chunk in _chunks(list(points)):
            params = ua.ReadParameters(
                MaxAge=0,
                TimestampsToReturn=ua.TimestampsToReturn.Both,
                NodesToRead=[ua.ReadValueId(NodeId=p.node, AttributeId=AttributeIds.Value) for p in chunk],
            )
            values += await asyncio.wait_for(
                self._client.uaclient.read(params), timeout=self._device.timeout_s
            )
        return values


def _request(handle: int, point: Point) -> ua.MonitoredItemCreateRequest:
    config = point.config
    params = ua.MonitoringParameters(
        ClientHandle=ua.UInt32(handle),
        SamplingInterval=float(config.sampling_interval_ms),
        QueueSize=ua.UInt32(config.queue_size),
        DiscardOldest=True,
    )
    if config.deadband > 0:
        params.Filter = ua.DataChangeFilter(
            Trigger=ua.DataChangeTrigger.StatusValue,
            DeadbandType=ua.UInt32(ua.DeadbandType.Absolute),
            DeadbandValue=float(config.deadband),
        )
    return ua.MonitoredItemCreateRequest(
        ItemToMonitor=ua.ReadValueId(NodeId=point.node, AttributeId=AttributeIds.Value),
        MonitoringMode=ua.MonitoringMode.Reporting,
        RequestedParameters=params,
    )


def _chunks(items: list[T]) -> Iterator[list[T]]:
    for start in range(0, len(items), ITEMS_PER_CALL):
        yield items[start : start + ITEMS_PER_CALL]


def _name(err: UaStatusCodeError) -> str:
    return ua.StatusCode(ua.UInt32(err.code)).name


def bad_now(reporter: Reporter, tag: Tag) -> None:
    """One BAD reading now, for a tag that cannot be read at all."""
    reporter.emit(tag.code, now_ms(), None, Quality.BAD)
