"""Experiment requests and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from app.experiments.assignment import HOLDOUT

Surface = Literal["recommendations", "ads"]
Metric = Literal["ctr", "conversion_rate", "revenue_per_user"]
Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][\w.\-]*$")]
# What a variant may serve on the recommendations surface ("default": the normal lists).
REC_STRATEGIES = ("default", "personalised", "popular", "trending")


class VariantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    weight: Annotated[float, Field(gt=0, le=1_000_000, allow_inf_nan=False)] = 1.0
    strategy: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    params: dict[str, Any] | None = None


class ExperimentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    surface: Surface
    variants: Annotated[list[VariantIn], Field(min_length=2, max_length=20)]
    holdout: Annotated[float, Field(ge=0, le=0.5, allow_inf_nan=False)] = 0.0
    primary_metric: Metric = "ctr"
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentIn:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variants: names must be unique")
        if HOLDOUT in names:
            raise ValueError(f"variants: '{HOLDOUT}' is reserved for the holdout group")
        if self.surface == "recommendations":
            for v in self.variants:
                if v.strategy is not None and v.strategy not in REC_STRATEGIES:
                    raise ValueError(
                        f"variants: strategy '{v.strategy}' is not one of "
                        f"{', '.join(REC_STRATEGIES)}"
                    )
        if self.start and self.end and self.end <= self.start:
            raise ValueError("end: must be after start")
        return self


class ExperimentOut(BaseModel):
    name: str
    surface: Surface
    status: Literal["scheduled", "running", "ended", "stopped"]
    variants: list[dict[str, Any]]
    holdout: float
    primary_metric: str
    start: datetime
    end: datetime | None
    stopped_at: datetime | None
    created_at: datetime | None


class ExperimentList(BaseModel):
    experiments: list[ExperimentOut]


class VariantResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    users: int
    impressions: int
    clicks: int
    ctr: float
    ctr_ci: list[float]
    conversions: int
    conversion_rate: float
    revenue_per_user: float
    lift: float | None = Field(description="vs the control on the primary metric")
    p_value: float | None


class ExperimentResults(BaseModel):
    model_config = ConfigDict(extra="allow")

    experiment: str
    status: str
    variants: list[VariantResult]
    srm_p_value: float | None
    verdict: str
