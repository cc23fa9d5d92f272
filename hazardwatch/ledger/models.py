"""The devices.yaml schema: ledger (enterprise → hazard source → equipment → tag) and device map.

Every model forbids unknown fields, so a typo is an error with a line number, never a
silently ignored setting.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hazardwatch.ledger import chemicals, gas
from hazardwatch.ledger.cameras import Camera
from hazardwatch.ledger.composites import SourceWarning, VotingGroup
from hazardwatch.ledger.grading import GradeResult, Holding, grade_hazard_source
from hazardwatch.ledger.protection import MAX_DELAY_S, FaultProtection, Protection, StaleProtection
from hazardwatch.ledger.protection import effective as effective_protection

Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]

_CREDIT_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def credit_code_check_char(first17: str) -> str:
    """The GB 32100-2015 check character of a unified social credit code."""
    total = sum(_CREDIT_CHARS.index(c) * w for c, w in zip(first17, _CREDIT_WEIGHTS, strict=True))
    return _CREDIT_CHARS[(31 - total % 31) % 31]


MAX_RANGE = 1e12  # the largest magnitude a measuring range may reach


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TagKind(StrEnum):
    LEVEL = "level"
    TEMPERATURE = "temperature"
    PRESSURE = "pressure"
    FLOW = "flow"
    GAS_COMBUSTIBLE = "gas_combustible"
    GAS_TOXIC = "gas_toxic"
    VALVE_POSITION = "valve_position"
    HUMIDITY = "humidity"
    WIND_SPEED = "wind_speed"
    OTHER = "other"


# Default deadband as a share of span, by tag kind (DOMAIN.md §4).
DEFAULT_DEADBAND_PCT: dict[TagKind, float] = {
    TagKind.FLOW: 5.0,
    TagKind.LEVEL: 2.0,
    TagKind.PRESSURE: 2.0,
    TagKind.TEMPERATURE: 1.0,
}
FALLBACK_DEADBAND_PCT = 1.0

# Default on-delay = off-delay in seconds, by tag kind (DOMAIN.md §4, ISA-18.2 starting values).
# Gas detectors alarm at once: a delay there costs response time where it matters most.
DEFAULT_DELAY_S: dict[TagKind, float] = {
    TagKind.FLOW: 15.0,
    TagKind.LEVEL: 60.0,
    TagKind.PRESSURE: 15.0,
    TagKind.TEMPERATURE: 60.0,
}


class Limits(_Model):
    """Alarm limits in engineering units; any may be absent, present ones must be ordered."""

    ll: float | None = Field(None, description="low-low limit (LL)")
    l: float | None = Field(None, description="low limit (L)")  # noqa: E741 - the industry's name
    h: float | None = Field(None, description="high limit (H)")
    hh: float | None = Field(None, description="high-high limit (HH)")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        present = [
            (n, v)
            for n, v in (("LL", self.ll), ("L", self.l), ("H", self.h), ("HH", self.hh))
            if v is not None
        ]
        for name, value in present:
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number")
        for (lo_name, lo), (hi_name, hi) in itertools.pairwise(present):
            if not lo < hi:
                raise ValueError(f"{lo_name} ({lo}) must be below {hi_name} ({hi})")
        return self


class ModbusTable(StrEnum):
    COIL = "coil"  # function code 1
    DISCRETE = "discrete"  # function code 2
    HOLDING = "holding"  # function code 3
    INPUT = "input"  # function code 4


class DataType(StrEnum):
    BOOL = "bool"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"

    @property
    def registers(self) -> int:
        """16-bit registers the type occupies (1 for bits)."""
        return {"int32": 2, "uint32": 2, "float32": 2, "int64": 4, "float64": 4}.get(self.value, 1)

    @property
    def struct_code(self) -> str:
        """The type's ``struct`` format character ('' for bits, which are not packed)."""
        return {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "int64": "q",
                "float32": "f", "float64": "d"}.get(self.value, "")  # fmt: skip


