"""The MQTT side of ingest: QoS 1, persistent session, acknowledgement after the commit.

paho's network thread only queues messages; the worker (the caller's thread) takes them in
groups, runs the pipeline, and acknowledges each message only after its transaction has
committed. While the database is down nothing is acknowledged: the broker keeps the
messages (its in-flight window is the back-pressure) and redelivers them after a reconnect.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.reasoncodes import ReasonCode

from hazardwatch import wire
from hazardwatch.mqttconn import make_client
from hazardwatch.settings import MqttAddress
from ingest import deadletters
from ingest.deadletters import DeadLetter
from ingest.pipeline import Message, Pipeline

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
CLOCK_TICK_S = 5.0  # how often the platform's time goes out to the agents


def subscriptions(enterprises: Sequence[str] = ()) -> list[str]:
    """Topic filters of one worker: all enterprises, or only the ones it owns."""
    kinds = ("readings", "status", "health", "events", "cameras")
    return [f"{wire.TOPIC_ROOT}/{code}/+/{kind}" for code in (enterprises or ["+"]) for kind in kinds]


class Consumer:
    def __init__(self, pipeline: Pipeline, address: MqttAddress, *, client_id: str,
                 topics: Sequence[str], max_batch: int = 100, linger_s: float = 0.05,
                 unsubscribe: Sequence[str] = (),
                 on_subscribed: Callable[[list[str]], None] | None = None) -> None:  # fmt: skip
        """``unsubscribe``: filters the persistent session may still hold from an earlier run;
        ``on_subscribed`` is told the filters once the broker granted them all."""
        self._pipeline = pipeline
        self._address = address
        self._topics = list(topics)
        self._unsubscribe = [t for t in unsubscribe if t not in self._topics]
        self._on_subscribed = on_subscribed
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._queue: queue.Queue[Message] = queue.Queue(maxsize=10_000)
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # the broker granted every subscription (SUBACK)
        self.processed = 0
        self._stopping = False
        self._client = make_client(address, client_id, clean_session=False)
        self._client.manual_ack_set(True)
        self._client.reconnect_delay_set(1, int(MAX_BACKOFF_S))
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            logger.warning("broker refused the connection: %s", reason)
            return
        if self._unsubscribe:  # handled before the SUBACK below: the broker keeps the order
            client.unsubscribe(self._unsubscribe)
            logger.info("unsubscribing from %s, no longer this worker's", self._unsubscribe)
        client.subscribe([(topic, 1) for topic in self._topics])
        logger.info("connected to %s:%s", self._address.host, self._address.port)
        self.connected.set()

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, _mid: int, reasons: list[ReasonCode], _p: object
    ) -> None:
        refused = [t for t, r in zip(self._topics, reasons, strict=False) if r.is_failure]
        if refused:
            logger.error("the broker refused the subscriptions %s: nothing will arrive on them", refused)
            return
        logger.info("subscribed to %s", self._topics)
        self._unsubscribe = []
        if self._on_subscribed is not None:
            try:
                self._on_subscribed(list(self._topics))
            except Exception:  # recording it is bookkeeping: consuming goes on
                logger.exception("could not record this worker's subscriptions")
        self.subscribed.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if not self._stopping:
            logger.warning("disconnected from the broker (%s); reconnecting", reason)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self._queue.put(Message(msg.topic, bytes(msg.payload), msg.mid, retained=bool(msg.retain)))

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set."""
        self._client.connect_async(self._address.host, self._address.port, keepalive=30)
        self._client.loop_start()
        next_tick = time.monotonic()
        try:
            while not stop.is_set():
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + CLOCK_TICK_S
                    self._tick()
                group = self._take()
                if group:
                    self._handle(group, stop)
        finally:
            self._stopping = True
            self._client.disconnect()
            self._client.loop_stop()
            self._pipeline.close()

    def _tick(self) -> None:
        """Every few seconds: the platform's clock to the agents, the rules' clock (STALE), and
        requests for batches a gateway numbered and the broker never delivered."""
        if self.connected.is_set():
            self._client.publish(wire.CLOCK_TOPIC, wire.clock_payload(), qos=0)
        if not self.subscribed.is_set():
            return  # nothing has been heard yet: silence means nothing
        try:
            self._pipeline.tick()
            requests = self._pipeline.resend_requests()
        except psycopg.OperationalError as err:
            logger.debug("rules clock tick skipped, database unavailable: %s", err)
            return
        for r in requests:
            logger.warning("gateway %s/%s: batches %d..%d never arrived; asking for them again (request %d)",
                           r.enterprise, r.gateway, r.first_seq, r.last_seq, r.attempt)  # fmt: skip
            self._client.publish(wire.resend_topic(r.enterprise, r.gateway),
                                 wire.resend_payload(r.first_seq, r.last_seq), qos=1)  # fmt: skip

    def _take(self) -> list[Message]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        group = [first]
        deadline = time.monotonic() + self._linger_s
        while len(group) < self._max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                group.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return group

    def _handle(self, group: list[Message], stop: threading.Event) -> None:
        backoff = 0.5
        down = False
        while not stop.is_set():
            try:
                self._process(group)
            except psycopg.OperationalError as err:
                if not down:
                    logger.warning(
                        "database unavailable (%s); holding %d messages unacknowledged", err, len(group)
                    )
                    down = True
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            if down:
                logger.info("database is back; resumed")
            self._ack(group)
            return

    def _process(self, group: list[Message]) -> None:
        try:
            self._pipeline.process(group)
        except psycopg.OperationalError:
            raise
        except Exception:
            logger.exception("ingest step failed; processing the %d messages one by one", len(group))
            self._isolate(group)

    def _isolate(self, group: list[Message]) -> None:
        """Process messages singly so one that trips a bug is dead-lettered, not retried forever."""
        for message in group:
            try:
                self._pipeline.process([message])
            except psycopg.OperationalError:
                raise
            except Exception as err:
                logger.exception("message on %s could not be ingested", message.topic)
                self._dead_letter_alone(message, f"internal error: {type(err).__name__}: {err}")

    def _dead_letter_alone(self, message: Message, reason: str) -> None:
        with self._pipeline.connect() as conn:
            deadletters.store(conn, [DeadLetter(message.topic, message.payload, reason)])

    def _ack(self, group: list[Message]) -> None:
        for message in group:
            if message.mid:
                self._client.ack(message.mid, 1)
        self.processed += len(group)
