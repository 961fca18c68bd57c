"""This process's view of the live version's profile and ad metadata.

Follows the live pointer (checked at most once a second, at once after a rebuild in this
process) and keeps the small parts in memory: segment summary, predictions for brand-new
users, the scored campaigns and the cold-start ad row. A profile or ad lookup then costs one
cache round trip, and when the cache is down the endpoints still answer from this copy (and
from the database).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import orjson
from sqlalchemy import select

from app.cache import CacheUnavailable
from app.context import AppContext
from app.models import Campaign
from app.training.publish import LIVE_KEY, version_key

CHECK_EVERY = 1.0
DB_FALLBACK_TTL = 60.0
DEFAULT_CTR = 0.01  # campaigns scored before any model exists


@dataclass
class CampaignMeta:
    campaign_id: str
    column: int
    bid: float | None
    conversion_value: float
    raw: dict[str, Any]


class ProfileView:
    def __init__(self) -> None:
        self.version: int | None = None  # the live pointer, whether or not it has our parts
        self.loaded: int | None = None  # the version the fields below came from
        self.segments: list[dict[str, Any]] = []
        self.cold_profile: dict[str, Any] = {}
        self.campaigns: dict[str, CampaignMeta] = {}
        self.cold_ads = np.zeros((2, 0), np.float32)
        self.checked_at = -CHECK_EVERY
        self.db_checked_at = -DB_FALLBACK_TTL

    async def refresh(self, ctx: AppContext, *, force: bool = False) -> None:
        """Follow the live pointer; cheap when nothing moved, silent when the cache is down."""
        now = time.monotonic()
        if force or now - self.checked_at >= CHECK_EVERY:
            self.checked_at = now
            try:
                raw = await ctx.cache.run(lambda r: r.get(LIVE_KEY))
                if raw is not None:
                    self.version = int(raw)
                    if self.version != self.loaded:
                        await self._load(ctx, self.version)
            except CacheUnavailable:
                pass
        if self.loaded is None:
            await self._load_db_campaigns(ctx)

    async def _load(self, ctx: AppContext, version: int) -> None:
        async def op(client: Any) -> list[Any]:
            async with client.pipeline(transaction=False) as pipe:
                pipe.hgetall(version_key(version, "pmeta"))
                pipe.hgetall(version_key(version, "adm"))
                return list(await pipe.execute())

        pmeta, adm = await ctx.cache.run(op)
        try:
            segments = orjson.loads(pmeta[b"segments"])
            cold_profile = orjson.loads(pmeta[b"cold"])
            meta = orjson.loads(adm[b"campaigns"])
            cold = orjson.loads(adm[b"cold"])
        except (KeyError, TypeError, orjson.JSONDecodeError):
            return  # a version without (complete) profile parts: keep what we have
        self.segments, self.cold_profile = segments, cold_profile
        self.campaigns = {
            m["campaign_id"]: CampaignMeta(
                m["campaign_id"], col, m.get("bid"), float(m.get("conversion_value") or 0.0), m
            )
            for col, m in enumerate(meta)
        }
        self.cold_ads = np.array([cold["p_click"], cold["p_convert"]], dtype=np.float32)
        self.loaded = version

    async def _load_db_campaigns(self, ctx: AppContext) -> None:
        """Before the first model: active campaigns from the database, scored by a prior."""
        now = time.monotonic()
        if now - self.db_checked_at < DB_FALLBACK_TTL:
            return
        self.db_checked_at = now
        try:
            async with ctx.sessions() as session:
                rows = (
                    await session.execute(
                        select(Campaign.campaign_id, Campaign.bid)
                        .where(Campaign.active.is_(True))
                        .order_by(Campaign.campaign_id)
                    )
                ).all()
        except Exception:  # the database is down too: keep what we had
            return
        self.campaigns = {
            cid: CampaignMeta(cid, col, bid, 0.0, {"campaign_id": cid, "bid": bid})
            for col, (cid, bid) in enumerate(rows)
        }
        self.cold_ads = np.array(
            [[DEFAULT_CTR] * len(rows), [DEFAULT_CTR * 0.1] * len(rows)], dtype=np.float32
        )

    def expire(self, _version: int | None = None) -> None:
        """Re-read the pointer on the next request (a rebuild just went live here)."""
        self.checked_at = -CHECK_EVERY


async def hget(ctx: AppContext, version: int, part: str, field: str) -> bytes | None:
    """One field of a version's hash (raises CacheUnavailable)."""
    raw = await ctx.cache.run(lambda r: r.hget(version_key(version, part), field))
    return cast(bytes | None, raw)


async def hmget(ctx: AppContext, version: int, part: str, fields: list[str]) -> list[bytes | None]:
    """Several fields of a version's hash in one round trip (raises CacheUnavailable)."""
    raw = await ctx.cache.run(lambda r: r.hmget(version_key(version, part), fields))
    return cast(list[bytes | None], raw)


def get_profile_view(ctx: AppContext) -> ProfileView:
    view: ProfileView | None = ctx.extras.get("profile_view")
    if view is None:
        view = ctx.extras["profile_view"] = ProfileView()
        ctx.extras.setdefault("on_live", []).append(view.expire)
    return view
