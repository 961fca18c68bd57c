"""The dirty-user queue: ingest marks shoppers whose lists are stale, the worker drains it.

A Redis sorted set keyed by user id, scored by when the user first became dirty: marking a
user again is a no-op (ZADD NX), so a burst of events for the same shoppers coalesces and the
queue is bounded by the number of distinct shoppers, capped by `max_size`.
"""

from __future__ import annotations

import time
from typing import Any

from app.cache import Cache, CacheUnavailable, key
from app.metrics import REALTIME_DROPPED, REALTIME_LAG, REALTIME_QUEUE

DIRTY_KEY = key("rt", "dirty")
UPDATED_KEY = key("rt", "updated")  # user -> when real time last republished their list
NEW_ITEMS_KEY = key("rt", "new_items")


async def mark_dirty(cache: Cache, users: list[str], max_size: int) -> bool:
    """Queue users for a real-time update; False when the cache could not take them."""
    if not users:
        return True
    now = time.time()

    async def op(client: Any) -> int:
        if await client.zcard(DIRTY_KEY) >= max_size:
            return -1
        return int(await client.zadd(DIRTY_KEY, dict.fromkeys(users, now), nx=True))

    try:
        added = await cache.run(op)
    except CacheUnavailable:
        return False
    if added < 0:
        # Over the cap the next full rebuild covers these users; count it so it shows.
        REALTIME_DROPPED.inc(len(users))
    return True


async def pop_dirty(cache: Cache, limit: int) -> list[tuple[str, float]]:
    """Take up to `limit` users, oldest first, with the time they became dirty."""
    rows: Any = await cache.run(lambda r: r.zpopmin(DIRTY_KEY, limit))
    return [(u.decode() if isinstance(u, bytes) else u, float(s)) for u, s in rows]


async def requeue(cache: Cache, users: list[tuple[str, float]]) -> None:
    """Put users back (keeping their original time) when they could not be processed."""
    if users:
        await cache.run(lambda r: r.zadd(DIRTY_KEY, dict(users), nx=True))


async def queue_stats(cache: Cache) -> dict[str, float]:
    """Length and lag (age of the oldest waiting user) of the queue; also sets the gauges."""

    async def op(client: Any) -> tuple[int, list[Any]]:
        async with client.pipeline(transaction=False) as pipe:
            pipe.zcard(DIRTY_KEY)
            pipe.zrange(DIRTY_KEY, 0, 0, withscores=True)
            size, oldest = await pipe.execute()
        return int(size), oldest

    size, oldest = await cache.run(op)
    lag = max(0.0, time.time() - float(oldest[0][1])) if oldest else 0.0
    REALTIME_QUEUE.set(size)
    REALTIME_LAG.set(lag)
    return {"queued_users": size, "lag_seconds": round(lag, 3)}


async def carry_over_realtime(cache: Cache, new_version: int, since: float) -> list[str]:
    """Copy lists republished in real time after `since` into a version about to go live.

    The build read the events before `since`; those users' real-time lists are newer, so
    they win until the real-time loop recomputes them against the new model.
    """
    from app.training.publish import LIVE_KEY, version_key

    async def op(client: Any) -> list[str]:
        live = await client.get(LIVE_KEY)
        raw = await client.zrangebyscore(UPDATED_KEY, since, "+inf")
        users = [u.decode() if isinstance(u, bytes) else u for u in raw]
        if live is None or not users:
            return users
        for part in ("recs", "top"):
            blobs = await client.hmget(version_key(int(live), part), users)
            mapping = {u: b for u, b in zip(users, blobs, strict=True) if b is not None}
            if mapping:
                await client.hset(version_key(new_version, part), mapping=mapping)
        return users

    return await cache.run(op)


async def mark_dirty_in_database(sessions: Any, users: list[str]) -> None:
    """The fallback while the cache is down: remember the users in Postgres (or SQLite)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    from app.models import DirtyUser

    async with sessions() as session:
        insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
        rows = [{"user_id": u} for u in users]
        await session.execute(insert(DirtyUser).on_conflict_do_nothing(), rows)
        await session.commit()


async def move_database_marks(sessions: Any, cache: Cache, max_size: int) -> int:
    """Hand users marked in the database during a cache outage back to the cache queue."""
    from sqlalchemy import delete, select

    from app.models import DirtyUser

    async with sessions() as session:
        users = list(await session.scalars(select(DirtyUser.user_id).limit(1000)))
        if not users or not await mark_dirty(cache, users, max_size):
            return 0
        await session.execute(delete(DirtyUser).where(DirtyUser.user_id.in_(users)))
        await session.commit()
    return len(users)
