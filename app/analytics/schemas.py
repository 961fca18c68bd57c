"""Analytics answers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Rates(BaseModel):
    model_config = ConfigDict(extra="allow")

    impressions: int
    clicks: int
    ctr: float | None = Field(description="clicks / impressions")
    conversions: int = Field(description="attributed purchases")
    conversion_rate: float | None = Field(description="conversions / impressions")
    revenue: float = Field(description="attributed revenue")


class RecommendationGroup(Rates):
    strategy: str | None = None
    model_version: int | None = None
    experiment: str | None = None
    variant: str | None = None


class RecommendationAnalytics(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: datetime = Field(alias="from")
    to: datetime
    group_by: str
    attribution_window_hours: float
    groups: list[RecommendationGroup]
    totals: Rates
    up_to_date: bool = Field(description="false: the worker is still folding older feedback")


class CampaignStats(BaseModel):
    campaign_id: str
    brand: str | None
    impressions: int
    clicks: int
    ctr: float | None
    conversions: int
    conversion_rate: float | None = Field(description="conversions / clicks")
    revenue: float
    bid: float | None = Field(description="cost per click")
    spend: float | None = Field(description="clicks x bid, when the bid is known")
    return_on_spend: float | None = Field(description="revenue / spend")
    conversions_per_spend: float | None


class BrandStats(BaseModel):
    brand: str | None = Field(description="null: campaigns without a brand, or unknown ones")
    campaigns: int
    campaigns_with_bid: int = Field(description="campaigns whose spend and return are counted")
    impressions: int
    clicks: int
    ctr: float | None
    conversions: int
    conversion_rate: float | None = Field(description="conversions / clicks")
    revenue: float
    spend: float | None = Field(description="summed over the campaigns with a known bid")
    return_on_spend: float | None = Field(
        description="revenue of the campaigns with a known bid / their spend"
    )
    conversions_per_spend: float | None


class CampaignAnalytics(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: datetime = Field(alias="from")
    to: datetime
    group_by: Literal["campaign", "brand"] = "campaign"
    campaigns: list[CampaignStats] | None = Field(
        default=None, description="group_by=campaign: one row per campaign"
    )
    brands: list[BrandStats] | None = Field(
        default=None, description="group_by=brand: the campaigns summed per brand"
    )
    up_to_date: bool = Field(description="false: the worker is still folding older feedback")
