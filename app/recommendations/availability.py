"""Item availability at serve time: an unavailable item leaves every list at once."""

from __future__ import annotations

import contextlib
from typing import Any

from app.cache import CacheUnavailable
from app.context import AppContext
from app.realtime.queue import NEW_ITEMS_KEY
from app.recommendations.live_view import CATALOG_EPOCH_KEY, UNAVAILABLE_KEY, get_live_view


async def note_items(ctx: AppContext, item_ids: list[str]) -> None:
    """Tell the real-time loop about upserted items; it gives unseen ones content neighbours."""
    if item_ids and ctx.settings.realtime_enabled:
        with contextlib.suppress(CacheUnavailable):
            await ctx.cache.run(lambda r: r.sadd(NEW_ITEMS_KEY, *item_ids))


async def apply_availability(ctx: AppContext, changes: dict[str, bool]) -> None:
    """Record availability changes in the cache (shared by all API processes) and locally.

    Other processes notice the bumped epoch on their next request's pointer check.
    """
    if not changes:
        return
    get_live_view(ctx).mark_availability(changes)
    gone = [item for item, available in changes.items() if not available]
    back = [item for item, available in changes.items() if available]

    async def op(client: Any) -> None:
        async with client.pipeline(transaction=True) as pipe:
            if gone:
                pipe.sadd(UNAVAILABLE_KEY, *gone)
            if back:
                pipe.srem(UNAVAILABLE_KEY, *back)
            pipe.incr(CATALOG_EPOCH_KEY)
            await pipe.execute()

    # On a cache outage the database already has the change, the next rebuild publishes it,
    # and the local view above filters it in this process right away.
    with contextlib.suppress(CacheUnavailable):
        await ctx.cache.run(op)