class CurrentLoop(_Model):
    """A 4–20 mA transmitter read as raw counts: counts → mA → engineering units over the tag's range.

    ≤ 3.6 mA or ≥ 21.0 mA is the transmitter signalling a failure (NAMUR NE 43): an instrument
    fault, never a value.
    """

    raw_4ma: float = Field(4.0, description="raw count at 4 mA (e.g. 0 for a Siemens 0–27648 card)")
    raw_20ma: float = Field(20.0, description="raw count at 20 mA (e.g. 27648); the defaults read mA")

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if self.raw_4ma == self.raw_20ma:
            raise ValueError("raw_4ma and raw_20ma must differ")
        return self


class ModbusPoint(_Model):
    device: Code = Field(description="id of a modbus device of the enterprise's gateways")
    table: ModbusTable = Field(ModbusTable.HOLDING, description="register table (function code)")
    address: int = Field(ge=0, le=65535, description="zero-based register or bit address")
    datatype: DataType = Field(DataType.FLOAT32, description="how the registers are decoded")
    byte_order: Literal["big", "little"] = Field("big", description="byte order inside a register")
    word_order: Literal["big", "little"] = Field("big", description="register order of wide types")
    scale: float = Field(1.0, description="engineering value = raw * scale + offset")
    offset: float = Field(0.0, description="engineering value = raw * scale + offset")
    current_loop: CurrentLoop | None = Field(None, description="4–20 mA signal, scaled to the tag's range")

    @model_validator(mode="after")
    def _fits_table(self) -> Self:
        is_bit_table = self.table in (ModbusTable.COIL, ModbusTable.DISCRETE)
        if is_bit_table != (self.datatype == DataType.BOOL):
            raise ValueError("coil and discrete tables hold bool points, and only they do")
        if self.current_loop is not None and (
            self.datatype == DataType.BOOL or (self.scale, self.offset) != (1, 0)
        ):
            raise ValueError(
                "a current_loop point is numeric and scaled by the tag's range, not scale/offset"
            )
        if self.address + self.datatype.registers > 65536:
            raise ValueError("the point runs past register 65535")
        return self

    @property
    def span(self) -> range:
        return range(self.address, self.address + self.datatype.registers)


MIN_POLL_MS = 50  # the fastest an OPC-UA node is polled


class OpcUaPoint(_Model):
    device: Code = Field(description="id of an opcua device of the enterprise's gateways")
    node: str = Field(min_length=3, max_length=512, description="node id, e.g. ns=2;s=T201.LT")
    mode: Literal["subscribe", "poll"] = Field(
        "subscribe", description="subscribe: a monitored item; poll: a Read every sampling interval"
    )
    sampling_interval_ms: int = Field(
        500, ge=0, le=3_600_000, description="server sampling interval; the period when polled"
    )
    queue_size: int = Field(10, ge=1, le=10_000, description="values the server queues between publishes")
    deadband: float = Field(
        0.0,
        ge=0,
        description="absolute deadband of the data-change filter (node units); 0 reports every change",
    )

    @field_validator("node")
    @classmethod
    def _node_syntax(cls, node: str) -> str:
        if not re.match(r"^(ns=\d+;)?[isgb]=.+$", node):
            raise ValueError("node must look like ns=<n>;s=<name> (or i=, g=, b=)")
        return node

    @model_validator(mode="after")
    def _pollable(self) -> Self:
        if self.mode == "poll" and self.sampling_interval_ms < MIN_POLL_MS:
            raise ValueError(f"a polled node needs sampling_interval_ms of at least {MIN_POLL_MS}")
        return self


