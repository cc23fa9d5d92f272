"""The rules file: rule settings over a devices file's, validated like it (``HW_RULES``, ``--rules``).

It changes the rules without touching the ledger: the per-tag settings of named tags, and a
hazard source's voting groups and warning threshold. Its main use is ``hazardwatch rules backtest
--rules FILE``: tune a limit over stored history before applying it::

    version: 1
    tags:
      - tag: E330110001/LT101          # enterprise code / tag code
        limits: {h: 87}                # only the limits given change; null removes one
        on_delay_s: 30                 # null: back to the default for the tag's kind
        predict: {response_s: 600, window_s: 300, on_delay_s: 30, off_delay_s: 180}
        fault: {on_delay_s: 5, off_delay_s: 30, margin_pct: 1}   # FAULT's chatter protection
    hazard_sources:
      - hazard_source: E330110001/HS330110001-01
        voting:                        # added, or replacing the group of the same code
          - {code: GV102, tags: [GT105, GT106], k: 2}
        source_warning: {min_tags: 3}  # null turns the warning off

A tag or hazard source the devices file does not have is an error, as is a setting the tag's
own validation refuses (H above HH, a limit outside the range, …); both come with their line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from hazardwatch.errors import ConfigError
from hazardwatch.ledger.composites import SourceWarning, VotingGroup
from hazardwatch.ledger.loader import load_model
from hazardwatch.ledger.models import FrozenValue, HazardSource, Limits, Plant, Prediction, RateOfChange, Tag
from hazardwatch.ledger.protection import FaultProtection, StaleProtection

_KEY = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _plant(info: ValidationInfo) -> Plant:
    plant = (info.context or {}).get("plant")
    if not isinstance(plant, Plant):
        raise ValueError("a rules file is validated against a devices file")  # noqa: TRY004 - pydantic's
    return plant


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


class TagRules(_Model):
    """New rule settings of one tag; the settings not given stay as the devices file has them."""

    tag: str = Field(pattern=_KEY, max_length=129, description="enterprise code / tag code")
    limits: Limits = Field(default_factory=Limits, description="the limits given replace the tag's")
    deadband: float | None = Field(None, ge=0, description="deadband in engineering units")
    deadband_pct: float | None = Field(None, ge=0, le=50, description="deadband in % of span")
    on_delay_s: float | None = Field(None, ge=0, le=3600, description="a limit must hold this long to alarm")
    off_delay_s: float | None = Field(None, ge=0, le=3600, description="normal must hold this long to clear")
    roc: RateOfChange | None = Field(None, description="rate-of-change alarm (null: none)")
    frozen: FrozenValue | None = Field(None, description="frozen-value alarm (null: none)")
    predict: Prediction | None = Field(None, description="predictive warning (null: none)")
    stale_after_s: float | None = Field(None, gt=0, le=86_400, description="silence that makes the tag stale")
    fault: FaultProtection | None = Field(None, description="FAULT's delays and band margin (null: defaults)")
    stale: StaleProtection | None = Field(None, description="STALE's delays (null: defaults)")

    @model_validator(mode="after")
    def _applies(self, info: ValidationInfo) -> Self:
        self.apply(_find_tag(_plant(info), self.tag))
        return self

    def apply(self, tag: Tag) -> Tag:
        """The tag with these settings; ValueError when the tag's validation refuses them."""
        data: dict[str, Any] = tag.model_dump()
        given = self.model_fields_set - {"tag", "limits"}
        for name in given:
            data[name] = getattr(self, name)
        if "deadband" in given and "deadband_pct" not in given:
            data["deadband_pct"] = None
        if "deadband_pct" in given and "deadband" not in given:
            data["deadband"] = None
        data["limits"] = {**data["limits"], **self.limits.model_dump(include=self.limits.model_fields_set)}
        try:
            return Tag.model_validate(data)
        except ValidationError as err:
            raise ValueError(f"tag {self.tag}: {_first_error(err)}") from err


