"""The enterprise ledger: the devices.yaml schema, its loader and GB 18218 grading."""

from hazardwatch.ledger.grading import GradeResult, grade_hazard_source
from hazardwatch.ledger.loader import load_plant, load_plant_text
from hazardwatch.ledger.models import (
    ChemicalHolding,
    Device,
    Enterprise,
    Equipment,
    Gateway,
    HazardSource,
    Limits,
    ModbusDevice,
    ModbusPoint,
    ModbusRtuDevice,
    OpcUaDevice,
    OpcUaPoint,
    Plant,
    Tag,
    TagKind,
)

__all__ = [
    "ChemicalHolding",
    "Device",
    "Enterprise",
    "Equipment",
    "Gateway",
    "GradeResult",
    "HazardSource",
    "Limits",
    "ModbusDevice",
    "ModbusPoint",
    "ModbusRtuDevice",
    "OpcUaDevice",
    "OpcUaPoint",
    "Plant",
    "Tag",
    "TagKind",
    "grade_hazard_source",
    "load_plant",
    "load_plant_text",
]