class RateOfChange(_Model):
    """Alarm when the value moves by ``limit`` (engineering units) within ``period_s``."""

    limit: float = Field(gt=0, description="move in engineering units that alarms")
    period_s: float = Field(60, gt=0, le=86_400, description="the period the move is measured over")
    deadband: float | None = Field(None, ge=0, description="resets below limit - deadband (default: tag's)")
    on_delay_s: float | None = Field(None, ge=0, le=MAX_DELAY_S, description="held this long to alarm")
    off_delay_s: float | None = Field(None, ge=0, le=MAX_DELAY_S, description="gone this long to clear")


class FrozenValue(_Model):
    """Alarm when no step between readings exceeds ``epsilon`` for ``window_s`` (stuck transmitter)."""

    window_s: float = Field(gt=0, le=7 * 86_400, description="how long the value may stand still")
    epsilon: float = Field(0.0, ge=0, description="steps up to this size count as standing still")
    on_delay_s: float | None = Field(None, ge=0, le=MAX_DELAY_S, description="frozen this long more to alarm")
    off_delay_s: float | None = Field(None, ge=0, le=MAX_DELAY_S, description="moving this long to clear")


class Prediction(_Model):
    """预警: warn when the trend fitted over ``window_s`` reaches the next limit within ``response_s``."""

    response_s: float = Field(gt=0, le=86_400, description="the time operators need to respond")
    window_s: float = Field(300, gt=0, le=86_400, description="readings the trend is fitted over")
    on_delay_s: float | None = Field(None, ge=0, le=MAX_DELAY_S, description="predicting this long to warn")
    off_delay_s: float | None = Field(None, ge=0, le=MAX_DELAY_S, description="gone this long to clear")


class OutOfService(_Model):
    reason: str = Field(min_length=1, description="why the tag is out of service")
    by: str = Field(min_length=1, description="who took it out of service")
    at: datetime = Field(description="when (ISO 8601 with time zone)")


