"""Coalesce the points of a Modbus device into as few read requests as the protocol allows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from hazardwatch.ledger.models import ModbusTable, Tag

MAX_REGISTERS = 125  # per read of holding/input registers (Modbus application protocol §6.3)
MAX_BITS = 2000  # per read of coils/discrete inputs


@dataclass(slots=True)
class Block:
    table: ModbusTable
    start: int
    count: int
    tags: list[Tag] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.start + self.count


def plan_blocks(tags: Iterable[Tag], max_gap: int = 8) -> list[Block]:
    """Group points per table into contiguous or nearby runs (gaps ≤ max_gap are read over)."""
    by_table: dict[ModbusTable, list[Tag]] = {}
    for tag in tags:
        assert tag.modbus is not None  # noqa: S101 - only modbus tags are planned
        by_table.setdefault(tag.modbus.table, []).append(tag)
    blocks: list[Block] = []
    for table, members in by_table.items():
        limit = MAX_BITS if table in (ModbusTable.COIL, ModbusTable.DISCRETE) else MAX_REGISTERS
        members.sort(key=lambda t: t.modbus.address if t.modbus else 0)
        current: Block | None = None
        for tag in members:
            point = tag.modbus
            assert point is not None  # noqa: S101
            end = point.address + point.datatype.registers
            if (
                current is not None
                and point.address - current.end <= max_gap
                and end - current.start <= limit
            ):
                current.count = max(current.end, end) - current.start
                current.tags.append(tag)
                continue
            current = Block(table, point.address, end - point.address, [tag])
            blocks.append(current)
    return blocks
