"""MQTT publishing of reading batches: QoS 1, persistent session, retained status and last will.

A batch lives in memory until the broker's PUBACK for it (``on_publish`` with its mid):

- ``backlog`` — numbered and encoded, not yet handed to paho;
- ``unacked`` — handed to paho (at most ``window`` at a time), waiting for the PUBACK. paho keeps
  these across a disconnect and sends them again after the reconnect.

Only the backlog grows while the broker is away; it is bounded, and when full the oldest batch
is dropped, counted and logged (the sequence gap shows it downstream too). The durable
store-and-forward buffer of a later issue replaces the backlog; the rest stays.

paho calls back on its own network thread while holding its message lock, so this class never
calls paho while holding its own lock, and the pump that feeds paho is entered by one thread at a
time without ever blocking the network thread.
"""

from __future__ import annotations

import collections
import logging
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway_agent.sequence import SequenceFile
from hazardwatch import wire
from hazardwatch.settings import MqttAddress

logger = logging.getLogger(__name__)

KEEPALIVE_S = 30
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30


@dataclass(frozen=True, slots=True)
class _Outgoing:
    topic: str
    payload: bytes
    retain: bool
    seq: int | None  # None for status messages
    readings: int = 0


def client_id(enterprise: str, gateway: str) -> str:
    return f"hw-agent-{enterprise}-{gateway}"


