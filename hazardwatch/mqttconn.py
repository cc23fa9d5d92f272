"""One way to make a paho client for an :class:`MqttAddress`: protocol, credentials, TLS."""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hazardwatch.settings import MqttAddress


def make_client(address: MqttAddress, client_id: str, *, clean_session: bool = True) -> mqtt.Client:
    """A paho 2.x client (MQTT 3.1.1) set up for the address; the caller connects it.

    TLS verifies the broker's certificate and host name against ``ca_file`` (or the system's
    CAs) and presents ``cert_file``/``key_file`` when given.
    """
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session, protocol=mqtt.MQTTv311
    )
    if address.username:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set(
            ca_certs=address.ca_file,
            certfile=address.cert_file,
            keyfile=address.key_file,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    return client
