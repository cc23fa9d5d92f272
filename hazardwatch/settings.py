"""Settings shared by every part, read from the environment (flags override them)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from hazardwatch.errors import ConfigError

ENV_DOC: dict[str, str] = {
    "HW_DATABASE_URL": "PostgreSQL/TimescaleDB URL (default postgresql://postgres@127.0.0.1:5432/hazardwatch)",
    "HW_MQTT_URL": "MQTT broker, mqtt[s]://user@host:port, password in HW_MQTT_PASSWORD (default "
    "mqtt://127.0.0.1:1883; `up` runs its own when unset)",
    "HW_DEVICES": "path of the devices file (default devices.yaml)",
    "HW_DASHBOARD_HOST": "address the dashboard listens on (default 127.0.0.1)",
    "HW_DASHBOARD_PORT": "port the dashboard listens on (default 8080)",
    "HW_SIM_CONTROL": "simulator control address host:port (default 127.0.0.1:8791)",
    "HW_TIMEZONE": "time zone times are shown in (default Asia/Shanghai)",
    "HW_VAR_DIR": "directory for private services and state (default ./var)",
    "HW_LOG_LEVEL": "log level: DEBUG, INFO, WARNING (default INFO)",
    "HW_MQTT_PASSWORD": "MQTT password, for a user given in HW_MQTT_URL without one",
    "HW_RETAIN_RAW_DAYS": "days raw readings are kept, >= 30 (default 90); older ones are dead-lettered",
    "HW_RETAIN_1M_DAYS": "days the 1-minute rollups are kept (default 400)",
    "HW_RETAIN_1H_DAYS": "days the 1-hour rollups are kept (default 3650)",
    "HW_RETAIN_DEAD_LETTER_DAYS": "days dead letters are kept (default 30)",
    "HW_DEAD_LETTER_MAX_MB": "payload MiB dead letters keep at most, oldest dropped first (default 256)",
    "HW_CLOCK_TOLERANCE_S": "how far ahead of ingest's clock a source time is believed, seconds (default 5)",
    "HW_MAX_PAYLOAD_BYTES": "largest MQTT message ingest reads, larger are dead-lettered (default 4194304)",
    "HW_POLICY": "alarm policy file: grading, shelving, closure, escalation, notifications (default: none)",
    "HW_WEBHOOK_SECRET": "HMAC-SHA256 secret of the webhook channel (the policy may name another variable)",
    "HW_SMTP_PASSWORD": "password of the e-mail channel's SMTP login (the policy may name another variable)",
    "HW_SMS_TOKEN": "token of the SMS gateway, the {secret} of its template (the policy may name another)",
    "HW_RULES": "rules file: rule settings over the devices file's, e.g. a tuned limit (default: none)",
    "HW_AGENT_METRICS": "agent's Prometheus endpoint host:port, or 'off' (default 127.0.0.1:9108)",
    "HW_UPLINK_URL": "MQTT broker the workflows publish every alarm change to (default: none)",
    "HW_ENV_FILE": "environment file (KEY=VALUE, mode 0600) read before the settings, as --env-file",
    "HW_BROKER_DIR": "broker configuration and credentials directory (default $HW_VAR_DIR/broker)",
    "HW_BROKER_PORT": "port of the broker `up` runs when HW_MQTT_URL is unset (default 1884)",
}


@dataclass(frozen=True, slots=True)
class MqttAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None  # CA that signed the broker's certificate (default: the system's)
    cert_file: str | None = None  # client certificate and key, for brokers that require one
    key_file: str | None = None


_TLS_PARAMS = {"cafile": "ca_file", "certfile": "cert_file", "keyfile": "key_file"}


def parse_mqtt_url(url: str, environ: Mapping[str, str] | None = None) -> MqttAddress:
    """``mqtt[s]://[user[:password]@]host[:port][?cafile=…&certfile=…&keyfile=…]``.

    A user without a password in the URL takes it from ``HW_MQTT_PASSWORD``, so that the secret
    need not sit in a command line or a unit file.
    """
    env = os.environ if environ is None else environ
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ConfigError(f"MQTT URL {url!r} must start with mqtt:// or mqtts://")
    if not parts.hostname:
        raise ConfigError(f"MQTT URL {url!r} has no host")
    tls = parts.scheme in ("mqtts", "ssl")
    files: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _TLS_PARAMS:
            raise ConfigError(f"MQTT URL parameter {key!r} is unknown (known: {', '.join(_TLS_PARAMS)})")
        if not tls:
            raise ConfigError(f"MQTT URL parameter {key!r} needs mqtts://")
        if not Path(value).is_file():
            raise ConfigError(f"MQTT URL parameter {key}: no file {value!r}")
        files[_TLS_PARAMS[key]] = value
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if username and password is None:
        password = env.get("HW_MQTT_PASSWORD")
    return MqttAddress(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        username=username,
        password=password,
        tls=tls,
        **files,
    )


def parse_host_port(value: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    try:
        return host or default_host, int(port)
    except ValueError as err:
        raise ConfigError(f"{value!r} is not host:port") from err


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = "postgresql://postgres@127.0.0.1:5432/hazardwatch"
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    devices: Path = field(default_factory=lambda: Path("devices.yaml"))
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8080
    sim_control: str = "127.0.0.1:8791"
    timezone: str = "Asia/Shanghai"
    var_dir: Path = field(default_factory=lambda: Path("var"))
    log_level: str = "INFO"
    agent_metrics: str = "127.0.0.1:9108"
    policy: str = ""  # the alarm policy file; "" = built-in defaults
    rules: str = ""  # the rules file; "" = the devices file's rules alone
    uplink_url: str = ""  # the MQTT broker the alarm journal is published to; "" = none
    broker_dir_setting: str = ""  # "" = var_dir/broker
    broker_port: int = 1884  # `up`'s own broker, beside a system one on 1883

    @property
    def broker_dir(self) -> Path:
        return Path(self.broker_dir_setting) if self.broker_dir_setting else self.var_dir / "broker"

    @property
    def mqtt(self) -> MqttAddress:
        return parse_mqtt_url(self.mqtt_url)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        base = cls()
        try:
            port = int(env.get("HW_DASHBOARD_PORT", base.dashboard_port))
            broker_port = int(env.get("HW_BROKER_PORT", base.broker_port))
        except ValueError as err:
            raise ConfigError("HW_DASHBOARD_PORT and HW_BROKER_PORT must be port numbers") from err
        return cls(
            database_url=env.get("HW_DATABASE_URL", base.database_url),
            mqtt_url=env.get("HW_MQTT_URL", base.mqtt_url),
            devices=Path(env.get("HW_DEVICES", str(base.devices))),
            dashboard_host=env.get("HW_DASHBOARD_HOST", base.dashboard_host),
            dashboard_port=port,
            sim_control=env.get("HW_SIM_CONTROL", base.sim_control),
            timezone=env.get("HW_TIMEZONE", base.timezone),
            var_dir=Path(env.get("HW_VAR_DIR", str(base.var_dir))),
            log_level=env.get("HW_LOG_LEVEL", base.log_level).upper(),
            agent_metrics=env.get("HW_AGENT_METRICS", base.agent_metrics),
            policy=env.get("HW_POLICY", base.policy),
            rules=env.get("HW_RULES", base.rules),
            uplink_url=env.get("HW_UPLINK_URL", base.uplink_url),
            broker_dir_setting=env.get("HW_BROKER_DIR", base.broker_dir_setting),
            broker_port=broker_port,
        )
