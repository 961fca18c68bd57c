"""Catalog contract (v1): items, users and ad campaigns, each upserted by its id."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from app.events.schemas import Id

Text = Annotated[str, StringConstraints(max_length=1024)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Money = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Scalar = str | int | float | bool | None


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    item_id: Id
    title: Text | None = None
    category: Label | None = None
    brand: Label | None = None
    price: Money | None = None
    tags: Annotated[list[Label], Field(max_length=100)] | None = None
    kind: Literal["product", "content"] | None = None
    available: bool | None = None


class ItemOut(BaseModel):
    item_id: str
    title: str | None
    category: str | None
    brand: str | None
    price: float | None
    tags: list[str]
    kind: str
    available: bool
    created_at: datetime
    updated_at: datetime


class UserIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user_id: Id
    attributes: Annotated[dict[Label, Scalar], Field(max_length=200)] | None = None


class UserOut(BaseModel):
    user_id: str
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class FrequencyCap(BaseModel):
    impressions: Annotated[int, Field(ge=1)]
    per_hours: Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Promotion(BaseModel):
    """How a campaign may place its items into recommendation lists."""

    slots: Annotated[int, Field(ge=0, le=50)] = 1
    share: Annotated[float, Field(ge=0, le=0.5)] = 0.2
    min_relevance: Annotated[float, Field(ge=0, le=1)] = 0.0
    boost: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None = None
    frequency_cap: FrequencyCap | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    campaign_id: Id
    brand: Label | None = None
    category: Label | None = None
    item_ids: Annotated[list[Id], Field(max_length=10_000)] | None = None
    bid: Money | None = None
    budget: Money | None = None
    active: bool | None = None
    promotion: Promotion | None = None


class CampaignOut(BaseModel):
    campaign_id: str
    brand: str | None
    category: str | None
    item_ids: list[str]
    bid: float | None
    budget: float | None
    active: bool
    promotion: Promotion | None
    created_at: datetime
    updated_at: datetime


class UpsertResult(BaseModel):
    upserted: int = Field(description="rows created or updated")
