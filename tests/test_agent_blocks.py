"""Block planning: the points of a Modbus device coalesced into as few reads as the protocol allows."""

from __future__ import annotations

from gateway_agent.sources.blocks import MAX_BITS, MAX_REGISTERS, Block, plan_blocks
from hazardwatch.ledger import load_plant_text
from hazardwatch.ledger.models import Tag

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
