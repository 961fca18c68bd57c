"""Serving endpoints (read scope): user recommendations, similar items, popular items."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.cache import CacheUnavailable
from app.context import AppContext
from app.deps import ContextDep, ReadKey, add_plain_get, api_key_header, authorize
from app.models import ID_LENGTH, Item
from app.problems import Problem, validation_errors
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


def only_params(*allowed: str) -> Any:
    """Reject query parameters the endpoint does not know (typos would silently do nothing)."""

    async def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - set(allowed))
        if unknown:
            raise Problem(
                422,
                f"unknown query parameter(s): {', '.join(unknown)}",
                errors=[{"field": name, "message": "unknown parameter"} for name in unknown],
            )

    return Depends(check)


class RecommendationQuery(BaseModel):
    """Query parameters of GET /v1/users/{user_id}/recommendations; unknown ones are errors."""

    model_config = ConfigDict(extra="forbid")

    n: Annotated[int, Field(ge=1, le=service.MAX_N, description="how many items (1-100)")] = 10
    category: Annotated[str, Field(min_length=1, max_length=ID_LENGTH)] | None = None
    brand: Annotated[str, Field(min_length=1, max_length=ID_LENGTH)] | None = None
    kind: Literal["product", "content"] | None = None
    exclude: list[str] = Field(default=[], description="item ids, repeated or comma separated")


def _query_docs(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    return {
        "parameters": [
            {"name": name, "in": "query", "required": False, "schema": prop}
            for name, prop in schema["properties"].items()
        ]
    }


def parse_query(request: Request, model: type[BaseModel], lists: tuple[str, ...] = ()) -> Any:
    """Validate query parameters against `model` (422 problem naming each bad field)."""
    params = request.query_params
    data: dict[str, Any] = {k: v for k, v in params.items() if k not in lists}
    for name in lists:
        if name in params:
            data[name] = [p for v in params.getlist(name) for p in v.split(",") if p]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = validation_errors(exc.errors(include_url=False))
        fields = ", ".join(sorted({e["field"] for e in errors}))
        raise Problem(422, f"invalid query: {fields}", errors=errors) from None


async def serve_recommendations(request: Request) -> Response:
    """Personalised items for a shopper; unknown shoppers get cold-start items, never a 404."""
    ctx: AppContext = request.app.state.ctx
    authorize(ctx, request, request.headers.get("x-api-key"), "read")
    user_id: str = request.path_params["user_id"]
    if not 0 < len(user_id) <= ID_LENGTH:
        raise Problem(
            422,
            "invalid path: user_id",
            errors=[{"field": "user_id", "message": f"1 to {ID_LENGTH} characters"}],
        )
    n = _plain_n(request)
    if n is not None:  # the storefront's usual call: nothing else to validate
        body = await service.recommend(ctx, user_id, n, service.Filters())
    else:
        query: RecommendationQuery = parse_query(request, RecommendationQuery, lists=("exclude",))
        filters = service.Filters(
            category=query.category, brand=query.brand, kind=query.kind, exclude=set(query.exclude)
        )
        body = await service.recommend(ctx, user_id, query.n, filters)
    return Response(orjson.dumps(body, option=orjson.OPT_UTC_Z), media_type="application/json")


def _plain_n(request: Request) -> int | None:
    """n when the query is empty or only a valid `n` (a few percent of the request's CPU saved
    over the pydantic model); None sends anything else through RecommendationQuery."""
    raw: bytes = request.scope.get("query_string", b"")
    if not raw:
        return 10
    if raw.startswith(b"n=") and raw[2:].isdigit() and len(raw) <= 5:
        n = int(raw[2:])
        return n if 1 <= n <= service.MAX_N else None
    return None


# The hottest endpoint: a plain Starlette route, registered before the documented one below so
# it answers the GETs. It skips FastAPI's dependency solving (a fifth of the CPU of a request,
# measured with py-spy under wrk); parameters are validated by one pydantic model and the body
# serialised with orjson.
add_plain_get(router, "/v1/users/{user_id}/recommendations", serve_recommendations)


@router.get(
    "/users/{user_id}/recommendations",
    response_model=Recommendations,
    openapi_extra=_query_docs(RecommendationQuery),
)
async def user_recommendations(
    request: Request,
    user_id: PathId,
    _api_key: Annotated[str | None, Depends(api_key_header)] = None,
) -> Response:
    """Personalised items for a shopper; unknown shoppers get cold-start items, never a 404.
    (Documents the contract; the plain route above serves it.)
    """
    return await serve_recommendations(request)


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
        sim_key = version_key(view.version, "sim")
        try:
            blob: Any = await ctx.cache.run(lambda r: r.hget(sim_key, item_id))
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
