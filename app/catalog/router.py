"""Catalog endpoints: items, users and campaigns (batch upsert, read one)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel
from sqlalchemy.orm import DeclarativeBase

from app.batch import parse_batch, read_body_limited
from app.catalog import service
from app.catalog.schemas import (
    CampaignIn,
    CampaignOut,
    ItemIn,
    ItemOut,
    UpsertResult,
    UserIn,
    UserOut,
)
from app.deps import ContextDep, IngestKey, ReadKey, SessionDep, SettingsDep
from app.models import ID_LENGTH, Campaign, Item, User
from app.problems import Problem
from app.promotions.store import publish_settings
from app.recommendations.availability import apply_availability, note_items

router = APIRouter(prefix="/v1", tags=["catalog"])
# Annotated (not a shared `= Path(...)` default): FastAPI copies it per parameter, whereas one
# shared Path() instance takes the first endpoint's parameter name for all of them.
PathId = Annotated[str, Path(min_length=1, max_length=ID_LENGTH)]


def _array_body(schema: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "array", "items": ref}}},
        }
    }


async def _upsert_batch(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    schema: type[BaseModel],
    model: type[DeclarativeBase],
    key: str,
) -> tuple[UpsertResult, list[Any]]:
    body = await read_body_limited(request, settings.max_body_bytes)
    rows = parse_batch(body, schema, settings.max_catalog_batch)
    return UpsertResult(upserted=await service.upsert(session, model, key, rows)), rows


async def _get_or_404(session: SessionDep, model: type[DeclarativeBase], ident: str) -> Any:
    row = await session.get(model, ident)
    if row is None:
        raise Problem(404, f"{model.__tablename__[:-1]} '{ident}' not found")
    return row


@router.post("/items", response_model=UpsertResult, openapi_extra=_array_body("ItemIn"))
async def upsert_items(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    ctx: ContextDep,
    _key: IngestKey,
) -> UpsertResult:
    """Create or update up to 1000 items by item_id."""
    result, rows = await _upsert_batch(request, session, settings, ItemIn, Item, "item_id")
    # Availability is enforced at serve time, so a sold-out item leaves every list at once.
    changes = {r.item_id: r.available for r in rows if r.available is not None}
    await apply_availability(ctx, changes)
    await note_items(ctx, [r.item_id for r in rows])
    return result


@router.get("/items/{item_id}", response_model=ItemOut)
async def get_item(session: SessionDep, _key: ReadKey, item_id: PathId) -> ItemOut:
    row = await _get_or_404(session, Item, item_id)
    return ItemOut(
        item_id=row.item_id,
        title=row.title,
        category=row.category,
        brand=row.brand,
        price=row.price,
        tags=row.tags or [],
        kind=row.kind,
        available=row.available,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.post("/users", response_model=UpsertResult, openapi_extra=_array_body("UserIn"))
async def upsert_users(
    request: Request, session: SessionDep, settings: SettingsDep, _key: IngestKey
) -> UpsertResult:
    """Create or update up to 1000 users by user_id."""
    result, _ = await _upsert_batch(request, session, settings, UserIn, User, "user_id")
    return result


@router.get("/users/{user_id}", response_model=UserOut)
async def get_user(session: SessionDep, _key: ReadKey, user_id: PathId) -> UserOut:
    row = await _get_or_404(session, User, user_id)
    return UserOut(
        user_id=row.user_id,
        attributes=row.attributes or {},
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.post("/campaigns", response_model=UpsertResult, openapi_extra=_array_body("CampaignIn"))
async def upsert_campaigns(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    ctx: ContextDep,
    _key: IngestKey,
) -> UpsertResult:
    """Create or update up to 1000 ad campaigns by campaign_id."""
    result, rows = await _upsert_batch(
        request, session, settings, CampaignIn, Campaign, "campaign_id"
    )
    # Promotion settings reach every API process within a second (cache + epoch).
    cleared = [r.campaign_id for r in rows if "promotion" in r.model_fields_set and not r.promotion]
    await publish_settings(ctx.cache, session, sorted({r.campaign_id for r in rows}), cleared)
    return result


@router.get("/campaigns/{campaign_id}", response_model=CampaignOut)
async def get_campaign(session: SessionDep, _key: ReadKey, campaign_id: PathId) -> CampaignOut:
    row = await _get_or_404(session, Campaign, campaign_id)
    return CampaignOut(
        campaign_id=row.campaign_id,
        brand=row.brand,
        category=row.category,
        item_ids=row.item_ids or [],
        bid=row.bid,
        budget=row.budget,
        active=row.active,
        promotion=row.promotion,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