class Tag(_Model):
    code: Code = Field(description="tag number (位号), unique in the enterprise")
    name: str = Field(min_length=1, max_length=200)
    kind: TagKind
    unit: str = Field(max_length=32, description="engineering unit, e.g. %, ℃, MPa, %LEL, mg/m³")
    range: tuple[float, float] = Field(description="measuring range [low, high]")
    limits: Limits = Field(default_factory=Limits)
    deadband: float | None = Field(None, ge=0, description="deadband in engineering units")
    deadband_pct: float | None = Field(None, ge=0, le=50, description="deadband in % of span")
    gas: str | None = Field(None, max_length=64, description="the gas a detector measures")
    on_delay_s: float | None = Field(None, ge=0, le=3600, description="a limit must hold this long to alarm")
    off_delay_s: float | None = Field(None, ge=0, le=3600, description="normal must hold this long to clear")
    roc: RateOfChange | None = Field(None, description="rate-of-change alarm")
    frozen: FrozenValue | None = Field(None, description="frozen-value alarm")
    predict: Prediction | None = Field(None, description="predictive warning (预警)")
    stale_after_s: float | None = Field(
        None, gt=0, le=86_400, description="silence that makes the tag stale (default: 3 polls for Modbus)"
    )
    fault: FaultProtection | None = Field(None, description="instrument fault's delays and band margin")
    stale: StaleProtection | None = Field(None, description="STALE's delays")
    out_of_service: OutOfService | None = Field(None, description="set while out of service")
    modbus: ModbusPoint | None = None
    opcua: OpcUaPoint | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        low, high = self.range
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"range [{low}, {high}] must be finite and increasing")
        if max(abs(low), abs(high)) > MAX_RANGE:
            # no transmitter measures beyond it, and sums of such values overflow the rollups
            raise ValueError(f"range [{low}, {high}] reaches beyond ±{MAX_RANGE:g}")
        for name in ("ll", "l", "h", "hh"):
            value = getattr(self.limits, name)
            if value is not None and not low <= value <= high:
                raise ValueError(f"limit {name.upper()} ({value}) lies outside the range [{low}, {high}]")
        if (self.modbus is None) == (self.opcua is None):
            raise ValueError("a tag is read either from modbus or from opcua: give exactly one")
        self._defaults_ordered()
        if self.deadband is not None and self.deadband_pct is not None:
            raise ValueError("give deadband or deadband_pct, not both")
        if self.predict is not None and all(v is None for v in (self.limits.h, self.limits.hh, self.limits.l,
                                                                  self.limits.ll)):  # fmt: skip
            raise ValueError("predict needs at least one limit to predict the crossing of")
        return self

    def _defaults_ordered(self) -> None:
        """A gas tag's limits with the GB/T 50493 defaults filled in must still be ordered (an h
        given without hh must lie below the default hh, and the other way round)."""
        effective = self.effective_limits
        if effective is self.limits:
            return
        try:
            Limits.model_validate(effective.model_dump())
        except ValidationError as err:
            given = ", ".join(n for n in ("h", "hh") if getattr(self.limits, n) is not None) or "none"
            reason = str(err.errors()[0]["msg"]).removeprefix("Value error, ")
            raise ValueError(f"{reason} (given: {given}; the others are GB/T 50493-2019 defaults)") from err

    @property
    def span(self) -> float:
        return self.range[1] - self.range[0]

    @property
    def effective_deadband(self) -> float:
        """Deadband in engineering units, from the tag or the default for its kind."""
        if self.deadband is not None:
            return self.deadband
        pct = (
            self.deadband_pct
            if self.deadband_pct is not None
            else DEFAULT_DEADBAND_PCT.get(self.kind, FALLBACK_DEADBAND_PCT)
        )
        return self.span * pct / 100.0

    @property
    def effective_delays_s(self) -> tuple[float, float]:
        """(on-delay, off-delay) in seconds, from the tag or the default for its kind."""
        default = DEFAULT_DELAY_S.get(self.kind, 0.0)
        return (
            self.on_delay_s if self.on_delay_s is not None else default,
            self.off_delay_s if self.off_delay_s is not None else default,
        )

    @property
    def effective_protection(self) -> Protection:
        """Chatter protection of FAULT, ROC, FROZEN, PREDICT and STALE: the tag's, else by kind."""
        roc, frozen, predict = self.roc, self.frozen, self.predict
        return effective_protection(
            self.kind.value, self.span, self.effective_deadband, self.fault,
            (roc.on_delay_s, roc.off_delay_s, roc.deadband) if roc else None,
            (frozen.on_delay_s, frozen.off_delay_s) if frozen else None,
            (predict.on_delay_s, predict.off_delay_s) if predict else None, self.stale,
            by_exception=self.opcua is not None and self.opcua.mode == "subscribe",
        )  # fmt: skip

    def effective_stale_after_s(self, poll_interval_s: float) -> float:
        """Silence after which the tag is stale (0: not watched).

        Polled tags (Modbus) report every poll, so three missed polls (at least 10 s) mean a dead
        link. Tags reported by exception (OPC-UA subscriptions) may rightly stay silent while their
        value holds: they are watched only when ``stale_after_s`` is set.
        """
        if self.stale_after_s is not None:
            return self.stale_after_s
        return max(3 * poll_interval_s, 10.0) if self.modbus is not None else 0.0

    @property
    def effective_limits(self) -> Limits:
        """The limits the rules use: the tag's, with GB/T 50493 defaults for a gas tag's missing h/hh."""
        defaults = gas.default_limits(self.kind.value, self.gas, self.unit)
        if defaults is None or (self.limits.h is not None and self.limits.hh is not None):
            return self.limits
        h = self.limits.h if self.limits.h is not None else defaults[0]
        hh = self.limits.hh if self.limits.hh is not None else defaults[1]
        return self.limits.model_copy(update={"h": h, "hh": hh})

    def gas_findings(self) -> list[str]:
        return gas.findings(self.kind.value, self.gas, self.unit, self.limits.h, self.limits.hh)

    @property
    def device_id(self) -> str:
        point = self.modbus or self.opcua
        assert point is not None  # noqa: S101 - guaranteed by _consistent
        return point.device


