"""Serving endpoints (read scope): user recommendations, similar items, popular items."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request

from app.cache import CacheUnavailable
from app.deps import ContextDep, ReadKey
from app.models import ID_LENGTH, Item
from app.problems import Problem
from app.recommendations import service
from app.recommendations.live_view import get_live_view
from app.recommendations.schemas import (
    PopularItems,
    Recommendations,
    RecommendedItem,
    SimilarItems,
)
from app.training.publish import version_key

router = APIRouter(prefix="/v1", tags=["recommendations"])
PathId = Annotated[str, Path(min_length=1, max_length=ID_LENGTH)]
Count = Annotated[int, Query(ge=1, le=service.MAX_N, description="how many items (1-100)")]
Label = Annotated[str | None, Query(min_length=1, max_length=ID_LENGTH)]


def only_params(*allowed: str):  # type: ignore[no-untyped-def]
    """Reject query parameters the endpoint does not know (typos would silently do nothing)."""

    def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - set(allowed))
        if unknown:
            raise Problem(
                422,
                f"unknown query parameter(s): {', '.join(unknown)}",
                errors=[{"field": name, "message": "unknown parameter"} for name in unknown],
            )

    return Depends(check)


@router.get(
    "/users/{user_id}/recommendations",
    response_model=Recommendations,
    dependencies=[only_params("n", "category", "brand", "kind", "exclude")],
)
async def user_recommendations(
    ctx: ContextDep,
    _key: ReadKey,
    user_id: PathId,
    n: Count = 10,
    category: Label = None,
    brand: Label = None,
    kind: Literal["product", "content"] | None = None,
    exclude: Annotated[
        list[str] | None, Query(description="item ids, repeated or comma separated")
    ] = None,
) -> Recommendations:
    """Personalised items for a shopper; unknown shoppers get cold-start items, never a 404."""
    excluded = {part for value in exclude or [] for part in value.split(",") if part}
    filters = service.Filters(category=category, brand=brand, kind=kind, exclude=excluded)
    return await service.recommend(ctx, user_id, n, filters)


@router.get(
    "/items/{item_id}/similar",
    response_model=SimilarItems,
    dependencies=[only_params("n")],
)
async def similar_items(
    ctx: ContextDep, _key: ReadKey, item_id: PathId, n: Count = 10
) -> SimilarItems:
    """Items like this one: co-behaviour for known items, content for new ones."""
    view = get_live_view(ctx)
    await view.refresh(ctx)
    neighbours: list[list[object]] = []
    if view.version is not None:
        try:
            blob = await ctx.cache.run(lambda r: r.hget(version_key(view.version, "sim"), item_id))
            neighbours = orjson.loads(blob) if blob else []
        except CacheUnavailable:
            neighbours = []
    items = [
        RecommendedItem(item_id=str(i), score=float(s), reason=f"similar to {item_id}")  # type: ignore[arg-type]
        for i, s in neighbours
        if i not in view.unavailable
    ][:n]
    if len(items) < n:
        async with ctx.sessions() as session:
            row = await session.get(Item, item_id)
        if row is None and not neighbours:
            raise Problem(404, f"item '{item_id}' not found")
        category = row.category if row is not None else None
        taken = {item_id} | {i.item_id for i in items}
        for other, score in view.popular_list(category) + view.popular_list(None):
            if len(items) >= n:
                break
            if other not in taken and other not in view.unavailable:
                taken.add(other)
                label = f"popular in {category}" if category else "popular now"
                items.append(RecommendedItem(item_id=other, score=score, reason=label))
    return SimilarItems(
        item_id=item_id, items=items, model_version=view.version, generated_at=datetime.now(UTC)
    )


@router.get(
    "/popular",
    response_model=PopularItems,
    dependencies=[only_params("n", "category", "window")],
)
async def popular(
    ctx: ContextDep,
    _key: ReadKey,
    n: Count = 10,
    category: Label = None,
    window: Annotated[
        Literal["1d", "7d", "30d", "all"], Query(description="popularity window")
    ] = "7d",
) -> PopularItems:
    """Most popular (or, with a short window, trending) items, overall or in a category."""
    view = get_live_view(ctx)
    await view.refresh(ctx)
    label = f"popular in {category}" if category else "popular"
    ranked = view.popular_list(category, window) if view.popular else view.popular_list(category)
    items = [
        RecommendedItem(item_id=i, score=s, reason=f"{label} ({window})")
        for i, s in ranked
        if i not in view.unavailable
    ][:n]
    return PopularItems(
        category=category,
        window=window,
        items=items,
        model_version=view.version,
        generated_at=datetime.now(UTC),
    )