class HazardSourceRules(_Model):
    """Voting groups added to a hazard source (or replacing its groups of the same code) and its
    hazard-source warning."""

    hazard_source: str = Field(
        pattern=_KEY, max_length=129, description="enterprise code / hazard source code"
    )
    voting: list[VotingGroup] = Field(default_factory=list, description="groups added or replaced by code")
    source_warning: SourceWarning | None = Field(None, description="the warning threshold (null: off)")

    @model_validator(mode="after")
    def _applies(self, info: ValidationInfo) -> Self:
        self.apply(_find_source(_plant(info), self.hazard_source))
        return self

    def apply(self, source: HazardSource) -> HazardSource:
        data: dict[str, Any] = source.model_dump()
        replaced = {g.code for g in self.voting}
        data["voting"] = [g for g in data["voting"] if g["code"] not in replaced] + self.voting
        if "source_warning" in self.model_fields_set:
            data["source_warning"] = self.source_warning
        try:
            return HazardSource.model_validate(data)
        except ValidationError as err:
            raise ValueError(f"hazard source {self.hazard_source}: {_first_error(err)}") from err


class RulesFile(_Model):
    version: Literal[1] = Field(description="schema version of the rules file")
    tags: list[TagRules] = Field(default_factory=list, description="per-tag rule settings")
    hazard_sources: list[HazardSourceRules] = Field(
        default_factory=list, description="voting groups and warnings per hazard source"
    )

    @model_validator(mode="after")
    def _once_each(self, info: ValidationInfo) -> Self:
        for what, keys in (("tag", [t.tag for t in self.tags]),
                           ("hazard source", [s.hazard_source for s in self.hazard_sources])):  # fmt: skip
            duplicates = sorted({k for k in keys if keys.count(k) > 1})
            if duplicates:
                raise ValueError(f"{what} {duplicates[0]} is listed twice")
        self.apply(_plant(info))  # the settings together (a voting group on a tag whose limit went)
        return self

    def apply(self, plant: Plant) -> Plant:
        """The plant with these rules: tags first, then the hazard sources over the changed tags."""
        doc: dict[str, Any] = plant.model_dump()
        for rule in self.tags:
            enterprise, code = rule.tag.split("/")
            for source in _enterprise_doc(doc, enterprise)["hazard_sources"]:
                for equipment in source["equipment"]:
                    equipment["tags"] = [
                        rule.apply(Tag.model_validate(t)).model_dump() if t["code"] == code else t
                        for t in equipment["tags"]
                    ]
        for source_rule in self.hazard_sources:
            enterprise, code = source_rule.hazard_source.split("/")
            sources = _enterprise_doc(doc, enterprise)["hazard_sources"]
            for i, source in enumerate(sources):
                if source["code"] == code:
                    sources[i] = source_rule.apply(HazardSource.model_validate(source)).model_dump()
        try:
            return Plant.model_validate(doc)
        except ValidationError as err:
            raise ValueError(_first_error(err)) from err


def _enterprise_doc(doc: dict[str, Any], code: str) -> dict[str, Any]:
    found: dict[str, Any] = next(e for e in doc["enterprises"] if e["code"] == code)
    return found


def _find_tag(plant: Plant, key: str) -> Tag:
    enterprise, code = key.split("/")
    for e, _, _, tag in plant.iter_tags():
        if e.code == enterprise and tag.code == code:
            return tag
    raise ValueError(f"unknown tag {key}: the devices file has no tag {code} in enterprise {enterprise}")


def _find_source(plant: Plant, key: str) -> HazardSource:
    enterprise, code = key.split("/")
    for e in plant.enterprises:
        for source in e.hazard_sources:
            if e.code == enterprise and source.code == code:
                return source
    raise ValueError(
        f"unknown hazard source {key}: the devices file has no {code} in enterprise {enterprise}"
    )


WHAT = "the rules file (with 'version' and 'tags' or 'hazard_sources')"


def load_rules(path: str | Path, plant: Plant) -> RulesFile:
    """Read and validate a rules file against a devices file; ConfigError with line numbers."""
    return load_model(path, RulesFile, WHAT, context={"plant": plant})


def with_rules(plant: Plant, path: str | Path | None) -> Plant:
    """The plant with a rules file's settings, or as it is when no path is given."""
    if path is None or str(path) == "":
        return plant
    rules = load_rules(path, plant)
    try:
        return rules.apply(plant)
    except ValueError as err:  # validated against this plant already: not expected
        raise ConfigError(f"{path}: {err}") from err
