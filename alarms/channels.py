"""Notification channels: signed webhook, e-mail over SMTP, SMS through an HTTP gateway.

Each channel sends one :class:`Delivery` synchronously and raises :class:`DeliveryError` when
it did not get through; retries, grouping and rate limits are the sender's
(:mod:`alarms.notify`). Every message carries an idempotency key, stable across retries and
restarts (header ``X-HazardWatch-Delivery``, the mail's Message-ID, ``{key}`` in the SMS
template), so a receiver can drop a repeat of a message whose confirmation was lost.

Webhook signature: ``X-HazardWatch-Signature: sha256=<hex>`` is HMAC-SHA256 with the shared
secret over ``<timestamp>.<body>``, where ``<timestamp>`` is ``X-HazardWatch-Timestamp`` (Unix
seconds); a receiver recomputes it and refuses stale timestamps (see :func:`verify_signature`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import quote, quote_plus

from alarms.errors import AlarmError
from alarms.workflow_policy import EmailChannel, Notifications, SmsChannel, WebhookChannel
from hazardwatch.clock import Clock
from hazardwatch.errors import ConfigError

SIGNATURE_HEADER = "X-HazardWatch-Signature"
TIMESTAMP_HEADER = "X-HazardWatch-Timestamp"
DELIVERY_HEADER = "X-HazardWatch-Delivery"


class DeliveryError(AlarmError):
    """A message did not get through (the sender retries it)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    key: str
    recipient: str
    channel: str
    address: str
    message: dict[str, object] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        """Stable for (key, recipient, channel): the same message always has the same key."""
        raw = f"{self.key}|{self.recipient}|{self.channel}".encode()
        return hashlib.sha256(raw).hexdigest()[:32]

    @property
    def subject(self) -> str:
        return str(self.message.get("subject", "HazardWatch"))

    @property
    def text(self) -> str:
        return str(self.message.get("text", ""))


class Channel(Protocol):
    @property
    def name(self) -> str: ...

    def send(self, delivery: Delivery) -> None:
        """Deliver, or raise DeliveryError."""
        ...


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(
    secret: bytes, timestamp: str, body: bytes, signature: str, now_s: float, tolerance_s: float = 300
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is fresh."""
    try:
        fresh = abs(now_s - int(timestamp)) <= tolerance_s
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


def _http(request: urllib.request.Request, timeout: float) -> None:
    if not request.full_url.startswith(("http://", "https://")):
        raise DeliveryError(f"refusing to send to {request.full_url!r}: not http(s)")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked
            response.read()
    except urllib.error.HTTPError as err:
        raise DeliveryError(f"HTTP {err.code} from {request.full_url}") from err
    except (urllib.error.URLError, OSError) as err:
        raise DeliveryError(f"{request.full_url}: {err}") from err


class Webhook:
    name = "webhook"

    def __init__(self, config: WebhookChannel, secret: bytes, clock: Clock) -> None:
        self.config, self._secret, self._clock = config, secret, clock

    def send(self, delivery: Delivery) -> None:
        payload: dict[str, object] = {
            "idempotency_key": delivery.idempotency_key,
            "recipient": delivery.recipient,
            **delivery.message,
        }
        body = json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str).encode()
        timestamp = str(self._clock.now_ms() // 1000)
        request = urllib.request.Request(  # noqa: S310 - _http checks the scheme
            delivery.address,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(self._secret, timestamp, body),
                DELIVERY_HEADER: delivery.idempotency_key,
            },
        )
        _http(request, self.config.timeout_s)


class Email:
    name = "email"

    def __init__(self, config: EmailChannel, password: str | None) -> None:
        self.config, self._password = config, password

    def send(self, delivery: Delivery) -> None:
        mail = EmailMessage()
        mail["From"] = self.config.sender
        mail["To"] = delivery.address
        mail["Subject"] = delivery.subject
        mail["Message-ID"] = f"<{delivery.idempotency_key}@hazardwatch>"
        mail.set_content(delivery.text)
        try:
            with smtplib.SMTP(self.config.host, self.config.port, timeout=self.config.timeout_s) as smtp:
                if self.config.starttls:
                    smtp.starttls()
                if self.config.username:
                    smtp.login(self.config.username, self._password or "")
                smtp.send_message(mail)
        except (smtplib.SMTPException, OSError) as err:
            raise DeliveryError(f"SMTP {self.config.host}:{self.config.port}: {err}") from err


def _fill(template: str, values: Mapping[str, str], escape: str) -> str:
    """Replace {name} placeholders, escaping each value for where it stands."""
    out = template
    for name, value in values.items():
        if escape == "url":
            value = quote(value, safe="")
        elif escape == "form":
            value = quote_plus(value)
        elif escape == "json":
            value = json.dumps(value, ensure_ascii=False)[1:-1]
        out = out.replace("{" + name + "}", value)
    return out


class Sms:
    name = "sms"

    def __init__(self, config: SmsChannel, secret: str) -> None:
        self.config, self._secret = config, secret

    def send(self, delivery: Delivery) -> None:
        text = delivery.text[: self.config.max_chars]
        values = {"phone": delivery.address, "text": text, "key": delivery.idempotency_key}
        values["secret"] = self._secret
        kind = self.config.content_type.lower()
        body_escape = "json" if "json" in kind else "form" if "form" in kind else "plain"
        data = None
        if self.config.method == "POST":
            data = _fill(self.config.body, values, body_escape).encode()
        headers = {k: _fill(v, values, "plain") for k, v in self.config.headers.items()}
        if data is not None:
            headers.setdefault("Content-Type", self.config.content_type)
        headers.setdefault(DELIVERY_HEADER, delivery.idempotency_key)
        request = urllib.request.Request(  # noqa: S310 - _http checks the scheme
            _fill(self.config.url, values, "url"), data=data, method=self.config.method, headers=headers
        )
        _http(request, self.config.timeout_s)


def build_channels(config: Notifications, environ: Mapping[str, str], clock: Clock) -> dict[str, Channel]:
    """The configured channels, with their secrets from the environment."""
    channels: dict[str, Channel] = {}
    if config.channels.webhook is not None:
        secret = environ.get(config.channels.webhook.secret_env, "")
        if not secret:
            raise ConfigError(
                f"the webhook channel needs its HMAC secret in ${config.channels.webhook.secret_env}"
            )
        channels["webhook"] = Webhook(config.channels.webhook, secret.encode(), clock)
    if config.channels.email is not None:
        password = environ.get(config.channels.email.password_env)
        if config.channels.email.username and not password:
            raise ConfigError(f"the e-mail channel logs in and needs ${config.channels.email.password_env}")
        channels["email"] = Email(config.channels.email, password)
    if config.channels.sms is not None:
        sms = config.channels.sms
        secret = environ.get(sms.secret_env, "")
        uses_secret = "{secret}" in sms.url + sms.body + "".join(sms.headers.values())
        if uses_secret and not secret:
            raise ConfigError(f"the SMS gateway template uses {{secret}}: set ${sms.secret_env}")
        channels["sms"] = Sms(sms, secret)
    return channels
