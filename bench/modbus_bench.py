"""Modbus collection: tags per second one agent process sustains, and requests per poll cycle,
with block reads against one request per tag, both measured in the same run.

Local pymodbus TCP servers, one per device, each with ``--tags`` float32 points in holding
registers, run in a process of their own so that this process is the agent alone; every device
is polled back to back (no poll period) for ``--seconds`` per mode. The agent's CPU share says
whether the agent or the servers set the pace.

    .venv/bin/python -m bench.modbus_bench [--devices 20] [--tags 100] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

from gateway_agent.sources.modbus import ModbusSource, modbus_links
from hazardwatch.ledger import load_plant_text
from hazardwatch.ledger.models import ModbusDevice
from tests.modbus_support import Plc, plant_text, words
from tests.support import free_port, wait_for_port


@dataclass
class Figures:
    tags_per_s: float
    requests_per_cycle: float  # of all devices: one poll of each
    agent_cpu: float  # this process's CPU time over the wall time


async def serve(ports: list[int], tags: int) -> None:
    """The servers' process (``--serve``): one pymodbus server per port until stdin closes."""
    plcs = [Plc(port, [1], size=max(2 * tags + 8, 64)) for port in ports]
    for plc in plcs:
        for t in range(tags):
            plc.put(1, "holding", 2 * t, words("f", 20.0 + t))
        await plc.start()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for plc in plcs:
        await plc.stop()


async def measure(sources: list[ModbusSource], seconds: float) -> Figures:
    """Poll every device back to back for ``seconds``."""
    readings = 0

    def emit(*_: object) -> None:
        nonlocal readings
        readings += 1

    for source in sources:  # connect first
        await source.poll(emit)
    readings = 0
    for source in sources:
        source.requests = 0
    deadline = time.perf_counter() + seconds

    async def run(source: ModbusSource) -> int:
        polls = 0
        while time.perf_counter() < deadline:
            await source.poll(emit)
            polls += 1
        return polls

    began, cpu = time.perf_counter(), time.process_time()
    polls = await asyncio.gather(*(run(s) for s in sources))
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    for source in sources:
        source.close()
    return Figures(
        tags_per_s=readings / elapsed,
        requests_per_cycle=sum(s.requests / max(n, 1) for s, n in zip(sources, polls, strict=True)),
        agent_cpu=cpu / elapsed,
    )


async def main_async(devices: int, tags: int, seconds: float, ports: list[int]) -> tuple[Figures, Figures]:
    device_lines = [
        f"{{protocol: modbus_tcp, id: plc{d}, host: 127.0.0.1, port: {port}, unit_id: 1}}"
        for d, port in enumerate(ports)
    ]
    tag_lines = [
        f"D{d}T{t} modbus: {{device: plc{d}, address: {2 * t}, datatype: float32}}"
        for d in range(devices)
        for t in range(tags)
    ]
    enterprise = load_plant_text(plant_text(f"B{uuid.uuid4().hex[:8]}", device_lines, tag_lines)).enterprises[
        0
    ]
    modbus = [d for d in enterprise.gateway("gw1").devices if isinstance(d, ModbusDevice)]

    def sources(max_gap: int) -> list[ModbusSource]:
        links = modbus_links(modbus)
        return [
            ModbusSource(d, enterprise.tags_of_device(d.id), links[d.id], max_gap=max_gap) for d in modbus
        ]

    blocks = await measure(sources(8), seconds)
    per_tag = await measure(sources(-1), seconds)  # a gap of -1 keeps even adjacent points apart
    return blocks, per_tag


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--tags", type=int, default=100, help="float32 points per device")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--serve", type=int, nargs="+", metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.serve, args.tags))
        return
    ports = [free_port() for _ in range(args.devices)]
    command = [
        sys.executable,
        "-m",
        "bench.modbus_bench",
        "--tags",
        str(args.tags),
        "--serve",
        *map(str, ports),
    ]
    servers = subprocess.Popen(command, stdin=subprocess.PIPE)
    try:
        for port in ports:
            wait_for_port(port, timeout=30)
        blocks, per_tag = asyncio.run(main_async(args.devices, args.tags, args.seconds, ports))
    finally:
        assert servers.stdin is not None
        servers.stdin.close()  # the servers stop at end of input
        servers.wait(30)
    print(f"modbus: {args.devices} devices × {args.tags} float32 tags, pymodbus TCP servers in another "
          "process, polled back to back by this one")  # fmt: skip
    for name, f in (("block reads", blocks), ("one request per tag", per_tag)):
        print(f"  {name:<20} {f.tags_per_s:>10,.0f} tags/s   {f.requests_per_cycle:>8.1f} requests per "
              f"poll cycle   agent CPU {f.agent_cpu:>4.0%}")  # fmt: skip
    print(f"  block / per-tag      {blocks.tags_per_s / per_tag.tags_per_s:>10.1f} x      "
          f"{per_tag.requests_per_cycle / blocks.requests_per_cycle:>8.1f} x fewer requests")  # fmt: skip


if __name__ == "__main__":
    main()
