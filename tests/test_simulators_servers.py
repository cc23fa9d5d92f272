"""The plant simulators with real protocol peers: pymodbus and asyncua clients, the HTTP control."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import yaml
from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.status_codes import StatusCodes
from pymodbus.client import AsyncModbusTcpClient

from hazardwatch.ledger import Plant, load_plant_text
from simulators import PlantModel, SimulatorError, SimulatorUnreachable, request_scenario, run
from simulators.control import simulator_state
from simulators.modbus_codec import encode_bit
from simulators.modbus_server import ModbusSimulator
from simulators.opcua_server import NAMESPACE_URI
from tests.support import free_port, plant_doc_on_ports, plant_on_ports

T = TypeVar("T")
LPG = "E330110001"
CHLORINE = "E330281002"


@dataclass
class Running:
    plant: Plant
    model: PlantModel
    control: tuple[str, int]
    modbus_port: int
    opcua_endpoint: str


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        result = await probe()
        if result is not None:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
async def simulator() -> AsyncIterator[Running]:
    modbus_port, opcua_port = free_port(), free_port()
    plant = plant_on_ports(modbus_port, opcua_port)
    model = PlantModel(plant, seed=7)
    control = ("127.0.0.1", free_port())
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run(plant, control, tick_s=0.1, stop=stop, ready=ready, model=model))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if not waiter.done():
        waiter.cancel()
        task.cancel()
        await asyncio.gather(task, waiter, return_exceptions=True)
        raise AssertionError(f"the simulators did not start: {task}")
    endpoint = f"opc.tcp://127.0.0.1:{opcua_port}/hazardwatch/"
    yield Running(plant, model, control, modbus_port, endpoint)
    stop.set()
    await asyncio.wait_for(task, timeout=20)
    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert not leftover, f"run() left tasks behind: {leftover}"


async def read_point(
    client: AsyncModbusTcpClient, unit: int, table: str, address: int, count: int
) -> list[int]:
    read = client.read_input_registers if table == "input" else client.read_holding_registers
    response = await read(address, count=count, device_id=unit)
    assert not response.isError(), response
    return list(response.registers)


async def test_modbus_serves_the_model_with_each_points_encoding(simulator: Running) -> None:
    client = AsyncModbusTcpClient("127.0.0.1", port=simulator.modbus_port)
    assert await client.connect()
    try:
        level = client.convert_from_registers(
            await read_point(client, 1, "holding", 0, 2), client.DATATYPE.FLOAT32
        )
        assert isinstance(level, float)
        assert level == pytest.approx(simulator.model.reading(LPG, "LT101").value, abs=0.5)
        raw = client.convert_from_registers(
            await read_point(client, 1, "holding", 4, 1), client.DATATYPE.INT16
        )
        assert isinstance(raw, int)
        assert raw * 0.1 == pytest.approx(simulator.model.reading(LPG, "TT101").value, abs=1.0)
        gas = await read_point(client, 2, "input", 0, 3)  # unit 2: the ammonia detectors, uint16 × 0.1
        assert all(0 < r * 0.1 < 20.0 for r in gas)
        refused = await client.write_register(0, 1, device_id=1)
        assert refused.isError()
    finally:
        client.close()


async def test_opcua_serves_namespace_2_with_units_and_timestamps(simulator: Running) -> None:
    async with Client(simulator.opcua_endpoint, timeout=10) as client:
        assert (await client.get_namespace_array())[2] == NAMESPACE_URI
        node = client.get_node("ns=2;s=V301.LT")
        data = await node.read_data_value()
        assert data.StatusCode is not None
        assert data.StatusCode.is_good()
        assert data.SourceTimestamp is not None
        assert data.Value is not None
        assert data.Value.VariantType == ua.VariantType.Double
        value = data.Value.Value
        assert isinstance(value, float)
        assert value == pytest.approx(simulator.model.reading(CHLORINE, "LT301").value, abs=0.5)
        description = await node.read_description()
        assert "[%]" in str(description.Text)
        temperature = await client.get_node("ns=2;s=R401.TT").read_description()
        assert "[℃]" in str(temperature.Text)


async def test_a_scenario_started_over_http_shows_on_modbus(simulator: Running) -> None:
    state = await asyncio.to_thread(
        request_scenario, simulator.control, "overfill", enterprise=LPG, tag="LT101", rate=25.0, hold_s=4.0
    )
    assert (state["scenario"], state["tag"], state["phase"]) == ("overfill", "LT101", "rise")
    client = AsyncModbusTcpClient("127.0.0.1", port=simulator.modbus_port)
    assert await client.connect()
    try:

        async def level() -> float:
            value = client.convert_from_registers(
                await read_point(client, 1, "holding", 0, 2), client.DATATYPE.FLOAT32
            )
            assert isinstance(value, float)
            return value

        async def above_hh() -> float | None:
            value = await level()
            return value if value > 90.0 else None

        async def back_to_normal() -> float | None:
            value = await level()
            return value if value < 80.0 else None

        assert await eventually(above_hh, 20, "LT101 above HH") < 100.0
        await eventually(back_to_normal, 30, "LT101 back below H - 5 %")
    finally:
        client.close()

    async def ended() -> dict[str, object] | None:
        state = await asyncio.to_thread(simulator_state, simulator.control)
        last = state["last"]
        return last if isinstance(last, dict) and state["scenario"] is None else None

    assert (await eventually(ended, 10, "the end of the overfill"))["outcome"] == "completed"


async def test_sensor_fault_is_nan_and_the_sentinel_on_modbus_and_bad_on_opcua(simulator: Running) -> None:
    client = AsyncModbusTcpClient("127.0.0.1", port=simulator.modbus_port)
    assert await client.connect()
    try:
        await asyncio.to_thread(request_scenario, simulator.control, "sensor-fault", tag="LT102")

        async def nan_level() -> bool | None:
            value = client.convert_from_registers(
                await read_point(client, 1, "holding", 6, 2), client.DATATYPE.FLOAT32
            )
            return True if isinstance(value, float) and math.isnan(value) else None

        await eventually(nan_level, 10, "LT102 served as NaN")
        await asyncio.to_thread(request_scenario, simulator.control, "sensor-fault", tag="TT101")

        async def sentinel() -> bool | None:
            raw = client.convert_from_registers(
                await read_point(client, 1, "holding", 4, 1), client.DATATYPE.INT16
            )
            return True if raw == -32768 else None

        await eventually(sentinel, 10, "TT101 served as -32768")
    finally:
        client.close()
    await asyncio.to_thread(
        request_scenario, simulator.control, "sensor-fault", enterprise=CHLORINE, tag="PT301"
    )
    async with Client(simulator.opcua_endpoint, timeout=10) as opc:
        node = opc.get_node("ns=2;s=V301.PT")

        async def bad() -> ua.DataValue | None:
            data = await node.read_data_value(raise_on_bad_status=False)
            code = data.StatusCode
            return data if code is not None and code.value == StatusCodes.BadSensorFailure else None

        await eventually(bad, 10, "PT301 BadSensorFailure")
        await asyncio.to_thread(request_scenario, simulator.control, "normal")

        async def good() -> ua.DataValue | None:
            data = await node.read_data_value(raise_on_bad_status=False)
            return data if data.StatusCode is not None and data.StatusCode.is_good() else None

        await eventually(good, 10, "PT301 good again")


async def test_the_control_endpoint_refuses_bad_requests_and_reports_absence(simulator: Running) -> None:
    with pytest.raises(SimulatorError, match="valid scenarios"):
        await asyncio.to_thread(request_scenario, simulator.control, "meltdown")
    with pytest.raises(SimulatorError, match="rate"):
        await asyncio.to_thread(request_scenario, simulator.control, "overfill", rate=-2.0)
    with pytest.raises(SimulatorUnreachable):
        await asyncio.to_thread(request_scenario, ("127.0.0.1", free_port()), "overfill", timeout=1.0)


async def test_run_refuses_an_unknown_scenario_before_listening(sample_plant: Plant) -> None:
    with pytest.raises(ValueError, match="valid scenarios"):
        await run(sample_plant, ("127.0.0.1", free_port()), scenario="meltdown")


def plant_with_bits_and_swaps(modbus_port: int) -> Plant:
    """The sample plant plus a coil, a discrete input and a little-endian float on unit 1."""
    doc: dict[str, Any] = plant_doc_on_ports(modbus_port, free_port())
    area = doc["enterprises"][0]["hazard_sources"][0]["equipment"][4]
    extra = [
        {"code": "XV101", "kind": "valve_position", "table": "coil", "address": 5, "datatype": "bool"},
        {"code": "XV102", "kind": "valve_position", "table": "discrete", "address": 17, "datatype": "bool"},
        {"code": "FT103", "kind": "flow", "table": "holding", "address": 40, "datatype": "float32"},
    ]
    for spec in extra:
        modbus = {"device": "plc-lpg", "table": spec["table"], "address": spec["address"]}
        modbus["datatype"] = spec["datatype"]
        if spec["datatype"] == "float32":
            modbus.update(byte_order="little", word_order="little")
        area["tags"].append(
            {"code": spec["code"], "name": spec["code"], "kind": spec["kind"], "unit": "", "range": [0, 1]}
            | {"modbus": modbus}
        )
    return load_plant_text(yaml.safe_dump(doc, allow_unicode=True))


async def test_modbus_serves_coils_discrete_inputs_and_swapped_words() -> None:
    port = free_port()
    plant = plant_with_bits_and_swaps(port)
    model = PlantModel(plant, seed=3)
    modbus = ModbusSimulator(plant)
    modbus.refresh(model)
    await modbus.start()
    client = AsyncModbusTcpClient("127.0.0.1", port=port)
    try:
        assert await client.connect()
        for _ in range(5):
            model.step(30.0)
            modbus.refresh(model)
            coils = await client.read_coils(0, count=8, device_id=1)
            assert not coils.isError()
            xv101 = model.tag(LPG, "XV101").modbus
            assert xv101 is not None
            assert coils.bits[5] == encode_bit(xv101, model.reading(LPG, "XV101"))
            inputs = await client.read_discrete_inputs(16, count=2, device_id=1)
            assert not inputs.isError()
            assert inputs.bits[1] == (model.reading(LPG, "XV102").value >= 0.5)
            registers = await read_point(client, 1, "holding", 40, 2)
            swapped = [((r & 0xFF) << 8) | (r >> 8) for r in reversed(registers)]
            value = client.convert_from_registers(swapped, client.DATATYPE.FLOAT32)
            assert value == pytest.approx(model.reading(LPG, "FT103").value, rel=1e-6)
        beyond = await client.read_holding_registers(42, count=1, device_id=1)
        assert beyond.isError()
    finally:
        client.close()
        await modbus.stop()
