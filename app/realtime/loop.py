"""The real-time loop: drain the dirty-user queue, republish those users' lists and ad scores."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import select

from app.cache import CacheUnavailable
from app.config import Settings
from app.context import AppContext
from app.logging import get_logger
from app.metrics import REALTIME_UPDATES
from app.models import Item
from app.realtime.ads import ad_rows
from app.realtime.queue import (
    NEW_ITEMS_KEY,
    UPDATED_KEY,
    move_database_marks,
    pop_dirty,
    queue_stats,
    requeue,
)
from app.realtime.recompute import (
    LiveModel,
    batch_payloads,
    load_user_events,
    register_new_items,
    score_batch,
)
from app.recommendations.live_view import UNAVAILABLE_KEY
from app.training.dataset import Interactions
from app.training.publish import live_version, version_key

log = get_logger(__name__)
BATCH_USERS = 200
# A pass starts at most this often unless the last one was full (a backlog drains at once):
# each pass has a fixed cost (cache round trips, a query, a thread hop, ~2 ms of CPU), so
# under a steady trickle of events batches gather ~0.1 s of shoppers instead of a few each.
PASS_INTERVAL = 0.1
# Marks land in the database only while the cache is down: looking for them once a second,
# not on every pass (20 a second when idle), spares Postgres a query per pass.
MARKS_INTERVAL = 1.0
MARKS_CHECKED = "realtime_marks_checked_at"  # ctx.extras key


def current_model(ctx: AppContext) -> LiveModel | None:
    """The model this process published last, if any (set by the rebuild pipeline)."""
    model = ctx.extras.get("realtime_model")
    return model if isinstance(model, LiveModel) else None


async def process_new_items(ctx: AppContext, live: LiveModel) -> int:
    """Give items added since the build content neighbours, served at once by /similar."""
    raw = await ctx.cache.run(lambda r: r.spop(NEW_ITEMS_KEY, 500))
    ids = [i.decode() if isinstance(i, bytes) else i for i in raw or []]
    unknown = [i for i in ids if i not in live.catalog.index and i not in live.new_items]
    if not unknown:
        return 0
    async with ctx.sessions() as session:
        rows = await session.scalars(select(Item).where(Item.item_id.in_(unknown)))
        items = [
            {"item_id": r.item_id, "category": r.category, "brand": r.brand, "kind": r.kind,
             "title": r.title, "tags": r.tags or []}
            for r in rows
        ]  # fmt: skip
    lists = await asyncio.to_thread(register_new_items, live, items)
    if lists:
        import orjson

        mapping: dict[Any, Any] = {item: orjson.dumps(near) for item, near in lists.items()}
        await ctx.cache.run(lambda r: r.hset(version_key(live.version, "sim"), mapping=mapping))
    return len(lists)


def compute_batch(
    live: LiveModel, inter: Interactions, settings: Settings, unavailable: set[str], now: float
) -> tuple[dict[str, tuple[bytes, bytes]], dict[str, bytes]]:
    """((recs, top) list payloads, ad-score rows) for a batch of shoppers' events, by user id."""
    scored = score_batch(live, inter, settings, now)
    if scored is None:
        return {}, {}
    lists = batch_payloads(live, scored, settings, unavailable, now)
    if live.ads is None:
        return lists, {}
    # The ad model's CF feature reuses the recommender scores the lists were made from.
    item_scores = scored.scores[:, live.ads.cf_items]
    return lists, ad_rows(live.ads, live.catalog, scored.inter, item_scores, settings, now)


async def process_batch(ctx: AppContext, limit: int = BATCH_USERS) -> int:
    """Republish up to `limit` dirty users under the live version; returns how many."""
    live = current_model(ctx)
    if live is None or await live_version(ctx.cache) != live.version:
        return 0  # no model here, or another worker's model is live: leave the queue alone
    await process_new_items(ctx, live)
    if time.monotonic() - ctx.extras.get(MARKS_CHECKED, 0.0) >= MARKS_INTERVAL:
        ctx.extras[MARKS_CHECKED] = time.monotonic()
        await move_database_marks(ctx.sessions, ctx.cache, ctx.settings.realtime_queue_max)
    popped = await pop_dirty(ctx.cache, limit)
    if not popped:
        return 0
    try:
        users = [u for u, _ in popped]
        events = await load_user_events(ctx.engine, users, live.catalog)
        raw_unavailable = await ctx.cache.run(lambda r: r.smembers(UNAVAILABLE_KEY))
        unavailable = {m.decode() if isinstance(m, bytes) else m for m in raw_unavailable}
        now = time.time()
        payloads, ads = await asyncio.to_thread(
            compute_batch, live, events, ctx.settings, unavailable, now
        )
        if payloads or ads:
            await ctx.cache.run(lambda r: _publish(r, live.version, payloads, ads, now))
            REALTIME_UPDATES.inc(len(payloads))
    except Exception:
        await requeue(ctx.cache, popped)  # try again later rather than lose the update
        raise
    return len(popped)


async def _publish(
    client: Any,
    version: int,
    payloads: dict[str, tuple[bytes, bytes]],
    ads: dict[str, bytes],
    now: float,
) -> None:
    async with client.pipeline(transaction=True) as pipe:
        if payloads:
            pipe.hset(version_key(version, "recs"), mapping={u: p[0] for u, p in payloads.items()})
            pipe.hset(version_key(version, "top"), mapping={u: p[1] for u, p in payloads.items()})
            pipe.zadd(UPDATED_KEY, dict.fromkeys(payloads, now))
        if ads:
            pipe.hset(version_key(version, "ads"), mapping=ads)
        await pipe.execute()


async def realtime_loop(ctx: AppContext) -> None:
    """Run forever next to the rebuild schedule; cheap when the queue is empty."""
    last_stats = 0.0
    while True:
        started = time.monotonic()
        try:
            done = await process_batch(ctx)
            if time.monotonic() - last_stats > 5:
                await queue_stats(ctx.cache)
                last_stats = time.monotonic()
        except CacheUnavailable:
            done = 0
            await asyncio.sleep(1.0)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("real-time batch failed")
            done = 0
            await asyncio.sleep(1.0)
        if done < BATCH_USERS:
            await asyncio.sleep(max(0.0, started + PASS_INTERVAL - time.monotonic()))
