"""The alarm policy: grading, shelving and closure rules — configuration, with sensible defaults.

Provinces differ in their numbers (DOMAIN.md §5), so the policy is a YAML file
(``HW_POLICY``), validated like devices.yaml: unknown keys are errors, reported with their
line. Without a file the defaults below apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, model_validator

from alarms.workflow_policy import Escalation, Notifications
from hazardwatch.ledger.loader import load_model

Priority = Literal[1, 2, 3]
Kind = Literal["limit", "predict", "data", "offline", "video", "composite"]
ROLES = ("duty_officer", "enterprise", "regulator")
# special operations (特殊作业, GB 30871) counted in the daily safety commitment
SPECIAL_OPERATIONS = (
    "hot_work",  # 动火
    "confined_space",  # 受限空间
    "blind_plate",  # 盲板抽堵
    "work_at_height",  # 高处
    "lifting",  # 吊装
    "temporary_power",  # 临时用电
    "excavation",  # 动土
    "road_closure",  # 断路
)

# The kind (DOMAIN.md §5) of each condition; an edge event's condition not listed here is video.
KIND_OF: dict[str, Kind] = {
    "HIGH": "limit",
    "LOW": "limit",
    "ROC": "predict",
    "PREDICT": "predict",
    "FAULT": "data",
    "FROZEN": "data",
    "STALE": "offline",
    "GATEWAY_OFFLINE": "offline",
    "DEVICE_COMM": "offline",
    "CLOCK_AHEAD": "data",  # a gateway's readings stamped ahead of the platform clock (三级)
    "CAMERA_OFFLINE": "offline",
    "VOTE": "composite",
    "SOURCE": "composite",
    "NO_COMMITMENT": "data",  # the daily safety commitment was not filed by its deadline (三级)
}


def kind_of(condition: str) -> Kind:
    return KIND_OF.get(condition, "video")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Grading(_Model):
    """Priority 1 (一级, most urgent) … 3 (三级) of an alarm."""

    by_kind: dict[Kind, tuple[Priority, Priority]] = Field(
        default={
            "limit": (2, 1),  # H/L, HH/LL
            "predict": (3, 3),
            "data": (3, 3),
            "offline": (3, 3),
            "video": (2, 2),
            "composite": (2, 1),  # k-of-n at H, at HH; a hazard-source warning
        },
        description="priority at level 1 and at level 2 (or higher), per kind",
    )
    by_condition: dict[str, tuple[Priority, Priority]] = Field(
        default={"ROC": (2, 2), "FIRE": (1, 1), "SMOKE": (1, 1)},
        description="overrides for single conditions (suspected fire or smoke is 一级)",
    )
    raise_for_grades: list[Literal[1, 2, 3, 4]] = Field(
        default=[1, 2],
        description="hazard-source grades (GB 18218) whose alarms of the raised kinds go one step up",
    )
    raised_kinds: list[Kind] = Field(default=["limit", "video", "composite"])

    def priority(self, condition: str, level: int, hazard_grade: int | None) -> int:
        """``hazard_grade`` None: no GB 18218 grade (not a major hazard source), which raises nothing."""
        kind = kind_of(condition)
        pair = self.by_condition.get(condition) or self.by_kind.get(kind) or (3, 3)
        base = int(pair[1] if level >= 2 else pair[0])
        if kind in self.raised_kinds and hazard_grade is not None and hazard_grade in self.raise_for_grades:
            base = max(1, base - 1)
        return base


class Shelving(_Model):
    roles: list[Literal["duty_officer", "enterprise", "regulator"]] = Field(
        default=["duty_officer", "enterprise"], description="who may shelve"
    )
    max_hours: float = Field(8.0, gt=0, le=24 * 30, description="the longest a shelf may last")
    priorities: list[Priority] = Field(
        default=[2, 3],
        description="priorities that may be shelved (一级 may not, by default)",
    )


class Closure(_Model):
    feedback_required: list[Priority] = Field(
        default=[1, 2],
        description="priorities closed only with accepted feedback; others close on return to normal",
    )


class Risk(_Model):
    """Dynamic risk (红/橙/黄/蓝) as points: inherent points from the GB 18218 grade, plus live factors.

    Level 1 红 (重大) from ``thresholds[0]`` points, 2 橙 from ``thresholds[1]``, 3 黄 from
    ``thresholds[2]``, else 4 蓝. The defaults give each grade its own colour and raise one
    colour per 20 points.
    """

    inherent: dict[Literal[1, 2, 3, 4], float] = Field(
        default={1: 60.0, 2: 40.0, 3: 20.0, 4: 0.0}, description="points of each GB 18218 grade"
    )
    thresholds: tuple[float, float, float] = Field(
        default=(60.0, 40.0, 20.0), description="points from which the level is 红, 橙 and 黄"
    )
    active_alarm: dict[Priority, float] = Field(
        default={1: 20.0, 2: 10.0, 3: 2.0}, description="points per active alarm, by priority"
    )
    active_alarm_cap: float = Field(40.0, ge=0, description="at most this many points from alarms")
    special_operation: dict[str, float] = Field(
        default={
            "hot_work": 10.0,  # 动火
            "confined_space": 10.0,  # 受限空间
            "blind_plate": 5.0,  # 盲板抽堵
            "work_at_height": 5.0,  # 高处
            "lifting": 5.0,  # 吊装
            "temporary_power": 5.0,  # 临时用电
            "excavation": 5.0,  # 动土
            "road_closure": 5.0,  # 断路
        },
        description="points per special operation declared in the day's commitment, by kind",
    )
    special_operation_cap: float = Field(20.0, ge=0, description="at most this many from special operations")
    startup: float = Field(20.0, ge=0, description="start-up or shutdown (开停车) declared for the day")
    trial_production: float = Field(20.0, ge=0, description="trial production (试生产) declared")
    maintenance: float = Field(10.0, ge=0, description="the unit declared under maintenance (检维修)")
    overdue_feedback: float = Field(
        10.0,
        ge=0,
        description="points per alarm whose feedback is overdue (escalation.timers' feedback_minutes)",
    )
    overdue_feedback_cap: float = Field(20.0, ge=0)
    missing_commitment: float = Field(
        20.0, ge=0, description="the day's commitment is missing past its deadline"
    )
    declared_level_is_floor: bool = Field(
        True, description="never show a level lower (less grave) than the one the enterprise declared"
    )
    commitment_due: str = Field(
        "10:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="local deadline of the commitment"
    )
    timezone: str = Field("Asia/Shanghai", description="the zone of the commitment's day and deadline")

    @model_validator(mode="after")
    def _ordered(self) -> Risk:
        red, orange, yellow = self.thresholds
        unknown = sorted(set(self.special_operation) - set(SPECIAL_OPERATIONS))
        if unknown:
            raise ValueError(f"risk.special_operation: unknown kinds {unknown} (known: {SPECIAL_OPERATIONS})")
        if not red > orange > yellow > 0:
            raise ValueError("risk.thresholds must fall strictly: 红 > 橙 > 黄 > 0")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"risk.timezone: unknown time zone {self.timezone!r}") from err
        return self

    def level(self, points: float) -> int:
        """1 红 … 4 蓝."""
        return next((i + 1 for i, edge in enumerate(self.thresholds) if points >= edge), 4)


class Policy(_Model):
    version: Literal[1] = 1
    grading: Grading = Field(default_factory=Grading)
    shelving: Shelving = Field(default_factory=Shelving)
    closure: Closure = Field(default_factory=Closure)
    escalation: Escalation = Field(default_factory=Escalation)
    notifications: Notifications = Field(default_factory=Notifications)
    risk: Risk = Field(default_factory=Risk)

    @model_validator(mode="after")
    def _sane(self) -> Policy:
        for kind, (low, high) in self.grading.by_kind.items():
            if high > low:
                raise ValueError(f"grading.by_kind.{kind}: level 2 cannot be less urgent than level 1")
        return self

    def feedback_required(self, priority: int) -> bool:
        return priority in self.closure.feedback_required


DEFAULT = Policy()


def load_policy(path: str | Path | None) -> Policy:
    """The policy file's, or the defaults when no path is given."""
    if path is None or str(path) == "":
        return DEFAULT
    return load_model(path, Policy, "the policy file")
