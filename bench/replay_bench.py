"""Store-and-forward replay: how fast an outage's backlog drains, as a multiple of the live rate.

Both figures come from this run, on this machine:

- **live rate** — readings per second the real agent commits while polling the simulated sample
  plant (Modbus + OPC-UA, 49 tags) against a local Mosquitto;
- **replay rate** — readings per second the publisher drains from a buffer holding an outage's
  worth of those batches, through the same broker, counted as acknowledged by the broker and
  received by a QoS 1 subscriber.

    .venv/bin/python -m bench.replay_bench [--outage-min 30] [--live-s 8]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway_agent.agent import GatewayRuntime, run_agent
from gateway_agent.buffer import Buffer, Durability
from gateway_agent.publisher import Publisher
from hazardwatch import wire
from hazardwatch.ledger import load_plant
from hazardwatch.quality import Quality
from hazardwatch.services import PrivateMosquitto
from hazardwatch.settings import MqttAddress
from simulators import run as run_simulators
from tests.support import free_port, plant_doc_on_ports, write_plant


async def live_rate(port: int, tmp: Path, seconds: float) -> tuple[float, float]:
    """Readings per second the agent commits on the sample plant; readings per batch."""
    plant = load_plant(write_plant(plant_doc_on_ports(free_port(), free_port()), tmp))
    stop, ready, sim_stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
    sims = asyncio.create_task(run_simulators(plant, ("127.0.0.1", free_port()), stop=sim_stop, ready=ready))
    await asyncio.wait_for(ready.wait(), 30)
    runtimes: dict[tuple[str, str], GatewayRuntime] = {}
    agent = asyncio.create_task(
        run_agent(
            plant, MqttAddress("127.0.0.1", port), state_dir=tmp / "agent", stop=stop, runtimes=runtimes
        )
    )
    for _ in range(600):  # both gateways up (run_agent has no event for it)
        if len(runtimes) == 2:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(2)  # first polls and connections settle

    def committed() -> tuple[int, int]:
        stats = [r.publisher.buffer.stats() for r in runtimes.values()]
        return sum(s.put_readings for s in stats), sum(s.put_batches for s in stats)

    r0, b0 = committed()
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    r1, b1 = committed()
    elapsed = time.perf_counter() - t0
    stop.set()
    await agent
    sim_stop.set()
    await sims
    return (r1 - r0) / elapsed, (r1 - r0) / max(b1 - b0, 1)


def replay_rate(port: int, tmp: Path, batches: int, per_batch: int) -> float:
    """Readings per second drained from a full buffer to the broker and a subscriber."""
    enterprise = f"B{uuid.uuid4().hex[:8]}"
    buffer = Buffer(tmp / "replay.sqlite3", durability=Durability.POWER_LOSS)
    now = int(time.time() * 1000)
    for i in range(batches):
        batch = wire.ReadingBatch(gateway="gw01", seq=0, sent_ms=now)
        for t in range(per_batch):
            batch.append(f"TAG{t:03d}", now - (batches - i) * 500, 20.0 + t, Quality.GOOD)
        buffer.put(batch, now)
    received = 0
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, _msg: mqtt.MQTTMessage) -> None:
        nonlocal received
        received += 1
        if received >= batches:
            done.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex}")
    sub.on_connect = lambda c, *_: c.subscribe(wire.readings_topic(enterprise, "gw01"), qos=1)
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    subscribed.wait(10)
    publisher = Publisher(enterprise, "gw01", MqttAddress("127.0.0.1", port), buffer)
    t0 = time.perf_counter()
    publisher.start()
    while publisher.pending and time.perf_counter() - t0 < 600:
        time.sleep(0.01)
    done.wait(60)
    elapsed = time.perf_counter() - t0
    publisher.stop()
    sub.disconnect()
    sub.loop_stop()
    buffer.close()
    return batches * per_batch / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--outage-min", type=float, default=30, help="outage length the backlog stands for")
    parser.add_argument("--live-s", type=float, default=8, help="seconds to measure the live rate over")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        port = free_port()
        broker = PrivateMosquitto(tmp, port, persistent=False)
        broker.start()
        try:
            live, per_batch = asyncio.run(live_rate(port, tmp, args.live_s))
            batches_per_s = live / per_batch
            backlog = max(int(batches_per_s * args.outage_min * 60), 1)
            replay = replay_rate(port, tmp, backlog, round(per_batch))
        finally:
            broker.stop()
    print("store-and-forward replay (sample plant, local Mosquitto, durability power-loss)")
    print(f"  live rate      {live:10.0f} readings/s  ({per_batch:.1f} readings per batch)")
    print(f"  backlog        {backlog:10d} batches    ({args.outage_min:g} min outage)")
    print(f"  replay rate    {replay:10.0f} readings/s")
    print(f"  replay / live  {replay / live:10.1f} x      (target >= 10 x)")
    print(f"  a {args.outage_min:g} min outage is caught up in {args.outage_min * 60 * live / replay:.1f} s")


if __name__ == "__main__":
    main()
