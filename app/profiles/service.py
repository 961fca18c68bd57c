"""Reading profiles and segments: the live version in the cache, the database as fallback."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from sqlalchemy import func, select

from app.cache import CacheUnavailable
from app.context import AppContext
from app.metrics import cache_outcome
from app.models import ModelRun, User, UserProfile
from app.problems import Problem
from app.profiles.view import ProfileView, get_profile_view, hget
from app.training.segments import SEGMENTS


async def profile_body(ctx: AppContext, user_id: str) -> bytes:
    """The profile as JSON bytes: one HGET, or the database when the cache cannot answer."""
    view = get_profile_view(ctx)
    await view.refresh(ctx)
    version = view.version
    if version is not None:
        try:
            raw = await hget(ctx, version, "prof", user_id)
            cache_outcome("hit" if raw else "miss").inc()
            if raw:
                return raw
        except CacheUnavailable:
            cache_outcome("fallback").inc()
    return orjson.dumps(await profile_from_database(ctx, view, user_id))


async def profile_from_database(ctx: AppContext, view: ProfileView, user_id: str) -> dict[str, Any]:
    """The stored profile, or for a shopper created since the last rebuild one made from
    attributes with low-confidence predictions; 404 for a user nobody sent."""
    async with ctx.sessions() as session:
        row = (
            await session.execute(
                select(User.attributes, UserProfile)
                .outerjoin(UserProfile, UserProfile.user_id == User.user_id)
                .where(User.user_id == user_id)
            )
        ).first()
    if row is None:
        raise Problem(404, f"user '{user_id}' not found")
    attributes, stored = row
    body: dict[str, Any] = {"user_id": user_id, "attributes": attributes or {}}
    if stored is not None:
        body["segment"] = stored.segment
        body.update(stored.features or {})
        body.update(stored.predictions or {})
        body["updated_at"] = stored.updated_at
        body["model_version"] = stored.version
        return body
    cold = view.cold_profile
    body.update(
        rfm={"recency_days": None, "frequency": 0, "monetary": 0.0},
        segment="new",
        top_categories=[],
        top_brands=[],
        price_sensitivity=None,
        avg_dwell_seconds=None,
        predicted_spend_30d=cold.get("predicted_spend_30d"),
        churn_probability=cold.get("churn_probability"),
        confidence="low",
        top_factors={},
        events=0,
        updated_at=None,
        model_version=view.loaded,
    )
    return body


async def segment_list(ctx: AppContext) -> dict[str, Any]:
    """Segments with sizes and mean features of the live version."""
    view = get_profile_view(ctx)
    await view.refresh(ctx)
    if view.segments:
        return {"model_version": view.loaded, "segments": view.segments}
    async with ctx.sessions() as session:
        run = await session.scalar(
            select(ModelRun).where(ModelRun.status == "live").order_by(ModelRun.version.desc())
        )
        stored = ((run.metrics or {}).get("profiles") or {}).get("segments") if run else None
        if stored:
            return {"model_version": run.version, "segments": stored}  # type: ignore[union-attr]
        grouped = await session.execute(
            select(UserProfile.segment, func.count()).group_by(UserProfile.segment)
        )
        counts = {str(name): int(size) for name, size in grouped.all()}
    total = max(sum(counts.values()), 1)
    return {
        "model_version": None,
        "segments": [
            {
                "name": name,
                "description": text,
                "size": counts.get(name, 0),
                "share": round(counts.get(name, 0) / total, 4),
                "mean": {},
            }
            for name, text in SEGMENTS.items()
        ],
    }


def encode_cursor(user_id: str) -> str:
    return base64.urlsafe_b64encode(user_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        user_id = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
        if not user_id:
            raise ValueError("empty cursor")
        return user_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Problem(
            422, "invalid cursor", errors=[{"field": "cursor", "message": "not a cursor"}]
        ) from None


async def segment_page(
    ctx: AppContext, name: str, limit: int, cursor: str | None
) -> dict[str, Any]:
    """One page of a segment's members in user_id order (an index range scan)."""
    if name not in SEGMENTS:
        raise Problem(404, f"segment '{name}' not found; see GET /v1/segments")
    stmt = select(UserProfile.user_id, UserProfile.features, UserProfile.predictions).where(
        UserProfile.segment == name
    )
    if cursor:
        stmt = stmt.where(UserProfile.user_id > decode_cursor(cursor))
    async with ctx.sessions() as session:
        rows = (await session.execute(stmt.order_by(UserProfile.user_id).limit(limit + 1))).all()
    users = [
        {
            "user_id": user_id,
            "predicted_spend_30d": (predictions or {}).get("predicted_spend_30d"),
            "churn_probability": (predictions or {}).get("churn_probability"),
            "recency_days": ((features or {}).get("rfm") or {}).get("recency_days"),
        }
        for user_id, features, predictions in rows[:limit]
    ]
    more = len(rows) > limit
    return {
        "segment": name,
        "users": users,
        "next_cursor": encode_cursor(users[-1]["user_id"]) if more else None,
    }
