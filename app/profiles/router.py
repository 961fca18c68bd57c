"""Profile and segment endpoints (read scope)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from app.deps import ContextDep, ReadKey
from app.models import ID_LENGTH
from app.profiles import service
from app.profiles.schemas import Profile, SegmentList, SegmentPage
from app.recommendations.router import only_params

router = APIRouter(prefix="/v1", tags=["profiles"])
PathId = Annotated[str, Path(min_length=1, max_length=ID_LENGTH)]


@router.get("/users/{user_id}/profile", response_model=Profile, dependencies=[only_params()])
async def user_profile(ctx: ContextDep, _key: ReadKey, user_id: PathId) -> Response:
    """Who the shopper is: RFM, segment, top categories and brands, price sensitivity, dwell,
    predicted 30-day spend and churn probability (with their strongest factors).

    Users with no events get a profile from their attributes, marked low-confidence; a user
    never sent to the service is a 404.
    """
    body = await service.profile_body(ctx, user_id)
    return Response(body, media_type="application/json")


@router.get("/segments", response_model=SegmentList, dependencies=[only_params()])
async def segments(ctx: ContextDep, _key: ReadKey) -> SegmentList:
    """RFM segments of the live version with their sizes and mean features."""
    return SegmentList.model_validate(await service.segment_list(ctx))


@router.get(
    "/segments/{name}/users",
    response_model=SegmentPage,
    dependencies=[only_params("limit", "cursor")],
)
async def segment_users(
    ctx: ContextDep,
    _key: ReadKey,
    name: Annotated[str, Path(min_length=1, max_length=32)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(min_length=1, max_length=1024)] = None,
) -> SegmentPage:
    """A page of a segment's members in user id order; follow `next_cursor` for the rest."""
    return SegmentPage.model_validate(await service.segment_page(ctx, name, limit, cursor))