class EquipmentKind(StrEnum):
    TANK = "tank"
    SPHERE = "sphere"
    REACTOR = "reactor"
    WAREHOUSE = "warehouse"
    PIPELINE = "pipeline"
    AREA = "area"


class Equipment(_Model):
    code: Code = Field(description="equipment code (设备编码)")
    name: str = Field(min_length=1, max_length=200)
    kind: EquipmentKind
    tags: list[Tag] = Field(default_factory=list)


class ChemicalHolding(_Model):
    """A chemical of a hazard source; its Q and β come from GB 18218-2018 (``chemicals.resolve``)."""

    name: str = Field(min_length=1, max_length=200, description="chemical name as in GB 18218 表1")
    max_quantity_t: float = Field(
        gt=0, le=1e9, allow_inf_nan=False, description="design maximum quantity q (t)"
    )
    critical_quantity_t: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="Q (t); differing from 表1/表2 needs a justification"
    )
    category: str | None = Field(
        None, max_length=8, description="表2 hazard category (J1…W11); required when 表1 does not name it"
    )
    above_boiling_point: bool = Field(
        False, description="a flammable liquid worked above its boiling point (W5.1, β 1.5)"
    )
    special_process: bool = Field(
        False,
        description="a flammable liquid under special process conditions (W5.2): hazardous process,"
        " near its explosive limits, above 1.6 MPa",
    )
    justification: str | None = Field(
        None, min_length=1, max_length=500, description="why Q or the category differ from GB 18218's tables"
    )

    @model_validator(mode="after")
    def _known(self) -> Self:
        self.resolved()
        return self

    def resolved(self) -> chemicals.Resolved:
        return chemicals.resolve(
            self.name,
            category=self.category,
            critical_quantity_t=(
                None if self.critical_quantity_t is None else chemicals.exact(self.critical_quantity_t)
            ),
            above_boiling_point=self.above_boiling_point,
            special_process=self.special_process,
            justification=self.justification,
        )

    def holding(self) -> Holding:
        found = self.resolved()
        return Holding(chemicals.exact(self.max_quantity_t), found.critical_quantity_t, found.beta, self.name)


class Responsibles(_Model):
    """包保责任制: the escalation chain inside the enterprise."""

    principal: str = Field(min_length=1, description="主要负责人")
    technical: str = Field(min_length=1, description="技术负责人")
    operational: str = Field(min_length=1, description="操作负责人")


class HazardSource(_Model):
    code: Code = Field(description="hazard source code (重大危险源编码)")
    name: str = Field(min_length=1, max_length=200)
    people_within_500m: int = Field(ge=0, description="people within 500 m outside the boundary")
    chemicals: list[ChemicalHolding] = Field(min_length=1)
    responsibles: Responsibles
    equipment: list[Equipment] = Field(default_factory=list)
    cameras: list[Camera] = Field(default_factory=list, description="cameras watching the unit")
    voting: list[VotingGroup] = Field(default_factory=list, description="k-out-of-n voting groups (VOTE)")
    source_warning: SourceWarning | None = Field(
        default_factory=SourceWarning, description="hazard-source warning (SOURCE); null turns it off"
    )

    @model_validator(mode="after")
    def _voting_tags(self) -> Self:
        _unique("voting group code", (g.code for g in self.voting))
        tags = {t.code: t for e in self.equipment for t in e.tags}
        for group in self.voting:
            for code in group.tags:
                tag = tags.get(code)
                if tag is None:
                    raise ValueError(
                        f"voting group {group.code}: tag {code} is not in hazard source {self.code}"
                    )
                lim = tag.effective_limits
                first, second = (lim.h, lim.hh) if group.condition == "HIGH" else (lim.l, lim.ll)
                if first is None and second is None:
                    side = "H/HH" if group.condition == "HIGH" else "L/LL"
                    raise ValueError(f"voting group {group.code}: tag {code} has no {side} limit to vote on")
        return self

    def grade(self) -> GradeResult:
        return grade_hazard_source((c.holding() for c in self.chemicals), self.people_within_500m)


