"""The alarm policy: grading, shelving and closure rules — configuration, with sensible defaults.

Provinces differ in their numbers (DOMAIN.md §5), so the policy is a YAML file
(``HW_POLICY``), validated like devices.yaml: unknown keys are errors, reported with their
line. Without a file the defaults below apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from alarms.workflow_policy import Escalation, Notifications
from hazardwatch.ledger.loader import load_model

Priority = Literal[1, 2, 3]
Kind = Literal["limit", "predict", "data", "offline", "video", "composite"]
ROLES = ("duty_officer", "enterprise", "regulator")

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
    "CAMERA_OFFLINE": "offline",
    "VOTE": "composite",
    "SOURCE": "composite",
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

    def priority(self, condition: str, level: int, hazard_grade: int) -> int:
        kind = kind_of(condition)
        pair = self.by_condition.get(condition) or self.by_kind.get(kind) or (3, 3)
        base = int(pair[1] if level >= 2 else pair[0])
        if kind in self.raised_kinds and hazard_grade in self.raise_for_grades:
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


class Policy(_Model):
    version: Literal[1] = 1
    grading: Grading = Field(default_factory=Grading)
    shelving: Shelving = Field(default_factory=Shelving)
    closure: Closure = Field(default_factory=Closure)
    escalation: Escalation = Field(default_factory=Escalation)
    notifications: Notifications = Field(default_factory=Notifications)

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
