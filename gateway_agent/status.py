"""``hazardwatch agent status``: the health each gateway of the agent recorded at its last heartbeat.

Read from the state directory, so it works on the edge PC whether the agent runs or not: a
heartbeat older than three periods says the agent is stopped or stuck. The buffer's figures are
read from the buffer file itself, so they are current even then.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway_agent.buffer import read_stats
from gateway_agent.publisher import CLOCK_SKEW_WARN_MS

STALE_HEARTBEATS = 3


@dataclass
class GatewayStatus:
    enterprise: str
    gateway: str
    health: dict[str, Any]
    age_s: float  # since the last heartbeat
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "problems": self.problems, "heartbeat_age_s": round(self.age_s, 1),
                **self.health}  # fmt: skip


def gateway_statuses(state_dir: Path, now_ms: int | None = None) -> list[GatewayStatus]:
    now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    statuses = []
    for path in sorted(state_dir.glob("*.health.json")):
        try:
            health = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            statuses.append(GatewayStatus(path.name, "?", {}, 0.0, [f"unreadable health file: {err}"]))
            continue
        buffer_file = path.with_name(path.name.removesuffix(".health.json") + ".buffer.sqlite3")
        if buffer_file.exists():
            try:
                stats = read_stats(buffer_file)
            except sqlite3.Error:
                pass  # keep the heartbeat's figures
            else:
                health["buffer"].update(
                    batches=stats.depth, readings=stats.readings, bytes=stats.bytes,
                    oldest_age_s=None if stats.oldest_ms is None else max(now_ms - stats.oldest_ms, 0) / 1000,
                    dropped_batches=stats.dropped_batches, dropped_readings=stats.dropped_readings,
                )  # fmt: skip
        status = GatewayStatus(
            health["enterprise"], health["gateway"], health, (now_ms - health["at"]) / 1000
        )
        status.problems = _problems(status)
        statuses.append(status)
    return statuses


def _problems(status: GatewayStatus) -> list[str]:
    health = status.health
    problems = []
    if status.age_s > STALE_HEARTBEATS * float(health.get("heartbeat_s", 10)):
        problems.append(f"no heartbeat for {status.age_s:.0f} s: is the agent running?")
    if not health["mqtt"]["connected"]:
        problems.append("not connected to the broker")
    down = [d["id"] for d in health["devices"] if d["state"] != "up"]
    if down:
        problems.append("devices not answering: " + ", ".join(down))
    if health["buffer"]["dropped_batches"]:
        problems.append(f"{health['buffer']['dropped_batches']} batches dropped from a full buffer")
    buffer = health["buffer"]
    if buffer.get("error"):
        held = buffer.get("unsaved_batches", 0)
        problems.append(f"the buffer cannot commit ({buffer['error']}): {held} batches held in memory only")
    if buffer.get("unsaved_dropped_batches"):
        problems.append(
            f"{buffer['unsaved_dropped_batches']} batches dropped while the buffer could not commit"
        )
    config = health.get("config") or {}
    if config.get("status") in ("rejected", "rolled back"):
        problems.append(f"last pushed configuration {config['status']}: {config.get('error')}")
    other = health.get("conflict")
    if isinstance(other, dict):
        problems.append(
            f"stood down: another agent runs as this gateway (host {other.get('host')}, address "
            f"{other.get('addr')}, pid {other.get('pid')}); stop one of them"
        )
    offset = health.get("clock_offset_ms")
    if offset is not None and abs(offset) > CLOCK_SKEW_WARN_MS:
        problems.append(f"clock {-offset / 1000:+.1f} s off the platform's")
    return problems


def render(statuses: list[GatewayStatus]) -> str:
    if not statuses:
        return "no gateway health found: has the agent run with this state directory?"
    lines = []
    for s in statuses:
        h = s.health
        if not h:
            lines.append(f"{s.enterprise}: {'; '.join(s.problems)}")
            continue
        buffer, mqtt = h["buffer"], h["mqtt"]
        oldest = buffer["oldest_age_s"]
        offset = h.get("clock_offset_ms")
        lines += [
            f"{s.enterprise}/{s.gateway}  {'OK' if s.healthy else 'PROBLEM'}  "
            f"(heartbeat {s.age_s:.0f} s ago, pid {h['pid']})",
            f"  broker   {'connected' if mqtt['connected'] else 'DISCONNECTED'}, {mqtt['acked']} batches "
            f"acknowledged, {mqtt['replayed']} replayed, {mqtt['in_flight']} in flight",
            f"  buffer   {buffer['batches']} batches / {buffer['readings']} readings / "
            f"{buffer['bytes'] / 1024:.0f} KiB, oldest {'-' if oldest is None else f'{oldest:.0f} s'}, "
            f"dropped {buffer['dropped_batches']} ({buffer['durability']})",
            f"  clock    {'unknown' if offset is None else f'{-offset / 1000:+.3f} s against the platform'}",
        ]
        config = h.get("config")
        if config:
            error = f": {config['error']}" if config.get("error") else ""
            lines.append(f"  config   {config['version']} ({config['origin']}), {config['status']}{error}")
        for d in h["devices"]:
            latency = "-" if d["latency_ms"] is None else f"{d['latency_ms']:.0f} ms"
            lines.append(f"  device   {d['id']:<16} {d['state']:<10} {d['readings']} readings, "
                         f"{d['bad_readings']} bad, latency {latency}")  # fmt: skip
        lines += [f"  problem  {p}" for p in s.problems]
    return "\n".join(lines)
