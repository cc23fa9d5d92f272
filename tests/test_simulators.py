"""The plant simulators' pure parts: the process model and its scenarios, the register codec.

The servers are tested with real protocol peers in test_simulators_servers.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hazardwatch.ledger import ModbusPoint, Plant, Tag
from hazardwatch.ledger.models import DataType, ModbusTable
from ingest.plantconfig import plant_config
from rules.engine import RuleEngine
from simulators import FAILED_RAW, FaultMode, PlantModel, SimValue
from simulators.modbus_codec import encode_registers

LPG = "E330110001"
CHLORINE = "E330281002"


def crossed_limit(tag: Tag, value: float) -> str | None:
    """The first limit value lies beyond, if any (the range counts as a limit too)."""
    low, high = tag.range
    checks = (
        ("LL", tag.limits.ll, value <= (tag.limits.ll or 0)),
        ("L", tag.limits.l, value <= (tag.limits.l or 0)),
        ("H", tag.limits.h, value >= (tag.limits.h or 0)),
        ("HH", tag.limits.hh, value >= (tag.limits.hh or 0)),
    )
    for name, limit, beyond in checks:
        if limit is not None and beyond:
            return name
    return None if low <= value <= high else "range"


# ---------------------------------------------------------------------------- process model


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_normal_operation_stays_inside_every_limit_for_ten_minutes(sample_plant: Plant, seed: int) -> None:
    model = PlantModel(sample_plant, seed=seed)
    seen: dict[str, set[float]] = {str(key): set() for key in model.keys}
    for _ in range(int(600 / 0.2)):
        model.step(0.2)
        for key in model.keys:
            reading = model.reading(*key)
            assert reading.mode is FaultMode.OK
            crossed = crossed_limit(model.tag(*key), reading.value)
            assert crossed is None, f"{key} crossed {crossed} at {reading.value} after {model.time_s:.1f} s"
            seen[str(key)].add(round(reading.value, 6))
    assert model.state()["scenario"] is None
    frozen = [key for key, values in seen.items() if len(values) < 100]
    assert not frozen, f"tags that barely move: {frozen}"


def test_the_model_is_deterministic_for_a_seed(sample_plant: Plant) -> None:
    def trace(seed: int) -> list[float]:
        model = PlantModel(sample_plant, seed=seed)
        for _ in range(50):
            model.step(0.5)
        return [model.reading(*key).value for key in model.keys]

    assert trace(3) == trace(3)
    assert trace(3) != trace(4)


def drive(model: PlantModel, key: tuple[str, str], limit_s: float = 120.0) -> list[tuple[str, SimValue]]:
    """Step until the scenario ends; (phase, reading) after each step."""
    trace = []
    while model.state()["scenario"] is not None:
        assert model.time_s < limit_s, f"the scenario still runs after {limit_s} s: {model.state()}"
        model.step(0.2)
        trace.append((str(model.state()["phase"]), model.reading(*key)))
    return trace


@pytest.mark.parametrize(
    ("enterprise", "tag", "rate", "within_s"),
    [(None, None, None, 30.0), (CHLORINE, "LT303", None, 30.0), (LPG, "LT201", 10.0, 15.0)],
)
def test_overfill_climbs_through_h_and_hh_and_drains_back(
    sample_plant: Plant, enterprise: str | None, tag: str | None, rate: float | None, within_s: float
) -> None:
    model = PlantModel(sample_plant, seed=5)
    model.step(1.0)
    state = model.start_scenario("overfill", enterprise=enterprise, tag=tag, rate=rate)
    key = (state["enterprise"], state["tag"])
    if tag is None:
        assert key == (LPG, "LT101")  # the first level tag of the plant
    spec = model.tag(*key)
    assert spec.limits.h is not None
    assert spec.limits.hh is not None
    start = model.time_s
    trace = drive(model, key)
    values = [r.value for _, r in trace]
    peak = max(values)
    assert spec.limits.hh + 0.02 * spec.span < peak < spec.range[1]
    phases = [p for i, (p, _) in enumerate(trace) if i == 0 or trace[i - 1][0] != p]
    assert phases == ["rise", "hold", "fall", "idle"]
    hold = spec.effective_delays_s[0] + 5.0  # long enough for the on-delay: the overfill alarms
    assert sum(0.2 for p, _ in trace if p == "hold") >= hold - 0.2
    assert model.time_s - start < within_s + hold
    assert values[-1] < spec.limits.h - 0.05 * spec.span
    assert model.state()["last"]["outcome"] == "completed"


def test_an_excursion_holds_its_peak_as_long_as_asked(sample_plant: Plant) -> None:
    model = PlantModel(sample_plant, seed=5)
    state = model.start_scenario("overfill", hold_s=2.0)
    trace = drive(model, (state["enterprise"], state["tag"]))
    assert 2.0 <= sum(0.2 for p, _ in trace if p == "hold") <= 2.0 + 0.4
    with pytest.raises(ValueError, match="rate and hold apply to the excursions"):
        model.start_scenario("sensor-fault", hold_s=2.0)


def test_gas_leak_climbs_through_25_and_50_percent_lel_and_dissipates(sample_plant: Plant) -> None:
    model = PlantModel(sample_plant, seed=2)
    state = model.start_scenario("gas-leak")
    key = (state["enterprise"], state["tag"])
    assert key == (LPG, "GT101")
    trace = drive(model, key)
    values = [r.value for _, r in trace]
    assert 55.0 <= max(values) <= 65.0
    assert any(25.0 < v < 50.0 for v in values)
    assert values[-1] < 5.0
    assert model.time_s < 40.0
    state = model.start_scenario("gas-leak", enterprise=CHLORINE, tag="AT301")  # a toxic detector too
    assert drive(model, (CHLORINE, "AT301"))[-1][1].value < 1.0


@pytest.mark.parametrize(
    ("name", "mode"), [("sensor-fault", FaultMode.FAILED), ("sensor-freeze", FaultMode.FROZEN)]
)
def test_transmitter_faults_last_about_fifteen_seconds(
    sample_plant: Plant, name: str, mode: FaultMode
) -> None:
    model = PlantModel(sample_plant, seed=1)
    model.step(1.0)
    before = model.reading(LPG, "LT101").value
    state = model.start_scenario(name)
    assert (state["tag"], state["mode"]) == ("LT101", mode.value)
    trace = drive(model, (LPG, "LT101"))
    faulty = [r for _, r in trace if r.mode is mode]
    assert 14.0 <= 0.2 * len(faulty) <= 16.0
    if mode is FaultMode.FAILED:
        assert all(math.isnan(r.value) for r in faulty)
    else:
        assert {r.value for r in faulty} == {before}
    assert trace[-1][1].mode is FaultMode.OK
    assert crossed_limit(model.tag(LPG, "LT101"), trace[-1][1].value) is None


def test_normal_and_reset_end_a_scenario(sample_plant: Plant) -> None:
    model = PlantModel(sample_plant)
    model.start_scenario("sensor-fault", enterprise=CHLORINE, tag="PT401")
    assert model.reading(CHLORINE, "PT401").mode is FaultMode.FAILED
    state = model.start_scenario("normal")
    assert state["scenario"] is None
    assert state["last"]["outcome"] == "cancelled"
    assert model.reading(CHLORINE, "PT401").mode is FaultMode.OK


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "boil-over"}, "valid scenarios: gas-leak, overfill, sensor-fault, sensor-freeze, normal"),
        ({"name": "overfill", "tag": "PT101"}, "valid level tags: E330110001/LT101"),
        ({"name": "overfill", "tag": "LT999"}, "valid level tags"),
        ({"name": "gas-leak", "enterprise": "E000"}, "valid enterprises: E330110001, E330281002"),
        ({"name": "overfill", "rate": -1.0}, "rate must be a positive"),
        ({"name": "sensor-fault", "rate": 2.0}, "rate and hold apply to the excursions"),
    ],
)
def test_invalid_scenarios_say_what_is_valid(
    sample_plant: Plant, kwargs: dict[str, str | float], message: str
) -> None:
    model = PlantModel(sample_plant)
    name = str(kwargs.pop("name"))
    with pytest.raises(ValueError, match=message):
        model.start_scenario(name, **kwargs)  # type: ignore[arg-type]
    assert model.state()["scenario"] is None


# ---------------------------------------------------------------------------- register codec


def point(datatype: DataType, **fields: object) -> ModbusPoint:
    table = ModbusTable.INPUT if datatype is not DataType.BOOL else ModbusTable.DISCRETE
    return ModbusPoint.model_validate(
        {"device": "plc", "address": 0, "table": table, "datatype": datatype, **fields}
    )


@pytest.mark.parametrize(
    ("datatype", "fields", "value", "registers"),
    [
        (DataType.FLOAT32, {}, 1.0, [0x3F80, 0x0000]),
        (DataType.FLOAT32, {"word_order": "little"}, 1.0, [0x0000, 0x3F80]),
        (DataType.FLOAT32, {"byte_order": "little"}, 1.0, [0x803F, 0x0000]),
        (DataType.FLOAT32, {"byte_order": "little", "word_order": "little"}, 1.0, [0x0000, 0x803F]),
        (DataType.FLOAT64, {}, 1.0, [0x3FF0, 0, 0, 0]),
        (DataType.INT16, {"scale": 0.1}, 23.4, [234]),
        (DataType.INT16, {"scale": 0.1}, -5.0, [0xFFCE]),
        (DataType.UINT16, {"scale": 0.5, "offset": -10.0}, 0.0, [20]),
        (DataType.INT32, {}, -2.0, [0xFFFF, 0xFFFE]),
        (DataType.INT32, {"word_order": "little"}, -2.0, [0xFFFE, 0xFFFF]),
        (DataType.INT16, {}, 1e6, [0x7FFF]),
        (DataType.INT16, {}, -1e6, [0x8001]),  # clamped one short of the failure sentinel
        (DataType.UINT16, {}, 1e6, [0xFFFE]),
        (DataType.UINT16, {}, -3.0, [0]),
    ],
)
def test_values_encode_with_type_scale_and_order(
    datatype: DataType, fields: dict[str, object], value: float, registers: list[int]
) -> None:
    assert encode_registers(point(datatype, **fields), SimValue(value)) == registers


@pytest.mark.parametrize(
    ("datatype", "registers"),
    [
        (DataType.FLOAT32, [0x7FC0, 0x0000]),
        (DataType.FLOAT64, [0x7FF8, 0, 0, 0]),
        (DataType.INT16, [0x8000]),
        (DataType.INT32, [0x8000, 0x0000]),
        (DataType.UINT16, [0xFFFF]),
        (DataType.UINT32, [0xFFFF, 0xFFFF]),
    ],
)
def test_a_failed_transmitter_encodes_as_the_sentinel(datatype: DataType, registers: list[int]) -> None:
    assert encode_registers(point(datatype, scale=0.1), SimValue(math.nan, FaultMode.FAILED)) == registers
    assert datatype in (DataType.FLOAT32, DataType.FLOAT64) or datatype in FAILED_RAW


def test_a_gas_leak_can_reach_the_other_detectors_of_its_area_each_a_little_later(
    sample_plant: Plant,
) -> None:
    model = PlantModel(sample_plant, seed=1)
    state = model.start_scenario("gas-leak", enterprise=LPG, tag="GT101", spread=2)
    assert state["spread"] == ["GT102", "GT103"]  # the combustible detectors of the same area (A101)
    first_hh: dict[str, float] = {}
    for _ in range(int(90 / 0.2)):
        model.step(0.2)
        for tag in ("GT101", "GT102", "GT103"):
            if tag not in first_hh and model.reading(LPG, tag).value >= 50.0:
                first_hh[tag] = model.time_s
    assert list(first_hh) == ["GT101", "GT102", "GT103"]  # all through 50 % LEL, in that order
    assert first_hh["GT101"] < first_hh["GT102"] < first_hh["GT103"]
    assert model.state()["spread"] == []  # over: every detector reads its normal value again
    assert model.reading(LPG, "GT102").value < 25.0
    with pytest.raises(ValueError, match="spread applies to gas-leak"):
        model.start_scenario("overfill", enterprise=LPG, tag="LT101", spread=1)
    with pytest.raises(ValueError, match="other gas_combustible detectors"):
        model.start_scenario("gas-leak", enterprise=LPG, tag="GT101", spread=9)
    model.start_scenario("gas-leak", enterprise=LPG, tag="GT101", spread=1)
    model.reset()
    assert model.state()["spread"] == []


@pytest.mark.parametrize("seed", [0, 1])
def test_two_hours_of_normal_operation_raise_no_alarm_on_the_sample_plant(
    sample_plant: Plant, seed: int
) -> None:
    """Through the real rule engine: the normal plant is quiet (levels once filled and emptied every
    15-30 min, and the 10-minute prediction of LT101 and LT301 warned 10 to 19 times in 2 h)."""
    model = PlantModel(sample_plant, seed=seed)
    keys = list(model.keys)
    ids: dict[tuple[str, str], int] = {(k[0], k[1]): n + 1 for n, k in enumerate(keys)}
    config = plant_config(sample_plant, ids)
    engine = RuleEngine(config)
    index = [(k, engine.index_of(ids[k])) for k in keys]
    watched = [(k, i) for k, i in index if i is not None]
    t0 = 1_796_061_600_000
    raised = []
    for second in range(7200):
        model.step(1.0)
        values = np.array([model.reading(*k).value for k, _ in watched])
        got = engine.evaluate(
            np.array([i for _, i in watched], np.int64),
            np.full(len(watched), t0 + second * 1000, np.int64),
            values,
            np.zeros(len(watched), np.int16),
        )
        raised += [(str(t.condition), t.subject_id, second) for t in got if t.level > 0]
    assert raised == []


def test_a_new_scenario_names_the_one_it_replaces_while_that_still_runs(sample_plant: Plant) -> None:
    model = PlantModel(sample_plant, seed=5)
    assert model.start_scenario("overfill")["replaced"] is None
    assert model.start_scenario("gas-leak")["replaced"] == f"overfill on {LPG}/LT101"
    drive(model, (LPG, "GT101"))  # to its end
    assert model.start_scenario("overfill")["replaced"] is None
