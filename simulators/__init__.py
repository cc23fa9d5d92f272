"""Plant simulators for the demo, tests and benchmarks: a process model that can be driven into
alarms, Modbus TCP and OPC-UA servers serving it, and a control endpoint to start scenarios."""

from simulators.control import SimulatorError, SimulatorUnreachable, request_scenario, simulator_state
from simulators.modbus_codec import FAILED_RAW
from simulators.process import PlantModel
from simulators.run import run, serve
from simulators.scenarios import SCENARIO_NAMES
from simulators.values import FaultMode, SimValue, TagKey

__all__ = [
    "FAILED_RAW",
    "SCENARIO_NAMES",
    "FaultMode",
    "PlantModel",
    "SimValue",
    "SimulatorError",
    "SimulatorUnreachable",
    "TagKey",
    "request_scenario",
    "run",
    "serve",
    "simulator_state",
]
