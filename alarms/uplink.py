"""The uplink: every alarm journal row published over MQTT for downstream consumers.

A provincial or national platform, a plant's own DCS or a third-party dispatcher follows the
alarms of a region on ``hw/v1/alarms/{division}/{enterprise}`` (wire v1, JSON): one message per
journal row, in journal order per alarm, carrying the change (action, states, level, who, when)
and the alarm as it is (enterprise, hazard source, subject, condition, priority). A subscriber
to ``hw/v1/alarms/33#``… takes a province; ``hw/v1/alarms/+/E330110001`` one enterprise.

It is an outbox consumer (:mod:`alarms.outbox`): a batch is published at QoS 1 and its position
commits only after the broker acknowledged every message (PUBACK). A broker that is away stops
the uplink where it is — nothing is skipped; the batch goes again when the broker is back — and a
batch whose commit failed after its PUBACKs is published again: consumers de-duplicate on
``journal_id`` (at least once, never lost).
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from psycopg.rows import dict_row

from alarms.outbox import Conn, JournalRow
from alarms.subjects import subject_sql
from hazardwatch.mqttconn import make_client
from hazardwatch.settings import MqttAddress

logger = logging.getLogger(__name__)

WIRE_VERSION = 1
NAME = "uplink"


class UplinkUnavailable(Exception):
    """The uplink broker is not connected or did not acknowledge in time: the batch waits."""


def topic(division: str, enterprise: str) -> str:
    return f"hw/v1/alarms/{division}/{enterprise}"


def _iso(value: object) -> str | None:
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


_ALARMS = (
    "SELECT a.id, e.code AS enterprise, e.division, hs.code AS hazard_source, a.subject_kind,"
    f" {subject_sql('code')} AS subject, a.condition, a.kind, a.priority, a.state, a.active,"
    " a.raised_at, a.value, a.limit_value, a.disposition, a.closed_at"
    " FROM alarms a JOIN enterprises e ON e.id = a.enterprise_id"
    " LEFT JOIN hazard_sources hs ON hs.id = a.hazard_source_id WHERE a.id = ANY(%s)"
)


def message(row: JournalRow, alarm: dict[str, object]) -> bytes:
    """The wire v1 message of one journal row."""
    return json.dumps(
        {
            "v": WIRE_VERSION,
            "journal_id": row.id,
            "at": _iso(row.at),
            "action": row.action,
            "from_state": row.from_state,
            "to_state": row.to_state,
            "level": row.level,
            "value": row.value,
            "actor": row.actor,
            "role": row.role,
            "comment": row.comment,
            "alarm": {
                "id": alarm["id"],
                "enterprise": alarm["enterprise"],
                "division": alarm["division"],
                "hazard_source": alarm["hazard_source"],
                "subject_kind": alarm["subject_kind"],
                "subject": alarm["subject"],
                "condition": alarm["condition"],
                "kind": alarm["kind"],
                "priority": alarm["priority"],
                "state": alarm["state"],
                "active": alarm["active"],
                "raised_at": _iso(alarm["raised_at"]),
                "value": alarm["value"],
                "limit": alarm["limit_value"],
                "disposition": alarm["disposition"],
                "closed_at": _iso(alarm["closed_at"]),
            },
        },
        ensure_ascii=False,
        allow_nan=False,
    ).encode()


class Uplink:
    """The outbox consumer that publishes the journal to an MQTT broker (``--uplink``)."""

    name = NAME

    def __init__(
        self, address: MqttAddress, client_id: str = "hw-uplink", ack_timeout_s: float = 10.0
    ) -> None:
        self._address = address
        self._ack_timeout_s = ack_timeout_s
        self._connected = threading.Event()
        self._client = make_client(address, client_id, clean_session=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._down_logged = False

    def start(self) -> None:
        self._client.connect_async(self._address.host, self._address.port, keepalive=30)
        self._client.loop_start()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            logger.warning("uplink broker refused the connection: %s", reason)
            return
        logger.info("uplink connected to %s:%s", self._address.host, self._address.port)
        self._down_logged = False
        self._connected.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        self._connected.clear()
        if not self._down_logged:
            logger.warning("uplink broker lost (%s); the journal waits for it", reason)
            self._down_logged = True

    def handle(self, conn: Conn, rows: list[JournalRow]) -> None:
        """Publish a batch; return only when the broker acknowledged all of it (else raise)."""
        if not self._connected.is_set():
            raise UplinkUnavailable("the uplink broker is not connected")
        with conn.cursor(row_factory=dict_row) as cur:
            alarms = {int(str(a["id"])): a for a in cur.execute(_ALARMS, (list({r.alarm_id for r in rows}),))}
        sent = []
        for row in rows:
            alarm = alarms[row.alarm_id]
            info = self._client.publish(
                topic(str(alarm["division"]), str(alarm["enterprise"])), message(row, alarm), qos=1
            )
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise UplinkUnavailable(f"publish refused: {mqtt.error_string(info.rc)}")
            sent.append(info)
        for info in sent:
            try:
                info.wait_for_publish(self._ack_timeout_s)
            except (ValueError, RuntimeError) as err:
                raise UplinkUnavailable(str(err)) from err
            if not info.is_published():
                raise UplinkUnavailable(f"no PUBACK within {self._ack_timeout_s:g} s")
