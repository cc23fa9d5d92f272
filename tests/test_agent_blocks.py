"""Block planning: the points of a Modbus device coalesced into as few reads as the protocol allows,
and the requests a poll really sends to a pymodbus server."""

from __future__ import annotations

import pytest

from gateway_agent.sources.blocks import MAX_BITS, MAX_REGISTERS, Block, plan_blocks
from gateway_agent.sources.modbus import ModbusSource, TcpEndpoint
from hazardwatch.ledger import load_plant_text
from hazardwatch.ledger.models import DataType, ModbusDevice, Tag
from hazardwatch.quality import Quality
from tests.modbus_support import Plc, Readings, new_enterprise, plant_text, poll_once, running, words
from tests.support import free_port

HEADER = """
version: 1
enterprises:
  - code: E1
    name: 试验企业
    credit_code: 91330110MA2H3K7L01
    division: "330110"
    gateways: [{id: gw, devices: [{protocol: modbus_tcp, id: plc, host: 127.0.0.1}]}]
    hazard_sources:
      - code: H1
        name: 罐区
        people_within_500m: 0
        chemicals: [{name: 氨, max_quantity_t: 20}]
        responsibles: {principal: a, technical: b, operational: c}
        equipment:
          - code: T1
            name: 罐
            kind: tank
            tags:
"""


def tags(*points: str) -> list[Tag]:
    lines = [
        f'              - {{code: P{i}, name: p, kind: other, unit: "", range: [0, 1], '
        f"modbus: {{device: plc, {point}}}}}"
        for i, point in enumerate(points)
    ]
    return load_plant_text(HEADER + "\n".join(lines) + "\n").enterprise("E1").tags_of_device("plc")


def spans(blocks: list[Block]) -> list[tuple[str, int, int]]:
    return [(b.table.value, b.start, b.count) for b in blocks]


def test_contiguous_and_nearby_points_share_a_read_per_table() -> None:
    plan = plan_blocks(
        tags(
            "address: 0",
            "address: 2, datatype: int16",
            "address: 3, datatype: float64",
            "address: 12",  # a gap of 5 registers is read over
            "table: input, address: 0, datatype: uint16",
            "table: input, address: 1, datatype: uint16",
            "table: coil, address: 3, datatype: bool",
            "table: coil, address: 9, datatype: bool",
            "table: discrete, address: 0, datatype: bool",
        )
    )
    assert sorted(spans(plan)) == [
        ("coil", 3, 7),
        ("discrete", 0, 1),
        ("holding", 0, 14),
        ("input", 0, 2),
    ]
    assert sum(len(b.tags) for b in plan) == 9


def test_max_gap_is_configurable() -> None:
    points = tags("address: 0", "address: 10", "address: 200")
    assert spans(plan_blocks(points, max_gap=8)) == [("holding", 0, 12), ("holding", 200, 2)]
    assert spans(plan_blocks(points, max_gap=2)) == [
        ("holding", 0, 2),
        ("holding", 10, 2),
        ("holding", 200, 2),
    ]
    assert spans(plan_blocks(points, max_gap=0)) == [
        ("holding", 0, 2),
        ("holding", 10, 2),
        ("holding", 200, 2),
    ]


def test_reads_never_exceed_the_protocol_limits() -> None:
    registers = tags(*(f"address: {2 * i}" for i in range(100)))  # 200 contiguous registers
    plan = plan_blocks(registers, max_gap=1000)
    assert [b.count for b in plan] == [124, 76]  # a float32 never straddles two reads
    assert all(b.count <= MAX_REGISTERS for b in plan)
    bits = tags("table: coil, address: 0, datatype: bool", "table: coil, address: 2500, datatype: bool")
    plan = plan_blocks(bits, max_gap=5000)
    assert spans(plan) == [("coil", 0, 1), ("coil", 2500, 1)]
    assert all(b.count <= MAX_BITS for b in plan)


# -- against a real server: the requests one poll sends are the ones the map implies ------------

F32, I16 = "datatype: float32", "datatype: int16"
COALESCING: list[tuple[str, str, list[str], int]] = [
    # (what, device settings, points, requests per poll worked out by hand)
    ("every function code, the default gap of 8", "", [
        f"table: holding, address: 0, {F32}", f"table: holding, address: 2, {I16}",
        f"table: holding, address: 10, {F32}",  # 7 unused registers between: read over
        f"table: input, address: 0, {I16}", f"table: input, address: 1, {I16}",
        "table: coil, address: 0, datatype: bool", "table: coil, address: 9, datatype: bool",
        "table: discrete, address: 4, datatype: bool",
    ], 4),
    ("a hole of 9 registers splits at the default gap", "", [
        f"address: 0, {F32}", f"address: 11, {F32}",
    ], 2),
    ("max_gap 0 reads contiguous runs only", "max_gap: 0", [
        f"address: 0, {I16}", f"address: 1, {I16}", f"address: 3, {I16}",
    ], 2),
    ("max_gap 20 reads over a hole of 18", "max_gap: 20", [
        f"table: input, address: 0, {I16}", f"table: input, address: 1, {I16}",
        f"table: input, address: 20, {I16}",
    ], 1),
    ("125 registers per read", "", [f"address: {i}, {I16}" for i in range(126)], 2),
    ("a float32 never straddles two reads", "", [f"address: {2 * i}, {F32}" for i in range(63)], 2),
    ("2000 bits per read", "max_gap: 100", [
        *(f"table: coil, address: {100 * i}, datatype: bool" for i in range(20)),
        "table: coil, address: 1999, datatype: bool",
    ], 1),
    ("2001 bits take two reads", "max_gap: 100", [
        f"table: coil, address: {100 * i}, datatype: bool" for i in range(21)
    ], 2),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "settings", "points", "requests"), COALESCING, ids=[c[0] for c in COALESCING]
)
async def test_one_poll_sends_the_requests_the_map_implies(
    what: str, settings: str, points: list[str], requests: int
) -> None:
    port = free_port()
    device_line = f"{{protocol: modbus_tcp, id: plc, host: 127.0.0.1, port: {port}, unit_id: 1, {settings}}}"
    tag_lines = [f"P{i} modbus: {{device: plc, {point}}}" for i, point in enumerate(points)]
    enterprise = load_plant_text(plant_text(new_enterprise(), [device_line], tag_lines)).enterprises[0]
    device = enterprise.gateway("gw1").devices[0]
    assert isinstance(device, ModbusDevice)
    plc = Plc(port, [1], size=2048)
    expected: Readings = {}
    for tag in enterprise.tags_of_device("plc"):
        point = tag.modbus
        assert point is not None
        if point.datatype == DataType.BOOL:
            plc.bits[1][point.table][point.address] = True
            expected[tag.code] = (1.0, Quality.GOOD)
        else:
            value = int(tag.code[1:])  # each point holds its own number
            plc.put(1, point.table, point.address, words(point.datatype.struct_code, value))
            expected[tag.code] = (float(value), Quality.GOOD)
    source = ModbusSource(device, enterprise.tags_of_device("plc"), TcpEndpoint(device.host, device.port))
    try:
        async with running(plc):
            for _ in range(2):
                before = source.requests
                assert await poll_once(source) == expected
                assert source.requests - before == requests, what
    finally:
        source.close()
    assert len(plc.reads) == 2 * requests  # the server saw just as many
    assert all(count <= (2000 if table in ("coil", "discrete") else 125) for _, table, _, count in plc.reads)
