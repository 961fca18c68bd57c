"""This process's view of the live model: pointer, item metadata and popular lists.

The API keeps the small, shared parts of the live version in memory (refreshed when the
pointer moves, checked at most once a second) so a request costs one cache round trip, and
so recommendations keep flowing from memory when the cache is down.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import func, select

from app.cache import Cache, CacheUnavailable, key
from app.context import AppContext
from app.metrics import cache_outcome
from app.models import Event, Item
from app.promotions import view as promotions
from app.promotions.store import EPOCH_KEY as PROMO_EPOCH_KEY
from app.training.publish import LIVE_KEY, version_key

UNAVAILABLE_KEY = key("catalog", "unavailable")
CATALOG_EPOCH_KEY = key("catalog", "epoch")
CHECK_EVERY = 1.0
DB_FALLBACK_TTL = 60.0


class LiveView:
    def __init__(self) -> None:
        self.version: int | None = None
        self.has_top = False
        self.meta: dict[str, tuple[str | None, str | None, str]] = {}
        self.popular: dict[str, list[tuple[str, float]]] = {}
        self.unavailable: set[str] = set()
        self.epoch: object = None
        self.promotions: list[promotions.Promo] = []
        self.promo_epoch: object = None
        self.promo_version: int | None = None
        self.checked_at = 0.0
        self.db_popular: list[tuple[str, float]] = []
        self.db_popular_at = -DB_FALLBACK_TTL

    async def refresh(self, ctx: AppContext, *, force: bool = False) -> None:
        """Follow the live pointer and the catalog epoch; cheap when nothing moved."""
        now = time.monotonic()
        if not force and now - self.checked_at < CHECK_EVERY:
            return
        self.checked_at = now
        cache = ctx.cache
        try:
            raw_version, epoch, promo_epoch = await cache.run(
                lambda r: r.mget(LIVE_KEY, CATALOG_EPOCH_KEY, PROMO_EPOCH_KEY)
            )
            if raw_version is not None and int(raw_version) != self.version:
                await self._load_version(cache, int(raw_version))
            if epoch != self.epoch:
                members = await cache.run(lambda r: r.smembers(UNAVAILABLE_KEY))
                self.unavailable = {m.decode() if isinstance(m, bytes) else m for m in members}
                self.epoch = epoch
            if promo_epoch != self.promo_epoch or self.promo_version != self.version:
                # Settings changed (POST /v1/campaigns, a rebuild) or a new version brought
                # new ad-score columns, boosts and brand items.
                self.promotions = await promotions.load(
                    cache, self.version, self.meta, self.popular_list(None)
                )
                self.promo_epoch, self.promo_version = promo_epoch, self.version
        except CacheUnavailable:
            cache_outcome("fallback").inc()
        if self.version is None:
            await self._load_db_popular(ctx)

    async def _load_version(self, cache: Cache, version: int) -> None:
        meta_raw, pop_raw, has_top = await cache.run(lambda r: _version_parts(r, version))
        if not meta_raw and not pop_raw:
            return  # the pointer moved to a version that is gone: keep what we have
        # Versions published before the "top" part existed are served from "recs" alone.
        self.has_top = bool(has_top)
        self.meta = {}
        for item_id, blob in meta_raw.items():
            m = orjson.loads(blob)
            self.meta[item_id.decode()] = (m.get("c"), m.get("b"), m.get("k") or "product")
        self.popular = {
            name.decode(): [(i, float(s)) for i, s in orjson.loads(blob)]
            for name, blob in pop_raw.items()
        }
        self.version = version

    async def _load_db_popular(self, ctx: AppContext) -> None:
        """Before the first model (or with no cache ever seen): popular straight from SQL."""
        now = time.monotonic()
        if now - self.db_popular_at < DB_FALLBACK_TTL:
            return
        self.db_popular_at = now
        try:
            async with ctx.sessions() as session:
                counts = await session.execute(
                    select(Event.item_id, func.count())
                    .join(Item, Item.item_id == Event.item_id)
                    .where(Item.available.is_(True))
                    .group_by(Event.item_id)
                    .order_by(func.count().desc())
                    .limit(200)
                )
                rows = [(str(i), float(c)) for i, c in counts]
                if len(rows) < 200:
                    extra = await session.scalars(
                        select(Item.item_id).where(Item.available.is_(True)).limit(200)
                    )
                    known = {i for i, _ in rows}
                    rows += [(i, 0.0) for i in extra if i not in known][: 200 - len(rows)]
                self.db_popular = rows
        except Exception:  # database down too: keep the last list we had
            return

    def popular_list(self, category: str | None, window: str = "30d") -> list[tuple[str, float]]:
        """Popular items for a category (or all), from the live version or the SQL fallback."""
        if self.popular:
            return self.popular.get(f"{window}|{category or '*'}", [])
        if category is None:
            return self.db_popular
        return []

    def expire(self, _version: int | None = None) -> None:
        """Re-read the pointer on the next request (a rebuild just went live here)."""
        self.checked_at = 0.0

    def mark_availability(self, available: dict[str, bool]) -> None:
        """Apply availability changes made by this process at once."""
        for item_id, is_available in available.items():
            if is_available:
                self.unavailable.discard(item_id)
            else:
                self.unavailable.add(item_id)


async def _version_parts(client: Any, version: int) -> tuple[Any, ...]:
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(version_key(version, "meta"))
        pipe.hgetall(version_key(version, "pop"))
        pipe.exists(version_key(version, "top"))
        return tuple(await pipe.execute())


def get_live_view(ctx: AppContext) -> LiveView:
    view = ctx.extras.get("live_view")
    if view is None:
        view = ctx.extras["live_view"] = LiveView()
        ctx.extras.setdefault("on_live", []).append(view.expire)
    assert isinstance(view, LiveView)
    return view
