"""Profile and segment responses."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class RFM(BaseModel):
    recency_days: float | None = Field(description="days since the last item event; null: none")
    frequency: int = Field(description="purchases")
    monetary: float = Field(description="total purchase amount")


class CategoryAffinity(BaseModel):
    category: str
    affinity: float = Field(description="share of the shopper's weighted, decayed events")


class BrandAffinity(BaseModel):
    brand: str
    affinity: float


class Factor(BaseModel):
    feature: str
    contribution: float = Field(
        description="push of this feature away from the average shopper (spend: currency; "
        "churn: log-odds), from the linear model"
    )


class Profile(BaseModel):
    user_id: str
    attributes: dict[str, Any]
    rfm: RFM
    segment: str
    top_categories: list[CategoryAffinity]
    top_brands: list[BrandAffinity]
    price_sensitivity: float | None = Field(
        description="how much cheaper than what they browse a shopper buys (log price ratio "
        "to the category median); > 0 price sensitive; null: no purchases yet"
    )
    avg_dwell_seconds: float | None
    predicted_spend_30d: float | None
    churn_probability: float | None
    confidence: Literal["low", "normal"] = Field(
        description="low: few or no events (profile from attributes) or no trained model"
    )
    top_factors: dict[str, list[Factor]] = Field(default_factory=dict)
    events: int = 0
    updated_at: datetime | None
    model_version: int | None


class Segment(BaseModel):
    name: str
    description: str
    size: int
    share: float
    mean: dict[str, float | None]


class SegmentList(BaseModel):
    model_version: int | None
    segments: list[Segment]


class SegmentMember(BaseModel):
    user_id: str
    predicted_spend_30d: float | None
    churn_probability: float | None
    recency_days: float | None


class SegmentPage(BaseModel):
    segment: str
    users: list[SegmentMember]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null: end")
