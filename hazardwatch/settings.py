"""Settings shared by every part, read from the environment (flags override them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from hazardwatch.errors import ConfigError

ENV_DOC: dict[str, str] = {
    "HW_DATABASE_URL": "PostgreSQL/TimescaleDB URL (default postgresql://postgres@127.0.0.1:5432/hazardwatch)",
    "HW_MQTT_URL": "MQTT broker URL, mqtt://[user:password@]host:port (default mqtt://127.0.0.1:1883)",
    "HW_DEVICES": "path of the devices file (default devices.yaml)",
    "HW_DASHBOARD_HOST": "address the dashboard listens on (default 127.0.0.1)",
    "HW_DASHBOARD_PORT": "port the dashboard listens on (default 8080)",
    "HW_SIM_CONTROL": "simulator control address host:port (default 127.0.0.1:8791)",
    "HW_TIMEZONE": "time zone times are shown in (default Asia/Shanghai)",
    "HW_VAR_DIR": "directory for private services and state (default ./var)",
    "HW_LOG_LEVEL": "log level: DEBUG, INFO, WARNING (default INFO)",
    "HW_AGENT_METRICS": "agent's Prometheus endpoint host:port, or 'off' (default 127.0.0.1:9108)",
}


@dataclass(frozen=True, slots=True)
class MqttAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_mqtt_url(url: str) -> MqttAddress:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ConfigError(f"MQTT URL {url!r} must start with mqtt:// or mqtts://")
    if not parts.hostname:
        raise ConfigError(f"MQTT URL {url!r} has no host")
    tls = parts.scheme in ("mqtts", "ssl")
    return MqttAddress(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        username=parts.username,
        password=parts.password,
        tls=tls,
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

    @property
    def mqtt(self) -> MqttAddress:
        return parse_mqtt_url(self.mqtt_url)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        base = cls()
        try:
            port = int(env.get("HW_DASHBOARD_PORT", base.dashboard_port))
        except ValueError as err:
            raise ConfigError("HW_DASHBOARD_PORT must be a port number") from err
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
        )
