"""The video process's MQTT side: events at QoS 1, camera status retained, a last will.

One client per gateway. Every event goes to the gateway's spool on disk (``video.spool``) before
it is handed to the client, and leaves it when the broker's PUBACK has arrived: an event is never
lost to a broker that is away, to the client's bounded queue, or to a restart of the video
process. A pump hands spooled events to the client in order while it is connected, as many at a
time as ``MAX_HANDED``; what is left at a restart is published first by the next process.
Sequence numbers continue from the spool's newest (else from the start time in milliseconds), so
they increase across restarts. The retained status is republished on every connect.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from hazardwatch import wire
from hazardwatch.mqttconn import make_client
from hazardwatch.settings import MqttAddress
from video.spool import EventSpool

logger = logging.getLogger(__name__)

MAX_QUEUED = 2000  # the client's own queue (events, camera status)
MAX_HANDED = 1000  # events handed to the client and not yet acknowledged
SWEEP_S = 0.2  # how often acknowledged events leave the spool and waiting ones are handed
REFRESH_S = 30.0


class EventPublisher:
    def __init__(self, enterprise: str, gateway: str, address: MqttAddress, spool_path: Path) -> None:
        self.enterprise, self.gateway = enterprise, gateway
        self._address = address
        self._events_topic = wire.events_topic(enterprise, gateway)
        self._cameras_topic = wire.cameras_topic(enterprise, gateway)
        self._lock = threading.Lock()
        self.spool = EventSpool(spool_path)
        waiting = self.spool.count()
        if waiting:
            logger.info("video spool of %s/%s: %d events from before the restart wait for the broker",
                        enterprise, gateway, waiting)  # fmt: skip
        self._seq = max(time.time_ns() // 1_000_000, self.spool.newest() + 1)
        self._pump_lock = threading.Lock()  # one pump at a time: events are handed in order
        self._handed: dict[int, mqtt.MQTTMessageInfo] = {}  # by seq, until acknowledged
        self._cursor = -1  # every spooled event up to here is handed or acknowledged
        self._halt = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep_loop, name=f"video-spool-{gateway}", daemon=True)
        self._cameras: dict[str, dict[str, object]] = {}
        self.connected = threading.Event()
        self._stopping = False
        self._next_refresh = 0.0
        self.published = 0  # events spooled by this process
        self.acked = 0  # events the broker acknowledged
        client = make_client(address, f"hw-video-{enterprise}-{gateway}")
        client.max_queued_messages_set(MAX_QUEUED)
        client.reconnect_delay_set(1, 30)
        client.will_set(self._cameras_topic, wire.cameras_will(gateway), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._client = client

    def start(self) -> None:
        self._client.connect_async(self._address.host, self._address.port, keepalive=30)
        self._client.loop_start()
        self._sweeper.start()

    def stop(self) -> None:
        """Say the cameras are offline (retained), then disconnect: an orderly stop is no failure."""
        if self.connected.is_set():
            info = self._client.publish(
                self._cameras_topic, wire.cameras_will(self.gateway), qos=1, retain=True
            )
            info.wait_for_publish(timeout=3)
        self._stopping = True
        self._halt.set()
        if self._sweeper.is_alive():
            self._sweeper.join(timeout=5)
        self._sweep()  # what the broker has acknowledged leaves the spool; the rest waits on disk
        self._client.disconnect()
        self._client.loop_stop()
        self.spool.close()

    def publish_event(self, event: wire.EdgeEvent) -> None:
        """Spool the event (durably), then hand it to the client if nothing older waits."""
        with self._lock:
            self._seq += 1
            event.seq, event.sent_ms = self._seq, time.time_ns() // 1_000_000
            self.spool.put(event.seq, wire.encode_event(event))
        self.published += 1
        self._pump()

    def _pump(self) -> None:
        """Hand spooled events to the client, oldest first, while it is connected and has room."""
        with self._pump_lock:
            while self.connected.is_set() and len(self._handed) < MAX_HANDED:
                batch = self.spool.pending(after=self._cursor, limit=MAX_HANDED - len(self._handed))
                if not batch:
                    return
                for seq, payload in batch:
                    info = self._client.publish(self._events_topic, payload, qos=1)
                    if info.rc != mqtt.MQTT_ERR_SUCCESS:
                        return  # the link went (or the queue is full): handed again by a later pump
                    with self._lock:
                        self._handed[seq] = info
                    self._cursor = seq

    def _sweep(self) -> None:
        """Acknowledged events leave the spool."""
        with self._lock:
            done = [seq for seq, info in self._handed.items() if info.is_published()]
            for seq in done:
                del self._handed[seq]
        for seq in done:
            self.spool.ack(seq)
        self.acked += len(done)

    def _sweep_loop(self) -> None:
        while not self._halt.wait(SWEEP_S):
            try:
                self._sweep()
                self._pump()
            except Exception:  # the sweeper must outlive a bad moment (a disk error is logged, retried)
                logger.exception("video spool of %s/%s", self.enterprise, self.gateway)

    def set_camera(self, code: str, status: dict[str, object]) -> None:
        """A camera's status changed: republish the gateway's camera map, retained."""
        with self._lock:
            self._cameras[code] = status
        self._publish_cameras()

    def refresh(self, cameras: dict[str, dict[str, object]]) -> None:
        """Fresh counters (fps, frames, dropped, reconnects) of some cameras: republished at most
        every REFRESH_S, as status changes are at once."""
        with self._lock:
            self._cameras.update(cameras)
            due = time.monotonic() >= self._next_refresh
        if due:
            self._publish_cameras()

    def _publish_cameras(self) -> None:
        with self._lock:
            self._next_refresh = time.monotonic() + REFRESH_S
            payload = wire.cameras_payload(self.gateway, dict(self._cameras), time.time_ns() // 1_000_000)
        self._client.publish(self._cameras_topic, payload, qos=1, retain=True)

    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            logger.warning("broker refused the video publisher: %s", reason)
            return
        logger.info("video publisher of %s/%s connected", self.enterprise, self.gateway)
        self.connected.set()
        self._publish_cameras()  # the spooled events follow from the sweeper's next pump

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if self.connected.is_set() and not self._stopping:
            logger.warning("video publisher disconnected (%s); reconnecting", reason)
        self.connected.clear()
