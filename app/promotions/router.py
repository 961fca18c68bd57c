"""GET /v1/campaigns/{campaign_id}/delivery (read scope)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from app.analytics.router import window
from app.deps import ContextDep, ReadKey, SessionDep
from app.models import ID_LENGTH, Campaign
from app.problems import Problem
from app.promotions import service
from app.promotions.schemas import Delivery
from app.recommendations.router import only_params

router = APIRouter(prefix="/v1", tags=["promotions"])
DEFAULT_DAYS = 30
PathId = Annotated[str, Path(min_length=1, max_length=ID_LENGTH)]
From = Annotated[
    datetime | None, Query(alias="from", description="RFC 3339; default: 30 days before `to`")
]
To = Annotated[datetime | None, Query(alias="to", description="RFC 3339; default: now")]


@router.get(
    "/campaigns/{campaign_id}/delivery",
    response_model=Delivery,
    response_model_by_alias=True,
    dependencies=[only_params("from", "to")],
)
async def delivery(
    ctx: ContextDep,
    session: SessionDep,
    _key: ReadKey,
    campaign_id: PathId,
    start: From = None,
    end: To = None,
) -> Any:
    """Sponsored impressions, clicks, CTR, attributed purchases and revenue, reach, cap hits
    and brand lift against the campaign's holdout."""
    row = await session.get(Campaign, campaign_id)
    if row is None:
        raise Problem(404, f"campaign '{campaign_id}' not found")
    if start is None:
        start = (end or datetime.now(UTC)) - timedelta(days=DEFAULT_DAYS)
    lo, hi = window(start, end)
    return await service.delivery(ctx, session, row, lo, hi)
