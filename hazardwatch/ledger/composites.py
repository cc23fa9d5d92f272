"""Composite conditions of a hazard source in devices.yaml: k-out-of-n voting groups and the
hazard-source warning (综合预警) on several active conditions at once."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

TagCode = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
SourceCondition = Literal["HIGH", "LOW", "FAULT", "ROC", "FROZEN", "PREDICT"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VotingGroup(_Model):
    """VOTE: level 1 while at least ``k`` of the tags are at H or above (L or below for LOW), level 2
    while at least ``k`` are at HH (LL); e.g. two of three gas detectors of one area."""

    code: TagCode = Field(description="the group's code, unique in the hazard source")
    name: str = Field("", max_length=200, description="what the group watches, e.g. 球罐区可燃气体 2oo3")
    tags: list[TagCode] = Field(
        min_length=2, max_length=64, description="tag codes of the hazard source (n ≥ 2)"
    )
    k: int = Field(ge=1, le=64, description="how many of the tags must be in alarm at once (1 ≤ k ≤ n)")
    condition: Literal["HIGH", "LOW"] = Field("HIGH", description="vote on H/HH (HIGH) or on L/LL (LOW)")

    @model_validator(mode="after")
    def _k_of_n(self) -> Self:
        if len(set(self.tags)) != len(self.tags):
            raise ValueError(f"voting group {self.code}: a tag is listed twice")
        if self.k > len(self.tags):
            raise ValueError(f"voting group {self.code}: k ({self.k}) exceeds its {len(self.tags)} tags")
        return self


class SourceWarning(_Model):
    """SOURCE: the hazard source warns while at least ``min_tags`` distinct tags of it have one of
    ``conditions`` active (after their delays)."""

    min_tags: int = Field(2, ge=2, le=1000, description="distinct tags with an active condition that warn")
    conditions: list[SourceCondition] = Field(
        default=["HIGH", "LOW", "ROC", "PREDICT"],
        min_length=1,
        description="the tag conditions that count (instrument faults and frozen values do not by default)",
    )