class _PolledModbusDevice(_Model):
    """What every polled Modbus device has, on TCP or on a serial line."""

    poll_interval_s: float = Field(1.0, ge=0.05, le=3600, description="poll period")
    timeout_s: float = Field(1.0, gt=0, le=60, description="request timeout")
    max_gap: int = Field(8, ge=0, le=100, description="unused registers a block read may span")


class ModbusDevice(_PolledModbusDevice):
    protocol: Literal["modbus_tcp"]
    id: Code
    host: str = Field(min_length=1, description="PLC host name or address")
    port: int = Field(502, ge=1, le=65535)
    unit_id: int = Field(1, ge=0, le=247, description="Modbus unit (slave) id")


MIN_FRAME_GAP_S = 0.00175  # Modbus over serial line §2.5.1.1: above 19200 baud the gap is fixed


class ModbusRtuDevice(_PolledModbusDevice):
    """A Modbus RTU slave on a serial line (RS-485); every device on one ``port`` shares the bus."""

    protocol: Literal["modbus_rtu"]
    id: Code
    port: str = Field(
        min_length=1,
        max_length=256,
        pattern=r"^(/|COM[0-9]+$|(socket|rfc2217|loop)://)",
        description="serial port (/dev/ttyUSB0, COM3) or a pyserial URL (socket://host:port, rfc2217://host:port)",
    )
    baudrate: int = Field(9600, ge=300, le=921_600)
    parity: Literal["N", "E", "O"] = Field("E", description="Modbus's default is even parity")
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[8] = Field(8, description="RTU frames are 8 data bits (7 is ASCII mode)")
    unit_id: int = Field(1, ge=1, le=247, description="Modbus unit (slave) address")
    inter_frame_gap_ms: float | None = Field(
        None,
        ge=0,
        le=1000,
        description="silence between frames on the bus (default 3.5 characters, ≥ 1.75 ms)",
    )

    @property
    def frame_gap_s(self) -> float:
        """The silent interval between frames: 3.5 character times, at least 1.75 ms (Modbus over serial)."""
        if self.inter_frame_gap_ms is not None:
            return self.inter_frame_gap_ms / 1000
        bits_per_char = 1 + self.bytesize + (self.parity != "N") + self.stopbits
        return max(3.5 * bits_per_char / self.baudrate, MIN_FRAME_GAP_S)