class Publisher:
    """One MQTT client per gateway. ``submit`` is thread-safe; it writes the sequence file."""

    def __init__(self, enterprise: str, gateway: str, address: MqttAddress, state_dir: Path, *,
                 max_backlog: int = 10_000, window: int = 20) -> None:  # fmt: skip
        self.enterprise = enterprise
        self.gateway = gateway
        self._address = address
        self._seq = SequenceFile(state_dir / f"{enterprise}-{gateway}.seq")
        self._readings_topic = wire.readings_topic(enterprise, gateway)
        self._status_topic = wire.status_topic(enterprise, gateway)
        self._max_backlog = max_backlog
        self._window = window
        self._lock = threading.Lock()  # guards the two queues and the counters
        self._pump_lock = threading.Lock()  # one feeder at a time, never waited for
        self._pump_again = False
        self._backlog: collections.deque[_Outgoing] = collections.deque()
        self._unacked: dict[int, _Outgoing] = {}
        self._early_acks: set[int] = set()
        self._overflowing = False
        self._stopping = False
        self.connected = threading.Event()
        self.published = 0  # batches handed to paho
        self.acked = 0  # batches the broker acknowledged
        self.dropped = 0  # batches dropped from a full backlog
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id(self.enterprise, self.gateway),
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        client.max_inflight_messages_set(self._window + 2)  # room for the status messages
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        if self._address.username:
            client.username_pw_set(self._address.username, self._address.password)
        if self._address.tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        client.will_set(self._status_topic, wire.status_payload(False), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (paho's network thread reconnects on its own)."""
        self._client.connect_async(self._address.host, self._address.port, keepalive=KEEPALIVE_S)
        self._client.loop_start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Give unacknowledged batches a moment, publish the offline status, disconnect, join."""
        self._stopping = True
        deadline = time.monotonic() + timeout_s
        while self.pending and self.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)  # on a worker thread: the agent calls stop() through to_thread
        if self.connected.is_set():
            info = self._client.publish(self._status_topic, wire.status_payload(False), qos=1, retain=True)
            try:
                info.wait_for_publish(max(deadline - time.monotonic(), 0.5))
            except (RuntimeError, ValueError):
                logger.debug("offline status not confirmed", exc_info=True)
        self._client.disconnect()
        self._client.loop_stop()
        if self.pending:
            logger.warning("gateway %s/%s stopped with %d batches not acknowledged by the broker",
                           self.enterprise, self.gateway, self.pending)  # fmt: skip

    @property
    def pending(self) -> int:
        """Batches numbered but not acknowledged yet (backlog and in flight)."""
        with self._lock:
            return len(self._backlog) + sum(1 for o in self._unacked.values() if o.seq is not None)

    @property
    def next_seq(self) -> int:
        return self._seq.next

    # -- publishing ------------------------------------------------------------------------

    def submit(self, batch: wire.ReadingBatch) -> int:
        """Number the batch, queue it and hand what the window allows to paho; returns its seq."""
        batch.seq = self._seq.take()
        outgoing = _Outgoing(self._readings_topic, wire.encode(batch), False, batch.seq, len(batch))
        with self._lock:
            self._backlog.append(outgoing)
            dropped = self._trim_backlog()
        if dropped is not None:
            logger.warning("gateway %s/%s: backlog full, dropped batch %d of %d readings (%d so far)",
                           self.enterprise, self.gateway, dropped.seq, dropped.readings,
                           self.dropped)  # fmt: skip
        self._pump()
        return batch.seq

    def _trim_backlog(self) -> _Outgoing | None:
        """Drop the oldest batches beyond the bound; return the first dropped in this overflow."""
        first: _Outgoing | None = None
        while len(self._backlog) > self._max_backlog:
            oldest = self._backlog.popleft()
            self.dropped += 1
            if not self._overflowing:
                first = oldest
            self._overflowing = True
        if len(self._backlog) < self._max_backlog // 2:
            self._overflowing = False  # warn again on the next overflow, not on every drop
        return first

    def _pump(self) -> None:
        """Hand backlog batches to paho while connected and the window has room."""
        while True:
            if not self._pump_lock.acquire(blocking=False):
                self._pump_again = True  # the thread inside will look again
                return
            try:
                self._pump_again = False
                while self.connected.is_set():
                    with self._lock:
                        if not self._backlog or len(self._unacked) >= self._window:
                            break
                        outgoing = self._backlog.popleft()
                    self._hand_over(outgoing)
            finally:
                self._pump_lock.release()
            if not self._pump_again:
                return

    def _hand_over(self, outgoing: _Outgoing) -> None:
        info = self._client.publish(outgoing.topic, outgoing.payload, qos=1, retain=outgoing.retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            # not stored by paho: keep it first in line for the next pump
            logger.warning("gateway %s/%s: paho refused a publish (%s)", self.enterprise, self.gateway,
                           mqtt.error_string(info.rc))  # fmt: skip
            with self._lock:
                self._backlog.appendleft(outgoing)
            return
        # MQTT_ERR_NO_CONN: paho keeps QoS 1 messages and sends them after the reconnect
        with self._lock:
            if outgoing.seq is not None:
                self.published += 1
            if info.mid in self._early_acks:
                self._early_acks.discard(info.mid)
                self._count_ack(outgoing)
            else:
                self._unacked[info.mid] = outgoing

    def _count_ack(self, outgoing: _Outgoing) -> None:
        if outgoing.seq is not None:
            self.acked += 1

    # -- paho callbacks (network thread) ---------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            logger.warning("broker refused gateway %s/%s: %s", self.enterprise, self.gateway, reason)
            return
        logger.info("gateway %s/%s connected to %s:%s", self.enterprise, self.gateway, self._address.host,
                    self._address.port)  # fmt: skip
        self.connected.set()
        self._hand_over(_Outgoing(self._status_topic, wire.status_payload(True), True, None))
        self._pump()

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if self.connected.is_set() and not self._stopping:
            logger.warning("gateway %s/%s disconnected (%s); %d batches await PUBACK", self.enterprise,
                           self.gateway, reason, self.pending)  # fmt: skip
        self.connected.clear()

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, _reason: object, _p: object) -> None:
        with self._lock:
            outgoing = self._unacked.pop(mid, None)
            if outgoing is None:
                self._early_acks.add(mid)  # acked before _hand_over recorded the mid
            else:
                self._count_ack(outgoing)
        self._pump()
