"""Delivery report of a campaign's promotion."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.catalog.schemas import Promotion


class BrandLift(BaseModel):
    exposed_users: int = Field(description="eligible shoppers served at least one placement")
    exposed_buyers: int = Field(description="of them, bought a campaign item afterwards")
    exposed_purchase_rate: float
    holdout_users: int = Field(description="eligible shoppers held out (shown nothing)")
    holdout_buyers: int
    holdout_purchase_rate: float
    lift: float | None = Field(description="exposed rate / holdout rate - 1")
    p_value: float | None = Field(description="two-sided, two-proportion z-test")


class BoostReport(BaseModel):
    model_config = ConfigDict(extra="allow")

    requested: float
    boost: float = Field(description="effective boost served with the live version")
    ndcg_drop: float | None = Field(description="relative NDCG@10 drop on the holdout")


class Delivery(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    campaign_id: str
    brand: str | None
    active: bool
    promotion: Promotion | None
    from_: datetime = Field(alias="from")
    to: datetime
    impressions: int = Field(description="rec_impression events carrying the campaign")
    clicks: int = Field(description="rec_click events carrying the campaign")
    ctr: float
    users_reached: int = Field(description="distinct shoppers with a sponsored impression")
    attributed_purchases: int
    attributed_revenue: float
    attribution_window_hours: float
    cap_hits: int = Field(description="requests where a frequency cap blocked a placement")
    brand_lift: BrandLift
    boost: BoostReport | None = Field(description="the worker's measured boost, if boosted")
