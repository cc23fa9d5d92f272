"""Modbus collection: tags per second one agent process sustains, and requests per poll cycle,
with block reads against one request per tag, both measured in the same run.

Local pymodbus TCP servers, one per device, each with ``--tags`` float32 points in holding
registers; every device is polled back to back (no poll period) for ``--seconds`` per mode.

    .venv/bin/python -m bench.modbus_bench [--devices 20] [--tags 100] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from gateway_agent.sources.modbus import ModbusSource
from hazardwatch.ledger import load_plant_text
from hazardwatch.ledger.models import ModbusDevice
from tests.support import free_port
from tests.test_agent import Plc, plant_text, words


async def measure(sources: list[ModbusSource], seconds: float) -> tuple[float, float]:
    """(tags per second, requests per poll cycle of all devices) polling back to back."""
    readings = 0

    def emit(*_: object) -> None:
        nonlocal readings
        readings += 1

    for source in sources:  # connect first
        await source.poll(emit)
    readings = 0
    for source in sources:
        source.requests = 0
    cycles = 0
    deadline = time.perf_counter() + seconds
    began = time.perf_counter()

    async def run(source: ModbusSource) -> int:
        polls = 0
        while time.perf_counter() < deadline:
            await source.poll(emit)
            polls += 1
        return polls

    cycles = min(await asyncio.gather(*(run(s) for s in sources)))
    elapsed = time.perf_counter() - began
    return readings / elapsed, sum(s.requests for s in sources) / max(cycles, 1)


async def main_async(devices: int, tags: int, seconds: float) -> None:
    ports = [free_port() for _ in range(devices)]
    plcs = [Plc(port, [1], size=max(2 * tags + 8, 64)) for port in ports]
    for plc in plcs:
        for t in range(tags):
            plc.put(1, "holding", 2 * t, words("f", 20.0 + t))
        await plc.start()
    try:
        device_lines = [
            f"{{protocol: modbus_tcp, id: plc{d}, host: 127.0.0.1, port: {port}, unit_id: 1}}"
            for d, port in enumerate(ports)
        ]
        tag_lines = [
            f"D{d}T{t} modbus: {{device: plc{d}, address: {2 * t}, datatype: float32}}"
            for d in range(devices)
            for t in range(tags)
        ]
        enterprise = load_plant_text(
            plant_text(f"B{uuid.uuid4().hex[:8]}", device_lines, tag_lines)
        ).enterprises[0]
        devices_by_id = {d.id: d for d in enterprise.gateway("gw1").devices if isinstance(d, ModbusDevice)}

        def sources(max_gap: int) -> list[ModbusSource]:
            return [
                ModbusSource(d, enterprise.tags_of_device(d.id), asyncio.Lock(), max_gap=max_gap)
                for d in devices_by_id.values()
            ]

        block_rate, block_requests = await measure(sources(8), seconds)
        single_rate, single_requests = await measure(sources(-1), seconds)  # every point its own request
    finally:
        for plc in plcs:
            await plc.stop()
    print(f"modbus: {devices} devices × {tags} float32 tags, local pymodbus TCP servers, polled back to back")
    print(
        f"  block reads          {block_rate:>10,.0f} tags/s   {block_requests:>8.1f} requests per poll cycle"
    )
    print(f"  one request per tag  {single_rate:>10,.0f} tags/s   {single_requests:>8.1f} requests per poll")
    print(f"  block / per-tag      {block_rate / single_rate:>10.1f} x      "
          f"{single_requests / block_requests:>8.1f} x fewer requests")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--tags", type=int, default=100, help="float32 points per device")
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args(argv)
    asyncio.run(main_async(args.devices, args.tags, args.seconds))


if __name__ == "__main__":
    main()