EnvName = Annotated[str, Field(max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class OpcUaSecurity(_Model):
    """Message security of an OPC-UA connection: the files are paths on the gateway, never contents."""

    policy: Literal["Basic256Sha256"] = Field("Basic256Sha256", description="security policy")
    mode: Literal["Sign", "SignAndEncrypt"] = Field("SignAndEncrypt", description="message security mode")
    certificate: str = Field(min_length=1, description="client certificate file (DER or PEM)")
    private_key: str = Field(
        min_length=1, description="the client certificate's private key file (PEM or DER)"
    )
    private_key_password_env: EnvName | None = Field(
        None, description="environment variable holding the private key's password, if it has one"
    )
    server_certificate: str = Field(
        min_length=1, description="the server's certificate to trust (DER or PEM)"
    )


class OpcUaDevice(_Model):
    protocol: Literal["opcua"]
    id: Code
    endpoint: str = Field(pattern=r"^opc\.tcp://.+", description="opc.tcp://host:port/path")
    publishing_interval_ms: int = Field(500, ge=10, le=3_600_000)
    poll_interval_s: float = Field(1.0, ge=0.05, le=3600, description="expected reading period")
    timeout_s: float = Field(4.0, gt=0, le=60, description="request timeout")
    keepalive_s: float = Field(
        5.0, ge=0.1, le=600, description="the subscription reports at least this often; 3× silence is a loss"
    )
    security: OpcUaSecurity | None = Field(None, description="message security; none when absent")
    username: str | None = Field(None, min_length=1, max_length=256, description="user name for the session")
    password_env: EnvName | None = Field(None, description="environment variable holding the user's password")

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        if (self.username is None) != (self.password_env is None):
            raise ValueError(
                "give username and password_env together (the password comes from the environment)"
            )
        if self.username is not None and self.security is None:
            raise ValueError("a password is only sent over a secured connection: add security")
        return self


Device = Annotated[ModbusDevice | ModbusRtuDevice | OpcUaDevice, Field(discriminator="protocol")]


class BufferPolicy(_Model):
    """The agent's store-and-forward buffer: its bounds and its fsync policy (README, agent)."""

    max_mb: float = Field(512, gt=0, le=1_000_000, description="size bound in MiB; the oldest dropped beyond")
    max_age_h: float = Field(168, gt=0, le=87_600, description="batches older than this are dropped")
    durability: Literal["power-loss", "process-crash"] = Field(
        "power-loss", description="power-loss: fsync every batch; process-crash: survive kill -9 only"
    )
    keep_sent_h: float = Field(
        24,
        ge=0,
        le=8_760,
        description="acknowledged batches kept this long for ingest's resend requests (0: none)",
    )
    keep_sent_mb: float = Field(128, ge=0, le=1_000_000, description="size bound in MiB of the batches kept")


class Gateway(_Model):
    id: Code = Field(description="gateway id, unique in the enterprise")
    name: str = Field("", max_length=200)
    devices: list[Device] = Field(min_length=1)
    publish_interval_s: float = Field(0.5, ge=0.05, le=60, description="how often readings are batched")
    heartbeat_s: float = Field(10, ge=1, le=3600, description="period of the health heartbeat")
    buffer: BufferPolicy = Field(default_factory=BufferPolicy)


class Location(_Model):
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)


class Enterprise(_Model):
    code: Code = Field(description="enterprise code")
    name: str = Field(min_length=1, max_length=200)
    credit_code: str = Field(pattern=r"^[0-9A-HJ-NP-RT-UW-Y]{18}$", description="统一社会信用代码")
    division: str = Field(pattern=r"^\d{6}$", description="行政区划代码 of the county")
    address: str = Field("", max_length=300)
    location: Location | None = None
    gateways: list[Gateway] = Field(min_length=1)
    hazard_sources: list[HazardSource] = Field(min_length=1)

    @field_validator("credit_code")
    @classmethod
    def _credit_check(cls, code: str) -> str:
        expected = credit_code_check_char(code[:17])
        if code[17] != expected:
            raise ValueError(f"check character is {code[17]}, GB 32100 expects {expected}")
        return code

    @model_validator(mode="after")
    def _cross_references(self) -> Self:
        _unique("gateway id", (g.id for g in self.gateways))
        devices = {d.id: d for g in self.gateways for d in g.devices}
        _unique("device id", (d.id for g in self.gateways for d in g.devices))
        # a serial port belongs to one gateway's machine: the devices on it share one bus
        lines: dict[tuple[str, str], tuple[object, ...]] = {}
        units: dict[tuple[str, str, int], str] = {}
        for gateway in self.gateways:
            for rtu in (d for d in gateway.devices if isinstance(d, ModbusRtuDevice)):
                line = (rtu.baudrate, rtu.parity, rtu.stopbits, rtu.bytesize)
                if lines.setdefault((gateway.id, rtu.port), line) != line:
                    raise ValueError(
                        f"device {rtu.id}: the RTU devices on {rtu.port} of gateway {gateway.id}"
                        " disagree on the line settings"
                    )
                other = units.setdefault((gateway.id, rtu.port, rtu.unit_id), rtu.id)
                if other != rtu.id:
                    raise ValueError(
                        f"device {rtu.id}: unit {rtu.unit_id} on {rtu.port} of gateway {gateway.id}"
                        f" is already device {other} (one address per unit on a bus)"
                    )
        _unique("hazard source code", (h.code for h in self.hazard_sources))
        _unique("equipment code", (e.code for h in self.hazard_sources for e in h.equipment))
        _unique("tag code", (t.code for _, _, t in self.iter_tags()))
        self._check_cameras()
        registers: dict[tuple[str, str], dict[int, str]] = {}
        nodes: dict[tuple[str, str], str] = {}
        for _, _, tag in self.iter_tags():
            device = devices.get(tag.device_id)
            if device is None:
                raise ValueError(f"tag {tag.code}: no device {tag.device_id!r} in the gateways")
            if tag.modbus is not None:
                if device.protocol not in ("modbus_tcp", "modbus_rtu"):
                    raise ValueError(f"tag {tag.code}: device {device.id} is not a modbus device")
                used = registers.setdefault((device.id, tag.modbus.table), {})
                for register in tag.modbus.span:
                    if register in used:
                        raise ValueError(
                            f"tag {tag.code}: {tag.modbus.table} register {register} of {device.id} "
                            f"is already used by {used[register]}"
                        )
                    used[register] = tag.code
            elif tag.opcua is not None:
                if device.protocol != "opcua":
                    raise ValueError(f"tag {tag.code}: device {device.id} is not an opcua device")
                key = (device.id, tag.opcua.node)
                if key in nodes:
                    raise ValueError(f"tag {tag.code}: node {tag.opcua.node} is already read by {nodes[key]}")
                nodes[key] = tag.code
        return self

    def _check_cameras(self) -> None:
        _unique("camera code", (c.code for h in self.hazard_sources for c in h.cameras))
        gateways = {g.id for g in self.gateways}
        for source in self.hazard_sources:
            equipment = {e.code for e in source.equipment}
            for camera in source.cameras:
                if camera.gateway not in gateways:
                    raise ValueError(f"camera {camera.code}: no gateway {camera.gateway!r}")
                if camera.equipment is not None and camera.equipment not in equipment:
                    raise ValueError(
                        f"camera {camera.code}: no equipment {camera.equipment!r} in {source.code}"
                    )

    def iter_cameras(self) -> Iterator[tuple[HazardSource, Camera]]:
        for source in self.hazard_sources:
            for camera in source.cameras:
                yield source, camera

    def iter_tags(self) -> Iterator[tuple[HazardSource, Equipment, Tag]]:
        for source in self.hazard_sources:
            for equipment in source.equipment:
                for tag in equipment.tags:
                    yield source, equipment, tag

    def gateway(self, gateway_id: str) -> Gateway:
        for gateway in self.gateways:
            if gateway.id == gateway_id:
                return gateway
        raise KeyError(gateway_id)

    def tags_of_device(self, device_id: str) -> list[Tag]:
        return [tag for _, _, tag in self.iter_tags() if tag.device_id == device_id]


class Plant(_Model):
    """A devices file: the ledger of one or more enterprises and how their tags are read."""

    version: Literal[1] = Field(description="schema version of the devices file")
    enterprises: list[Enterprise] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_enterprises(self) -> Self:
        _unique("enterprise code", (e.code for e in self.enterprises))
        _unique("credit code", (e.credit_code for e in self.enterprises))
        return self

    def enterprise(self, code: str) -> Enterprise:
        for enterprise in self.enterprises:
            if enterprise.code == code:
                return enterprise
        raise KeyError(code)

    def iter_tags(self) -> Iterator[tuple[Enterprise, HazardSource, Equipment, Tag]]:
        for enterprise in self.enterprises:
            for source, equipment, tag in enterprise.iter_tags():
                yield enterprise, source, equipment, tag


def _unique(what: str, values: Iterator[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate {what} {value!r}")
        seen.add(value)
