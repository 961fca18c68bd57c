"""Ad scoring, audience and allocation requests and responses."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.models import ID_LENGTH

MAX_BULK_USERS = 1000
MAX_CAMPAIGNS = 100
Id = Annotated[str, StringConstraints(min_length=1, max_length=ID_LENGTH)]
Strategy = Literal["personalised", "cold-start", "fallback", "baseline"]


class CampaignScore(BaseModel):
    campaign_id: str
    p_click: float = Field(description="probability the shopper clicks an impression")
    p_convert: float = Field(description="probability an impression leads to a conversion")
    expected_value: float = Field(
        description="p_click x bid (cost per click); without a bid, p_convert x the "
        "campaign's expected conversion value"
    )


class AdScores(BaseModel):
    user_id: str
    model_version: int | None
    strategy: Strategy = Field(
        description="personalised: the shopper's published scores; cold-start: a shopper "
        "with no history, scored from campaign priors; fallback: the cache is unreachable; "
        "baseline: campaign priors for an experiment's holdout group"
    )
    scores: list[CampaignScore] = Field(description="best expected value first")
    unknown: list[str] = Field(description="asked campaigns the live model has no scores for")
    request_id: str = Field(description="send it back in ad event context")
    experiment: str | None = Field(
        default=None, description="the experiment running on the ads surface, if any"
    )
    variant: str | None = Field(
        default=None, description="the shopper's group in it (apply its params)"
    )


class BulkScoresIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_ids: list[Id] = Field(min_length=1)
    campaign_ids: list[Id] = Field(default_factory=list, description="empty: every campaign")


class UserScores(BaseModel):
    user_id: str
    strategy: Strategy
    scores: list[CampaignScore]
    request_id: str
    experiment: str | None = None
    variant: str | None = None


class BulkScores(BaseModel):
    model_version: int | None
    results: list[UserScores]
    unknown: list[str]


class AudienceMember(BaseModel):
    user_id: str
    p_click: float
    p_convert: float
    buyer: bool = Field(description="has bought the campaign's brand before")


class Audience(BaseModel):
    campaign_id: str
    model_version: int | None
    users: list[AudienceMember] = Field(
        description="prospects (never bought the brand) first, each group best first"
    )
    prospects: int
    buyers: int


class Allocation(BaseModel):
    campaign_id: str
    amount: float
    share: float
    expected_return: float
    expected_clicks: float
    expected_conversions: float
    roi_first_unit: float = Field(description="expected return per unit of spend at the start")
    marginal_roi: float = Field(description="expected return of the last unit allocated")
    capped: bool = Field(description="the campaign's own budget limited its allocation")
    explanation: str


class AllocationPlan(BaseModel):
    budget: float
    model_version: int | None
    allocated: float
    unallocated: float
    expected_return: float
    campaigns: list[Allocation]
