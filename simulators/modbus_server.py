"""Modbus TCP servers for the plant's ``modbus_tcp`` devices, one per distinct (host, port).

Each device is a pymodbus SimDevice at its unit id with four separate tables (coils, discrete
inputs, holding and input registers), each a contiguous block from address 0 to the last point.
The register images are encoded from the process model on every refresh() and copied into the
pymodbus block on every request (through the device's action hook), so a read always sees the
last tick. The simulated PLC is read-only: writes are answered with ILLEGAL FUNCTION.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice
from pymodbus.simulator.simutils import SimUtils

from hazardwatch.ledger import ModbusDevice, ModbusPoint, Plant
from hazardwatch.ledger.models import ModbusTable
from simulators.liblog import quiet_library_logger
from simulators.modbus_codec import encode_bit, encode_registers
from simulators.process import PlantModel
from simulators.values import TagKey

logger = logging.getLogger(__name__)

Endpoint = tuple[str, int]

_TABLE_OF_FUNCTION: dict[int, ModbusTable] = {
    1: ModbusTable.COIL,
    5: ModbusTable.COIL,
    15: ModbusTable.COIL,
    2: ModbusTable.DISCRETE,
    3: ModbusTable.HOLDING,
    6: ModbusTable.HOLDING,
    16: ModbusTable.HOLDING,
    22: ModbusTable.HOLDING,
    23: ModbusTable.HOLDING,
    4: ModbusTable.INPUT,
}
_BIT_TABLES = (ModbusTable.COIL, ModbusTable.DISCRETE)
_REGISTER_TABLES = (ModbusTable.HOLDING, ModbusTable.INPUT)


class UnitImage:
    """The four tables of one unit id, as pymodbus serves them."""

    def __init__(self, unit_id: int, points: list[tuple[TagKey, ModbusPoint]]) -> None:
        self.unit_id = unit_id
        self.points = points
        size: dict[ModbusTable, int] = dict.fromkeys(ModbusTable, 0)
        for _, point in points:
            size[point.table] = max(size[point.table], point.address + point.datatype.registers)
        self.bits = {t: [False] * (-(-size[t] // 16) * 16 or 16) for t in _BIT_TABLES}
        self.images: dict[ModbusTable, list[int]] = {t: [0] * size[t] for t in _REGISTER_TABLES}
        for table in _BIT_TABLES:
            self.images[table] = SimUtils.bitsToRegisters(self.bits[table])

    def refresh(self, model: PlantModel) -> None:
        for key, point in self.points:
            sim = model.reading(key.enterprise, key.tag)
            if point.table in _BIT_TABLES:
                self.bits[point.table][point.address] = encode_bit(point, sim)
            else:
                self.images[point.table][point.span.start : point.span.stop] = encode_registers(point, sim)
        for table in _BIT_TABLES:
            self.images[table] = SimUtils.bitsToRegisters(self.bits[table])

    def simdevice(self) -> SimDevice:
        def registers(table: ModbusTable) -> list[SimData]:
            count = len(self.images[table])
            if count == 0:
                return [SimData(0, datatype=SimType.INVALID)]
            return [SimData(0, count=count, values=0, datatype=SimType.REGISTERS)]

        def bits(table: ModbusTable) -> list[SimData]:
            return [SimData(0, count=len(self.bits[table]), values=False, datatype=SimType.BITS)]

        simdata = (
            bits(ModbusTable.COIL),
            bits(ModbusTable.DISCRETE),
            registers(ModbusTable.HOLDING),
            registers(ModbusTable.INPUT),
        )
        return SimDevice(self.unit_id, simdata=simdata, action=self.action)

    async def action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus calls this before it answers: copy the current image into its block."""
        if set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION
        table = _TABLE_OF_FUNCTION.get(function_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        image = self.images[table]
        registers[: len(image)] = image
        return None


def modbus_units(plant: Plant) -> dict[Endpoint, dict[int, UnitImage]]:
    """The unit images of every modbus device, grouped by the endpoint that serves them."""
    devices: dict[tuple[str, str], ModbusDevice] = {}
    points: dict[tuple[str, str], list[tuple[TagKey, ModbusPoint]]] = defaultdict(list)
    for enterprise in plant.enterprises:
        for gateway in enterprise.gateways:
            for device in gateway.devices:
                if isinstance(device, ModbusDevice):
                    devices[(enterprise.code, device.id)] = device
        for _, _, tag in enterprise.iter_tags():
            if tag.modbus is not None:
                points[(enterprise.code, tag.modbus.device)].append(
                    (TagKey(enterprise.code, tag.code), tag.modbus)
                )
    endpoints: dict[Endpoint, dict[int, UnitImage]] = defaultdict(dict)
    owners: dict[tuple[Endpoint, int], str] = {}
    for (enterprise_code, device_id), device in devices.items():
        endpoint = (device.host, device.port)
        owner = f"{enterprise_code}/{device_id}"
        if (endpoint, device.unit_id) in owners:
            raise ValueError(
                f"modbus device {owner} and {owners[(endpoint, device.unit_id)]} both claim unit "
                f"{device.unit_id} at {device.host}:{device.port}"
            )
        owners[(endpoint, device.unit_id)] = owner
        endpoints[endpoint][device.unit_id] = UnitImage(device.unit_id, points[(enterprise_code, device_id)])
    return dict(endpoints)


class ModbusSimulator:
    """One pymodbus TCP server per endpoint, serving the model's values."""

    def __init__(self, plant: Plant) -> None:
        quiet_library_logger("pymodbus")  # it logs every listen and connection at INFO
        self.units = modbus_units(plant)
        self._servers: list[ModbusTcpServer] = []

    @property
    def endpoints(self) -> list[Endpoint]:
        return list(self.units)

    def refresh(self, model: PlantModel) -> None:
        for units in self.units.values():
            for unit in units.values():
                unit.refresh(model)

    async def start(self) -> None:
        """Listen on every endpoint; OSError if one cannot be bound."""
        for (host, port), units in self.units.items():
            server = ModbusTcpServer([u.simdevice() for u in units.values()], address=(host, port))
            try:
                await server.serve_forever(background=True)
            except RuntimeError as err:
                await server.shutdown()  # type: ignore[no-untyped-call]
                raise OSError(f"cannot listen for modbus on {host}:{port}") from err
            self._servers.append(server)
            logger.info("modbus simulator listening on %s:%s, units %s", host, port, sorted(units))

    async def stop(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            await server.shutdown()  # type: ignore[no-untyped-call]
