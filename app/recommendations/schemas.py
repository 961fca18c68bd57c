"""Recommendation responses."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Strategy = Literal["personalised", "cold-start", "popular-fallback", "popular", "trending"]


class RecommendedItem(BaseModel):
    item_id: str
    score: float
    reason: str
    sponsored: bool = Field(
        default=False,
        description="placed by a campaign's promotion (label it); absent on organic items",
    )
    campaign_id: str | None = Field(
        default=None,
        description="the campaign that placed (sponsored) or boosted the item; else absent",
    )


class Recommendations(BaseModel):
    user_id: str
    items: list[RecommendedItem]
    model_version: int | None = Field(description="live model version; null before the first")
    strategy: Strategy
    generated_at: datetime
    request_id: str = Field(description="send it back in rec_impression/rec_click context")
    experiment: str | None = Field(
        default=None, description="the experiment running on this surface, if any"
    )
    variant: str | None = Field(default=None, description="the user's group in it")


class SimilarItems(BaseModel):
    item_id: str
    items: list[RecommendedItem]
    model_version: int | None
    generated_at: datetime


class PopularItems(BaseModel):
    category: str | None
    window: str
    items: list[RecommendedItem]
    model_version: int | None
    generated_at: datetime
