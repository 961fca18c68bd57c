"""Analytics endpoints (read scope): recommendation feedback and campaign performance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from app.analytics import service
from app.analytics.schemas import CampaignAnalytics, RecommendationAnalytics
from app.deps import ContextDep, ReadKey
from app.models import ID_LENGTH
from app.problems import Problem
from app.recommendations.router import only_params

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])
DEFAULT_DAYS = 7
From = Annotated[
    datetime | None, Query(alias="from", description="RFC 3339; default: 7 days before `to`")
]
To = Annotated[datetime | None, Query(alias="to", description="RFC 3339; default: now")]


def window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """[from, to) with defaults; offsets required, from before to."""
    for name, value in (("from", start), ("to", end)):
        if value is not None and value.tzinfo is None:
            raise Problem(
                422,
                f"{name} needs a UTC offset",
                errors=[{"field": name, "message": "timestamp without offset (add Z)"}],
            )
    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=DEFAULT_DAYS)
    if start >= end:
        raise Problem(422, "from must be before to", errors=[{"field": "from", "message":
                                                               "not before to"}])  # fmt: skip
    return start, end


@router.get(
    "/recommendations",
    response_model=RecommendationAnalytics,
    dependencies=[only_params("from", "to", "group_by")],
)
async def recommendations(
    ctx: ContextDep,
    _key: ReadKey,
    start: From = None,
    end: To = None,
    group_by: Annotated[
        Literal["strategy", "model_version", "variant"], Query(description="grouping")
    ] = "strategy",
) -> Any:
    """Impressions, clicks, CTR, attributed conversions and revenue per serving group.

    Counted per hour (the window is widened to whole hours); conversions are purchases of a
    recommended item by the same user within the attribution window after the list was served.
    """
    start, end = window(start, end)
    done = await service.catch_up(ctx, budget=service.request_budget(ctx))
    async with ctx.sessions() as session:
        report = await service.recommendations_report(session, start, end, group_by)
    report["attribution_window_hours"] = ctx.settings.attribution_window_hours
    report["up_to_date"] = done["up_to_date"]
    return report


@router.get(
    "/campaigns",
    response_model=CampaignAnalytics,
    dependencies=[only_params("from", "to", "campaign_id", "group_by")],
)
async def campaigns(
    ctx: ContextDep,
    _key: ReadKey,
    start: From = None,
    end: To = None,
    campaign_id: Annotated[
        list[str] | None, Query(description="only these campaigns (repeat the parameter)")
    ] = None,
    group_by: Annotated[
        Literal["campaign", "brand"], Query(description="one row per campaign or per brand")
    ] = "campaign",
) -> Any:
    """Ad impressions, clicks, CTR, conversions and, where the bid is known, spend and return;
    counted per hour (the window is widened to whole hours)."""
    start, end = window(start, end)
    if any(not c or len(c) > ID_LENGTH for c in campaign_id or []):
        raise Problem(
            422,
            "invalid campaign_id",
            errors=[{"field": "campaign_id", "message": f"1 to {ID_LENGTH} characters"}],
        )
    done = await service.catch_up(ctx, budget=service.request_budget(ctx))
    async with ctx.sessions() as session:
        report = await service.campaigns_report(session, start, end, campaign_id or [])
    if group_by == "brand":
        report = service.by_brand(report)
    report["up_to_date"] = done["up_to_date"]
    return report
