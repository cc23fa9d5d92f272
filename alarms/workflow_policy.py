"""The escalation and notification sections of the alarm policy (``alarms.policy.Policy``).

Escalation timers and chains differ by province (DOMAIN.md §5), so they are configuration.
Recipients and channels are configured here too; secrets never are: each channel names the
environment variable that holds its secret.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Priority = Literal[1, 2, 3]
# The 包保责任制 of the hazard source, then the duty officers of the enterprise's county, city
# and province (its division code's 6, 4 and 2 digit prefixes).
Rung = Literal["operational", "technical", "principal", "county", "city", "province"]
RUNGS: tuple[Rung, ...] = ("operational", "technical", "principal", "county", "city", "province")
RUNG_NAMES: dict[str, str] = {
    "operational": "操作负责人",
    "technical": "技术负责人",
    "principal": "主要负责人",
    "county": "县级值班员",
    "city": "市级值班员",
    "province": "省级值班员",
}
DIVISION_DIGITS: dict[str, int] = {"county": 6, "city": 4, "province": 2}
_ENV = r"^[A-Z][A-Z0-9_]{0,63}$"
_URL = r"^https?://\S+$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timers(_Model):
    acknowledge_minutes: float = Field(gt=0, le=24 * 60, description="acknowledge within")
    feedback_minutes: float = Field(
        gt=0, le=30 * 24 * 60, description="file feedback within (from the alarm)"
    )
    step_minutes: float = Field(gt=0, le=24 * 60, description="between two steps of the chain")

    @model_validator(mode="after")
    def _order(self) -> Timers:
        if self.feedback_minutes < self.acknowledge_minutes:
            raise ValueError("feedback_minutes cannot be shorter than acknowledge_minutes")
        return self


class Escalation(_Model):
    """An overdue acknowledgement or feedback walks the chain, one step per ``step_minutes``."""

    enabled: bool = Field(True, description="escalate at all")
    chain: list[Rung] = Field(default=list(RUNGS), min_length=1, description="who is told, in order")
    timers: dict[Priority, Timers] = Field(
        default={
            1: Timers(acknowledge_minutes=5, feedback_minutes=30, step_minutes=5),
            2: Timers(acknowledge_minutes=15, feedback_minutes=120, step_minutes=15),
            3: Timers(acknowledge_minutes=60, feedback_minutes=24 * 60, step_minutes=60),
        },
        description="per priority (一级, 二级, 三级)",
    )

    @model_validator(mode="after")
    def _complete(self) -> Escalation:
        if len(set(self.chain)) != len(self.chain):
            raise ValueError("escalation.chain names a rung twice")
        missing = {1, 2, 3} - set(self.timers)
        if missing:
            raise ValueError(f"escalation.timers lacks priorities {sorted(missing)}")
        return self

    def timers_for(self, priority: int) -> Timers:
        """The timers of a priority (an unknown one is timed as 三级)."""
        return next((t for p, t in self.timers.items() if p == priority), self.timers[3])


class Contact(_Model):
    """Where one person or duty desk is reached; every address needs its channel configured."""

    email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+$")
    phone: str | None = Field(None, pattern=r"^\+?[0-9]{5,15}$")
    webhook: str | None = Field(None, pattern=_URL, description="URL the signed JSON is posted to")


class WebhookChannel(_Model):
    secret_env: str = Field("HW_WEBHOOK_SECRET", pattern=_ENV, description="env var of the HMAC secret")
    timeout_s: float = Field(5.0, gt=0, le=60)


class EmailChannel(_Model):
    host: str = Field(min_length=1, description="SMTP server")
    port: int = Field(25, ge=1, le=65535)
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", description="From address")
    username: str | None = Field(None, description="SMTP login, with the password from password_env")
    password_env: str = Field("HW_SMTP_PASSWORD", pattern=_ENV)
    starttls: bool = Field(False, description="upgrade with STARTTLS before logging in")
    timeout_s: float = Field(10.0, gt=0, le=120)


class SmsChannel(_Model):
    """An HTTP SMS gateway. Placeholders {phone}, {text}, {key} and {secret} in url, body and
    header values are replaced, escaped for where they stand (URL, JSON or form body)."""

    url: str = Field(pattern=_URL, description="e.g. https://sms.example/send?to={phone}")
    method: Literal["GET", "POST"] = "POST"
    body: str = Field('{"to": "{phone}", "text": "{text}", "id": "{key}"}', max_length=4000)
    content_type: str = Field("application/json", min_length=1)
    headers: dict[str, str] = Field(default_factory=dict, description="e.g. Authorization: Bearer {secret}")
    secret_env: str = Field("HW_SMS_TOKEN", pattern=_ENV, description="env var of the gateway token")
    max_chars: int = Field(300, ge=20, le=2000, description="longer texts are cut")
    timeout_s: float = Field(5.0, gt=0, le=60)


class Channels(_Model):
    webhook: WebhookChannel | None = None
    email: EmailChannel | None = None
    sms: SmsChannel | None = None


class RateLimit(_Model):
    max_messages: int = Field(5, ge=1, le=10_000, description="messages per recipient and channel …")
    per_minutes: float = Field(10.0, gt=0, le=24 * 60, description="… within this window")


class Retry(_Model):
    max_attempts: int = Field(8, ge=1, le=100)
    first_delay_s: float = Field(5.0, gt=0, le=3600, description="doubled after every failure …")
    max_delay_s: float = Field(600.0, gt=0, le=24 * 3600, description="… up to this")


class Contacts(_Model):
    people: dict[str, Contact] = Field(
        default_factory=dict, description="by 'ENTERPRISE/name' or by name, as in the ledger's responsibles"
    )
    duty: dict[str, Contact] = Field(
        default_factory=dict, description="duty desks by division code: 6 digits county, 4 city, 2 province"
    )

    @model_validator(mode="after")
    def _divisions(self) -> Contacts:
        for code in self.duty:
            if not code.isdigit() or len(code) not in (2, 4, 6):
                raise ValueError(f"contacts.duty: {code!r} is not a 2, 4 or 6 digit division code")
        return self


class Notifications(_Model):
    enabled: bool = True
    on_raise: list[Rung] = Field(
        default=["operational"], description="who is told when an alarm is annunciated (raised, re-alarmed)"
    )
    raise_priorities: list[Priority] = Field(default=[1, 2, 3], description="priorities told on raise")
    group_window_s: float = Field(
        60.0, ge=0, le=3600, description="after a message, later ones wait this long and go as one digest"
    )
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    retry: Retry = Field(default_factory=Retry)
    max_age_minutes: float = Field(
        24 * 60.0,
        gt=0,
        description="annunciations older than this when first read are not told (escalation steps are)",
    )
    lease_s: float = Field(60.0, gt=0, le=3600, description="a sender's claim on a delivery")
    channels: Channels = Field(default_factory=Channels)
    contacts: Contacts = Field(default_factory=Contacts)

    @model_validator(mode="after")
    def _channels_for_addresses(self) -> Notifications:
        entries = [*self.contacts.people.items(), *self.contacts.duty.items()]
        for name, contact in entries:
            for channel in ("email", "phone", "webhook"):
                configured = "sms" if channel == "phone" else channel
                if getattr(contact, channel) and getattr(self.channels, configured) is None:
                    raise ValueError(f"contact {name} has a {channel} but channels.{configured} is not set")
        return self
