"""The agent's Prometheus endpoint: ``GET /metrics`` in the text exposition format 0.0.4.

Served from the agent's own event loop (aiohttp); each scrape renders the gateways' health
at that moment. A port that cannot be bound is logged and the agent runs on without metrics:
collection matters more than its observation.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from gateway_agent.agent import GatewayRuntime

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# name → (type, help, how to read it from a health document)
_GATEWAY_METRICS: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("hw_agent_mqtt_connected", "gauge", "1 while connected to the broker", ("mqtt", "connected")),
    ("hw_agent_mqtt_connects_total", "counter", "successful broker connections", ("mqtt", "connects")),
    ("hw_agent_batches_published_total", "counter", "batches handed to MQTT", ("mqtt", "published")),
    ("hw_agent_batches_replayed_total", "counter", "backlog batches sent as replay", ("mqtt", "replayed")),
    ("hw_agent_batches_acked_total", "counter", "batches the broker acknowledged", ("mqtt", "acked")),
    ("hw_agent_buffer_batches", "gauge", "batches in the store-and-forward buffer", ("buffer", "batches")),
    ("hw_agent_buffer_readings", "gauge", "readings in the buffer", ("buffer", "readings")),
    ("hw_agent_buffer_bytes", "gauge", "bytes in the buffer", ("buffer", "bytes")),
    ("hw_agent_buffer_oldest_age_seconds", "gauge", "age of the oldest buffered batch",
     ("buffer", "oldest_age_s")),
    ("hw_agent_readings_produced_total", "counter", "readings committed to the buffer (all runs)",
     ("buffer", "produced_readings")),
    ("hw_agent_batches_dropped_total", "counter", "batches dropped from a full buffer (all runs)",
     ("buffer", "dropped_batches")),
    ("hw_agent_readings_dropped_total", "counter", "readings dropped from a full buffer (all runs)",
     ("buffer", "dropped_readings")),
    ("hw_agent_clock_offset_seconds", "gauge", "platform clock minus the agent's", ("clock_offset_ms",)),
]  # fmt: skip
_DEVICE_METRICS: list[tuple[str, str, str, str]] = [
    ("hw_agent_device_up", "gauge", "1 while the device answers", "state"),
    ("hw_agent_device_readings_total", "counter", "readings from the device", "readings"),
    ("hw_agent_device_bad_readings_total", "counter", "readings without a value", "bad_readings"),
    ("hw_agent_device_latency_seconds", "gauge", "arrival minus source time of the latest reading",
     "latency_ms"),
]  # fmt: skip


def render(runtimes: Mapping[tuple[str, str], GatewayRuntime]) -> str:
    healths = [runtime.health() for runtime in runtimes.values()]
    lines: list[str] = []
    for name, kind, text, path in _GATEWAY_METRICS:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        for health in healths:
            value = _dig(health, path)
            if value is not None:
                scale = 1000 if path == ("clock_offset_ms",) else 1
                lines.append(f"{name}{_labels(health)} {_number(value) / scale:g}")
    for name, kind, text, key in _DEVICE_METRICS:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        for health in healths:
            for device in health["devices"]:
                value = device[key]
                if key == "state":
                    value = value == "up"
                elif key == "latency_ms":
                    value = None if value is None else value / 1000
                if value is not None:
                    lines.append(f"{name}{_labels(health, device['id'])} {_number(value):g}")
    return "\n".join(lines) + "\n"


def _dig(doc: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = doc
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _number(value: Any) -> float:
    return float(value) if not isinstance(value, bool) else float(int(value))


def _labels(health: Mapping[str, Any], device: str | None = None) -> str:
    pairs = [("enterprise", health["enterprise"]), ("gateway", health["gateway"])]
    if device is not None:
        pairs.append(("device", device))
    body = ",".join(f'{k}="{_escape(str(v))}"' for k, v in pairs)
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def app(runtimes: Mapping[tuple[str, str], GatewayRuntime]) -> web.Application:
    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=render(runtimes).encode(), headers={"Content-Type": CONTENT_TYPE})

    application = web.Application()
    application.router.add_get("/metrics", metrics)
    return application


@contextlib.asynccontextmanager
async def endpoint(
    host: str, port: int, runtimes: Mapping[tuple[str, str], GatewayRuntime]
) -> AsyncIterator[int | None]:
    """Serve /metrics while the block runs; yields the bound port, or None if it could not bind."""
    runner = web.AppRunner(app(runtimes), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as err:
        reason = f"metrics endpoint {host}:{port} unavailable ({err}); running without it"
        logger.error(reason)  # noqa: TRY400 - the reason says it all
        await runner.cleanup()
        yield None
        return
    bound = port
    server = getattr(site, "_server", None)
    if port == 0 and server is not None and server.sockets:
        bound = server.sockets[0].getsockname()[1]
    logger.info("metrics at http://%s:%s/metrics", host, bound)
    try:
        yield bound
    finally:
        await runner.cleanup()
