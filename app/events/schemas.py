"""The event contract (v1): what a storefront or ad server may send to POST /v1/events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.models import ID_LENGTH

Id = Annotated[str, StringConstraints(min_length=1, max_length=ID_LENGTH)]
EventType = Literal[
    "view",
    "click",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
    "rating",
    "ad_impression",
    "ad_click",
    "ad_conversion",
    "rec_impression",
    "rec_click",
]
ITEM_EVENTS = frozenset(
    {"view", "click", "add_to_cart", "remove_from_cart", "purchase", "rating", "rec_click"}
)
AD_EVENTS = frozenset({"ad_impression", "ad_click", "ad_conversion"})
REC_EVENTS = frozenset({"rec_impression", "rec_click"})
MAX_FUTURE = timedelta(days=1)


class EventIn(BaseModel):
    """One behaviour event. Field order matters: later validators read `type`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: Id
    user_id: Id
    type: EventType
    timestamp: AwareDatetime
    item_id: Id | None = Field(default=None, validate_default=True)
    campaign_id: Id | None = Field(default=None, validate_default=True)
    quantity: Annotated[int, Field(ge=0)] | None = None
    amount: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    value: Annotated[float, Field(allow_inf_nan=False)] | None = Field(
        default=None, validate_default=True
    )
    dwell_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    source: Annotated[str, StringConstraints(max_length=64)] | None = None
    context: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _campaign_from_context(cls, data: Any) -> Any:
        """A sponsored rec_impression/rec_click may name its campaign in `context`: store it
        in `campaign_id`, where frequency caps and the delivery report (indexed) look."""
        if (
            isinstance(data, dict)
            and data.get("type") in REC_EVENTS
            and data.get("campaign_id") is None
            and isinstance(data.get("context"), dict)
            and isinstance(data["context"].get("campaign_id"), str)
        ):
            return {**data, "campaign_id": data["context"]["campaign_id"]}
        return data

    @field_validator("timestamp")
    @classmethod
    def _not_far_future(cls, value: datetime) -> datetime:
        if value > datetime.now(UTC) + MAX_FUTURE:
            raise ValueError("timestamp is more than a day in the future")
        return value

    @field_validator("item_id")
    @classmethod
    def _item_events_need_item(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("type") in ITEM_EVENTS:
            raise ValueError(f"item_id is required for '{info.data['type']}' events")
        return value

    @field_validator("campaign_id")
    @classmethod
    def _ad_events_need_campaign(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("type") in AD_EVENTS:
            raise ValueError(f"campaign_id is required for '{info.data['type']}' events")
        return value

    @field_validator("value")
    @classmethod
    def _ratings_need_value(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is None and info.data.get("type") == "rating":
            raise ValueError("value is required for 'rating' events")
        return value


class IngestResult(BaseModel):
    accepted: int = Field(description="events newly stored by this request")
    duplicates: int = Field(description="events whose event_id was already stored")
