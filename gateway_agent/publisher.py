"""MQTT publishing out of the store-and-forward buffer: QoS 1, persistent session, live data first.

A batch is committed to the :class:`~gateway_agent.buffer.Buffer` by ``submit`` and deleted
from it only after the broker's PUBACK. While connected, the pump hands batches to paho, at most
``window`` awaiting a PUBACK at a time:

- **live** batches — numbered since the connection came up — always go first;
- the **backlog** — everything the buffer held when the connection came up, including what a
  previous run of the agent left — fills the rest of the window in sequence order, each flagged
  ``replay`` so the platform does not take old data for the present.

paho keeps the batches it was handed across a disconnect and sends them again after the
reconnect; the pump never hands a batch twice in one run. After a restart every held batch is
backlog and is sent again: ingest stores each reading once however often it arrives.

Besides batches the client publishes the retained ``online`` status (``offline`` is its last
will), the retained health heartbeat, and listens to the platform's clock tick (to measure the
clock offset), to the gateway's ``config`` topic and to its ``resend`` topic: ingest names there
batches it never received (a broker can acknowledge a batch and then drop it), and the ones the
buffer still keeps go out again as backlog.

paho calls back on its own network thread while holding its message lock, so this class never
calls paho while holding its own lock, and the pump that feeds paho is entered by one thread at a
time without ever blocking the network thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from gateway_agent.buffer import Buffer, Stored
from hazardwatch import wire
from hazardwatch.errors import WireError
from hazardwatch.mqttconn import make_client
from hazardwatch.settings import MqttAddress

logger = logging.getLogger(__name__)

KEEPALIVE_S = 30
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30
ACK_FLUSH_BATCHES = 32  # delete acknowledged batches from the buffer in groups of this many…
ACK_FLUSH_S = 0.2  # …or at least this often
CLOCK_SKEW_WARN_MS = 2_000


@dataclass(frozen=True, slots=True)
class _InFlight:
    seq: int | None  # None for status and health messages
    readings: int = 0


def client_id(enterprise: str, gateway: str) -> str:
    return f"hw-agent-{enterprise}-{gateway}"


class Publisher:
    """One MQTT client per gateway. ``submit`` is thread-safe and does disk I/O."""

    def __init__(self, enterprise: str, gateway: str, address: MqttAddress, buffer: Buffer, *,
                 window: int = 20, on_config: Callable[[bytes], None] | None = None) -> None:  # fmt: skip
        self.enterprise = enterprise
        self.gateway = gateway
        self.buffer = buffer
        self._address = address
        self._window = window
        self._on_config = on_config
        self._readings_topic = wire.readings_topic(enterprise, gateway)
        self._status_topic = wire.status_topic(enterprise, gateway)
        self._health_topic = wire.health_topic(enterprise, gateway)
        self._config_topic = wire.config_topic(enterprise, gateway)
        self._resend_topic = wire.resend_topic(enterprise, gateway)
        self._lock = threading.Lock()  # guards the in-flight maps, cursors and counters
        self._pump_lock = threading.Lock()  # one feeder at a time, never waited for
        self._pump_again = False
        self._mids: dict[int, _InFlight] = {}  # paho message id → what it carries
        self._handed: set[int] = set()  # sequence numbers inside paho, awaiting a PUBACK
        self._early_acks: set[int] = set()
        self._acked: list[int] = []  # acknowledged, not yet deleted from the buffer
        self._acked_flushed_at = time.monotonic()
        self._live_from = buffer.next_seq  # batches numbered from here on are live
        self._live_cursor = self._live_from - 1
        self._replay_cursor = 0
        self._replay_below = self._live_from  # the backlog pass covers batches numbered below this
        self._stopping = False
        self.connected = threading.Event()
        self.clock_offset_ms: int | None = None  # platform clock minus ours, from its tick
        self.connects = 0
        self.published = 0  # batches handed to paho in this run
        self.replayed = 0  # of which from the backlog
        self.acked = 0  # batches the broker acknowledged in this run
        self.acked_readings = 0
        self.resent = 0  # batches put back in the queue at ingest's request, in this run
        # who this agent is, in its retained online status: another agent running as the same
        # gateway takes the MQTT session from it (client ids are bound to the gateway's identity)
        self.instance: dict[str, object] = {"id": uuid.uuid4().hex[:12], "host": socket.gethostname(),
                                            "pid": os.getpid(), "since": time.time_ns() // 1_000_000,
                                            "addr": None}  # fmt: skip
        self.conflict: dict[str, object] | None = None  # the other agent, once this one stood down
        self._announced = False  # our online status went out in this run
        self._kicked = False  # …and the broker then dropped us
        self._warned: set[object] = set()
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = make_client(self._address, client_id(self.enterprise, self.gateway), clean_session=False)
        client.max_inflight_messages_set(self._window + 4)  # room for status and health
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.will_set(self._status_topic, wire.status_payload(False), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (paho's network thread reconnects on its own)."""
        self._client.connect_async(self._address.host, self._address.port, keepalive=KEEPALIVE_S)
        self._client.loop_start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Give batches in flight a moment, publish the offline status, disconnect, join.

        Whatever is not acknowledged stays in the buffer for the next run.
        """
        self._stopping = True
        deadline = time.monotonic() + timeout_s
        while self.in_flight and self.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)  # on a worker thread: the agent calls stop() through to_thread
        if self.connected.is_set():
            info = self._client.publish(self._status_topic, wire.status_payload(False), qos=1, retain=True)
            try:
                info.wait_for_publish(max(deadline - time.monotonic(), 0.5))
            except (RuntimeError, ValueError):
                logger.debug("offline status not confirmed", exc_info=True)
        self._client.disconnect()
        self._client.loop_stop()
        self._flush_acks(force=True)
        held = self.buffer.stats().depth
        if held:
            logger.info("gateway %s/%s stopped; %d batches stay buffered for the next run",
                        self.enterprise, self.gateway, held)  # fmt: skip

    @property
    def pending(self) -> int:
        """Batches committed but not acknowledged by the broker yet (acks not yet flushed excluded)."""
        with self._lock:
            unflushed = len(self._acked)
        return self.buffer.stats().depth - unflushed

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._handed)

    @property
    def next_seq(self) -> int:
        return self.buffer.next_seq

    # -- publishing ------------------------------------------------------------------------

    def submit(self, batch: wire.ReadingBatch) -> int:
        """Commit the batch to the buffer, then hand what the window allows to paho; its seq."""
        stored = self.buffer.put(batch, time.time_ns() // 1_000_000)
        self._pump()
        return stored.seq

    def publish_health(self, health: dict[str, object]) -> None:
        """The retained heartbeat; dropped while disconnected (the next one is due soon)."""
        if self.connected.is_set():
            payload = json.dumps(health, separators=(",", ":"), default=str).encode()
            self._publish_other(self._health_topic, payload, retain=True)

    def tick(self) -> None:
        """Periodic housekeeping from the agent: flush acknowledgements, look at the backlog."""
        self._flush_acks()
        self._pump()

    def _pump(self) -> None:
        """Hand live batches, then backlog batches, to paho while connected and the window has room."""
        while True:
            if not self._pump_lock.acquire(blocking=False):
                self._pump_again = True  # the thread inside will look again
                return
            try:
                self._pump_again = False
                while self.connected.is_set():
                    with self._lock:
                        if len(self._handed) >= self._window:
                            break
                    picked = self._next_batch()
                    if picked is None:
                        break
                    self._hand_over(*picked)
            finally:
                self._pump_lock.release()
            self._flush_acks()
            if not self._pump_again:
                return

    def _next_batch(self) -> tuple[Stored, bool] | None:
        """The next batch to send and whether it is a replay: live first, then the backlog in order."""
        with self._lock:
            live = self.buffer.next_after(self._live_cursor)
            if live:
                self._live_cursor = live[0].seq
                return live[0], False
            while True:
                backlog = self.buffer.next_after(
                    self._replay_cursor, below=self._replay_below, limit=self._window
                )
                if not backlog:
                    return None
                acked = set(self._acked)  # acknowledged, still in the buffer until the flush
                for stored in backlog:
                    self._replay_cursor = stored.seq
                    if stored.seq not in self._handed and stored.seq not in acked:
                        return stored, True

    def _hand_over(self, stored: Stored, replay: bool) -> None:
        payload = wire.mark_replay(stored.payload) if replay else stored.payload
        info = self._client.publish(self._readings_topic, payload, qos=1)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            # not stored by paho: leave it to the next pass over the backlog
            logger.warning("gateway %s/%s: paho refused a publish (%s)", self.enterprise, self.gateway,
                           mqtt.error_string(info.rc))  # fmt: skip
            with self._lock:  # step the cursor back: the next pump tries this batch again
                if replay:
                    self._replay_cursor = min(self._replay_cursor, stored.seq - 1)
                else:
                    self._live_cursor = min(self._live_cursor, stored.seq - 1)
            return
        # MQTT_ERR_NO_CONN: paho keeps QoS 1 messages and sends them after the reconnect
        with self._lock:
            self.published += 1
            self.replayed += replay
            self._handed.add(stored.seq)
            self._record(info.mid, _InFlight(stored.seq, stored.readings))

    def _publish_other(self, topic: str, payload: bytes, *, retain: bool) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        with self._lock:
            self._record(info.mid, _InFlight(None))

    def _record(self, mid: int, what: _InFlight) -> None:
        """Remember what a paho message id carries (under the lock), unless its PUBACK came first."""
        if mid in self._early_acks:
            self._early_acks.discard(mid)
            self._count_ack(what)
        else:
            self._mids[mid] = what

    def _count_ack(self, what: _InFlight) -> None:
        if what.seq is not None:
            self._handed.discard(what.seq)
            self._acked.append(what.seq)
            self.acked += 1
            self.acked_readings += what.readings

    def _flush_acks(self, *, force: bool = False) -> None:
        with self._lock:
            due = (
                len(self._acked) >= ACK_FLUSH_BATCHES
                or time.monotonic() - self._acked_flushed_at > ACK_FLUSH_S
                or not self._handed  # the burst is over
            )
            if not self._acked or not (due or force):
                return
            acked, self._acked = self._acked, []
            self._acked_flushed_at = time.monotonic()
        self.buffer.ack(acked)

    # -- paho callbacks (network thread) ---------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: object, flags: mqtt.ConnectFlags, reason: object,
                    _p: object) -> None:  # fmt: skip
        if getattr(reason, "is_failure", False):
            logger.warning("broker refused gateway %s/%s: %s", self.enterprise, self.gateway, reason)
            return
        with self._lock:
            # everything held now is backlog, sent in order alongside live data
            self._live_from = self.buffer.next_seq
            self._live_cursor = self._live_from - 1
            self._replay_cursor = 0
            self._replay_below = self._live_from
            self.connects += 1
        backlog = self.buffer.stats().depth
        logger.info("gateway %s/%s connected to %s:%s (session %s); %d batches to replay", self.enterprise,
                    self.gateway, self._address.host, self._address.port,
                    "resumed" if flags.session_present else "new", backlog)  # fmt: skip
        with contextlib.suppress(OSError, AttributeError):
            self.instance["addr"] = client.socket().getsockname()[0]  # type: ignore[union-attr]
        # our own status first: the retained one names the agent that announced itself last
        client.subscribe([(wire.CLOCK_TOPIC, 0), (self._config_topic, 1), (self._resend_topic, 1),
                          (self._status_topic, 1)])  # fmt: skip
        self.connected.set()
        self._publish_other(
            self._status_topic, wire.status_payload(True, {"agent": self.instance}), retain=True
        )
        self._announced = True
        self._pump()

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if self._announced and not self._stopping:
            self._kicked = True
        if self.connected.is_set() and not self._stopping and self.conflict is None:
            logger.warning("gateway %s/%s disconnected (%s); %d batches stay buffered", self.enterprise,
                           self.gateway, reason, self.pending)  # fmt: skip
        self.connected.clear()

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, _reason: object, _p: object) -> None:
        with self._lock:
            what = self._mids.pop(mid, None)
            if what is None:
                self._early_acks.add(mid)  # acknowledged before the publisher recorded the mid
            else:
                self._count_ack(what)
        self._pump()

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        # Anyone allowed on the broker can publish here: no message may take the network thread
        # (and with it every publish of this gateway) down
        try:
            if message.topic == wire.CLOCK_TOPIC:
                self._on_clock(bytes(message.payload))
            elif message.topic == self._config_topic and self._on_config is not None:
                self._on_config(bytes(message.payload))
            elif message.topic == self._resend_topic:
                self._on_resend(bytes(message.payload))
            elif message.topic == self._status_topic:
                self._on_status(bytes(message.payload))
        except Exception:
            logger.exception("gateway %s/%s: message on %s not handled", self.enterprise, self.gateway,
                             message.topic)  # fmt: skip

    def _on_status(self, payload: bytes) -> None:
        """Our gateway's retained status names another agent online: two agents run as one gateway.

        Each connection takes the session from the other. The younger agent stands down once it
        knows the older one is alive: the older announced itself after we did (we were dropped,
        and the status we find on reconnecting is theirs). The older one keeps the gateway and
        announces itself again. A status left by an agent that died (its last will comes only after
        the broker's keep-alive) names someone who never comes back, so a quick restart runs on.
        """
        try:
            doc = json.loads(payload)
        except (ValueError, RecursionError):
            return
        other = doc.get("agent") if isinstance(doc, dict) and doc.get("status") == "online" else None
        if not isinstance(other, dict) or other.get("id") == self.instance["id"] or self.conflict is not None:
            return
        since = other.get("since")
        mine = (int(str(self.instance["since"])), str(self.instance["id"]))
        older = isinstance(since, int) and (since, str(other.get("id"))) < mine
        label = f"{self.enterprise}/{self.gateway}"
        who = _describe(other)
        if older and self._kicked:
            self.conflict = {k: other.get(k) for k in ("id", "host", "addr", "pid", "since")}
            logger.error("gateway %s: another agent runs as this gateway (%s) and was there first; two "
                         "agents take the broker session from each other, so this one stands down: stop one "
                         "of them", label, who)  # fmt: skip
            self._stopping = True
            self._client.disconnect()
            return
        if other.get("id") not in self._warned:
            self._warned.add(other.get("id"))
            logger.warning("gateway %s: another agent announced itself as this gateway (%s)%s", label, who,
                           "" if older else "; it is younger and will stand down if it runs on")  # fmt: skip
        if not older and self.connected.is_set():  # the retained status names the agent that stays
            self._publish_other(self._status_topic, wire.status_payload(True, {"agent": self.instance}),
                                retain=True)  # fmt: skip

    def _on_resend(self, payload: bytes) -> None:
        try:
            first, last = wire.decode_resend(payload)
        except WireError as err:
            logger.warning("gateway %s/%s: resend request ignored: %s", self.enterprise, self.gateway, err)
            return
        if first >= self.buffer.next_seq:
            return  # not numbered here (yet): nothing to send
        queued = self.buffer.resend(first, last)
        with self._lock:
            # the backlog pass takes them, live ones already handed over included (sent, then lost)
            self._replay_cursor = min(self._replay_cursor, first - 1)
            self._replay_below = max(self._replay_below, min(last + 1, self._live_cursor + 1))
            self.resent += queued
        logger.log(logging.WARNING if queued else logging.INFO,
                   "gateway %s/%s: ingest never received batches %d..%d; %d of them sent again",
                   self.enterprise, self.gateway, first, last, queued)  # fmt: skip
        self._pump()

    def _on_clock(self, payload: bytes) -> None:
        try:
            tick = json.loads(payload)["t"]
        except (ValueError, KeyError, TypeError, RecursionError):
            tick = None
        if not isinstance(tick, int | float) or isinstance(tick, bool) or not math.isfinite(tick):
            logger.debug("unreadable clock tick %r", payload[:64])
            return
        platform_ms = int(tick)
        offset = platform_ms - time.time_ns() // 1_000_000
        if abs(offset) > CLOCK_SKEW_WARN_MS and (
            self.clock_offset_ms is None or abs(self.clock_offset_ms) <= CLOCK_SKEW_WARN_MS
        ):
            logger.warning("gateway %s/%s: local clock is %+.1f s off the platform's; readings are stamped "
                           "with the local clock (fix NTP)", self.enterprise, self.gateway,
                           -offset / 1000)  # fmt: skip
        self.clock_offset_ms = offset


def _describe(agent: dict[str, object]) -> str:
    since = agent.get("since")
    started = (
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since / 1000)) if isinstance(since, int) else "?"
    )
    return f"host {agent.get('host')}, address {agent.get('addr')}, pid {agent.get('pid')}, started {started}"
