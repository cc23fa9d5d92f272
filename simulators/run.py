"""Run the plant simulators: the process model ticking, Modbus and OPC-UA servers, the control endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from hazardwatch.ledger import Plant
from simulators.camera_stream import camera_servers
from simulators.control import ControlServer
from simulators.modbus_server import ModbusSimulator
from simulators.opcua_server import OpcUaSimulator
from simulators.process import PlantModel

logger = logging.getLogger(__name__)


async def run(
    plant: Plant,
    control: tuple[str, int],
    *,
    scenario: str | None = None,
    tag: str | None = None,
    enterprise: str | None = None,
    rate: float | None = None,
    spread: int = 0,
    hold_s: float | None = None,
    tick_s: float = 0.2,
    seed: int = 0,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
    model: PlantModel | None = None,
) -> None:
    """Serve the plant until stop is set; ready is set once every server listens.

    model is the process model to serve (default: PlantModel(plant, seed)); tests pass their own
    to compare what the servers answer with it. A bad scenario raises ValueError and a busy port
    OSError, before anything is left listening.
    """
    if not tick_s > 0:
        raise ValueError(f"tick_s must be positive, not {tick_s}")
    model = model if model is not None else PlantModel(plant, seed)
    if scenario is not None:
        model.start_scenario(
            scenario, enterprise=enterprise, tag=tag, rate=rate, spread=spread, hold_s=hold_s
        )
    stop = stop if stop is not None else asyncio.Event()
    modbus = ModbusSimulator(plant)
    opcua = OpcUaSimulator(plant)
    controller = ControlServer(model, control)
    modbus.refresh(model)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(modbus.stop)
        await modbus.start()
        stack.push_async_callback(opcua.stop)
        await opcua.start()
        await opcua.refresh(model)
        stack.push_async_callback(controller.stop)
        await controller.start()
        for cameras in camera_servers(plant, seed):
            stack.callback(cameras.stop)
        logger.info(
            "simulating %d tags: modbus %s, opc-ua %s, control %s:%s",
            len(model.keys),
            ", ".join(f"{h}:{p}" for h, p in modbus.endpoints) or "none",
            ", ".join(opcua.endpoints) or "none",
            *control,
        )
        if ready is not None:
            ready.set()
        await _tick(model, modbus, opcua, tick_s, stop)
    logger.info("simulators stopped")


async def _tick(
    model: PlantModel, modbus: ModbusSimulator, opcua: OpcUaSimulator, tick_s: float, stop: asyncio.Event
) -> None:
    """Step the model with the time that really passed and publish it, every tick_s, until stop."""
    loop = asyncio.get_running_loop()
    last = loop.time()
    while not stop.is_set():
        delay = last + tick_s - loop.time()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()
            if stop.is_set():
                break
        now = loop.time()
        model.step(now - last)
        last = now
        modbus.refresh(model)
        await opcua.refresh(model)


async def _serve(
    plant: Plant,
    control: tuple[str, int],
    scenario: str | None,
    tag: str | None,
    enterprise: str | None,
    rate: float | None,
    spread: int,
    hold_s: float | None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        with contextlib.suppress(NotImplementedError):  # platforms without loop signal handlers
            loop.add_signal_handler(sig, stop.set)
    try:
        await run(plant, control, scenario=scenario, tag=tag, enterprise=enterprise, rate=rate, spread=spread,
                  hold_s=hold_s, stop=stop)  # fmt: skip
    finally:
        for sig in signals:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)


def serve(
    plant: Plant,
    control: tuple[str, int],
    *,
    scenario: str | None = None,
    tag: str | None = None,
    enterprise: str | None = None,
    rate: float | None = None,
    spread: int = 0,
    hold_s: float | None = None,
) -> None:
    """Run the simulators until SIGINT or SIGTERM, then stop them cleanly."""
    asyncio.run(_serve(plant, control, scenario, tag, enterprise, rate, spread, hold_s))
