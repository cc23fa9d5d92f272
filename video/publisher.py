"""The video process's MQTT side: events at QoS 1, camera status retained, a last will.

One client per gateway. Events are numbered from the start time in milliseconds on, so the
sequence increases across restarts without state on disk. paho keeps QoS 1 messages queued
while the broker is away (up to ``MAX_QUEUED``) and sends them after the reconnect; the
retained status is republished on every connect.
"""

from __future__ import annotations

import logging
import threading
import time

import paho.mqtt.client as mqtt

from hazardwatch import wire
from hazardwatch.mqttconn import make_client
from hazardwatch.settings import MqttAddress

logger = logging.getLogger(__name__)

MAX_QUEUED = 2000
REFRESH_S = 30.0


class EventPublisher:
    def __init__(self, enterprise: str, gateway: str, address: MqttAddress) -> None:
        self.enterprise, self.gateway = enterprise, gateway
        self._address = address
        self._events_topic = wire.events_topic(enterprise, gateway)
        self._cameras_topic = wire.cameras_topic(enterprise, gateway)
        self._lock = threading.Lock()
        self._seq = time.time_ns() // 1_000_000
        self._cameras: dict[str, dict[str, object]] = {}
        self.connected = threading.Event()
        self._stopping = False
        self._next_refresh = 0.0
        self.published = 0
        self.acked = 0
        client = make_client(address, f"hw-video-{enterprise}-{gateway}")
        client.max_queued_messages_set(MAX_QUEUED)
        client.reconnect_delay_set(1, 30)
        client.will_set(self._cameras_topic, wire.cameras_will(gateway), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client

    def start(self) -> None:
        self._client.connect_async(self._address.host, self._address.port, keepalive=30)
        self._client.loop_start()

    def stop(self) -> None:
        """Say the cameras are offline (retained), then disconnect: an orderly stop is no failure."""
        if self.connected.is_set():
            info = self._client.publish(
                self._cameras_topic, wire.cameras_will(self.gateway), qos=1, retain=True
            )
            info.wait_for_publish(timeout=3)
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()

    def publish_event(self, event: wire.EdgeEvent) -> None:
        with self._lock:
            self._seq += 1
            event.seq, event.sent_ms = self._seq, time.time_ns() // 1_000_000
        info = self._client.publish(self._events_topic, wire.encode_event(event), qos=1)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            logger.error("event %s %s dropped: %d messages already wait for the broker",
                         event.event_id, event.phase, MAX_QUEUED)  # fmt: skip
            return
        self.published += 1

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
        self._publish_cameras()

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if self.connected.is_set() and not self._stopping:
            logger.warning("video publisher disconnected (%s); reconnecting", reason)
        self.connected.clear()

    def _on_publish(self, _c: mqtt.Client, _u: object, _mid: int, _reason: object, _p: object) -> None:
        self.acked += 1
