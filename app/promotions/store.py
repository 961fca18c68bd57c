"""Promotion state shared by every process, in the cache.

Keys (under "bl:promo:"):
  cfg            (hash)  campaign_id -> {"p": promotion, "b": brand, "c": category,
                                         "i": item_ids, "a": active}; campaigns with a
                         promotion only. Written at POST /v1/campaigns and rewritten whole by
                         every rebuild (which heals an upsert made while the cache was down).
  epoch          (int)   bumped on every change of cfg; each API process's live view
                         checks it with the live pointer (same MGET) and reloads.
  imp:{u}        (zset)  "{campaign}\x1f{event_id}" -> event time of the user's rec_impression
                         events that carry a campaign (ZADD NX: a re-sent event counts
                         once); trimmed to the longest cap window at ingest and expiring
                         after it. Serving reads it with one ZRANGEBYSCORE (one command
                         whatever the number of capped campaigns), so every API process
                         sees the same counts.
  caphits        (hash)  campaign_id -> requests where a cap blocked a placement
  reach:{c}:{g}  (hash)  user_id -> first time the user was served a placement (g = exposed)
                         or held out while eligible (g = holdout): brand lift.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.cache import Cache, CacheUnavailable, key
from app.catalog.schemas import Promotion
from app.events.schemas import EventIn
from app.models import Campaign

CFG_KEY = key("promo", "cfg")
EPOCH_KEY = key("promo", "epoch")
CAP_HITS_KEY = key("promo", "caphits")
DEFAULT_KEEP_HOURS = 24.0 * 31  # impressions of a campaign without a known cap window


SEP = "\x1f"  # between campaign and event id in an impression member


def impressions_key(user_id: str) -> str:
    return key("promo", "imp", user_id)


def reach_key(campaign_id: str, group: str) -> str:
    return key("promo", "reach", campaign_id, group)


def settings_blob(row: Campaign) -> bytes:
    """The cfg entry of a campaign row (promotion defaults filled in)."""
    promotion = Promotion.model_validate(row.promotion or {}).model_dump(mode="json")
    return orjson.dumps(
        {
            "p": promotion,
            "b": row.brand,
            "c": row.category,
            "i": row.item_ids or [],
            "a": bool(row.active),
        }
    )


async def _load_rows(session: AsyncSession, ids: list[str] | None) -> list[Campaign]:
    """Campaign rows with a promotion (a JSON null reads as None too: filtered here)."""
    stmt = select(Campaign)
    if ids is not None:
        stmt = stmt.where(Campaign.campaign_id.in_(ids))
    return [r for r in (await session.scalars(stmt)).all() if r.promotion is not None]


async def publish_settings(
    cache: Cache, session: AsyncSession, ids: list[str], cleared: list[str]
) -> None:
    """After a campaign upsert: write the cfg entries of those campaigns that have a
    promotion, drop the `cleared` ones (promotion sent as null), bump the epoch.

    Best effort: when the cache is down the next rebuild writes them (see sync_settings).
    """
    rows = await _load_rows(session, ids)
    present = {r.campaign_id: settings_blob(r) for r in rows}
    gone = [c for c in cleared if c not in present]

    async def op(client: Any) -> None:
        async with client.pipeline(transaction=True) as pipe:
            if present:
                pipe.hset(CFG_KEY, mapping=present)
            if gone:
                pipe.hdel(CFG_KEY, *gone)
            pipe.incr(EPOCH_KEY)
            await pipe.execute()

    if present or gone:
        with contextlib.suppress(CacheUnavailable):
            await cache.run(op)


async def sync_settings(cache: Cache, session: AsyncSession) -> dict[str, bytes]:
    """Rewrite the whole cfg hash from the database (worker, every rebuild)."""
    rows = await _load_rows(session, None)
    entries = {r.campaign_id: settings_blob(r) for r in rows}

    async def op(client: Any) -> None:
        async with client.pipeline(transaction=True) as pipe:
            pipe.delete(CFG_KEY)
            if entries:
                pipe.hset(CFG_KEY, mapping=entries)
            pipe.incr(EPOCH_KEY)
            await pipe.execute()

    await cache.run(op)
    return entries


def campaign_of(event: EventIn) -> str | None:
    """The campaign a rec_impression carries (EventIn lifts context.campaign_id)."""
    if event.type != "rec_impression":
        return None
    return event.campaign_id


async def record_impressions(
    cache: Cache, events: Iterable[EventIn], windows: dict[str, float]
) -> int:
    """Count sponsored impressions for the frequency caps (one pipeline per batch).

    `windows` maps campaign -> cap window in hours (from the in-process promotion view); a
    user's set keeps the longest of them (DEFAULT_KEEP_HOURS when none is known). Members
    name the event id, so a re-sent event counts once.
    """
    grouped: dict[str, dict[str, float]] = defaultdict(dict)
    for event in events:
        campaign = campaign_of(event)
        if campaign is not None:
            member = f"{campaign}{SEP}{event.event_id}"
            grouped[event.user_id][member] = event.timestamp.timestamp()
    if not grouped:
        return 0
    now = time.time()
    hours = max([*windows.values(), 0.0]) or DEFAULT_KEEP_HOURS

    async def op(client: Any) -> None:
        async with client.pipeline(transaction=False) as pipe:
            for user_id, members in grouped.items():
                name = impressions_key(user_id)
                pipe.zadd(name, members, nx=True)
                pipe.zremrangebyscore(name, "-inf", now - hours * 3600)
                pipe.expire(name, int(hours * 3600) + 60)
            await pipe.execute()

    # During a cache outage impressions are not counted against caps (documented): serving
    # must not fail because of it, and the delivery report still counts them from the log.
    with contextlib.suppress(CacheUnavailable):
        await cache.run(op)
    return sum(len(m) for m in grouped.values())


async def forget_user(cache: Cache, user_id: str) -> int:
    """Remove a shopper's promotion counters and reach entries (for erasure); returns how
    many keys or fields went."""

    async def op(client: Any) -> int:
        removed = int(await client.delete(impressions_key(user_id)))
        async for name in client.scan_iter(match=key("promo", "reach", "*"), count=1000):
            removed += int(await client.hdel(name, user_id))
        return removed

    return await cache.run(op)
