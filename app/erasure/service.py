"""Forget one shopper: every database row and every cache entry that names them.

Rows: every table with a `user_id` column (events, users, dirty_users, profiles and
predictions, served lists, experiment assignments and whatever later features add), in one
transaction. Cache: the fields named after the user in each version's user-keyed hashes (lists,
never-again items, profiles, ad scores; live, retired and still-pending versions alike), their
entries in campaign audiences, per-user keys, the real-time queue, promotion counters and reach
entries (with those this process has noted but not flushed yet), and the served lists waiting
in this process's buffer and the cache's queue for the analytics pass (which would otherwise
write them back into `served_lists`).

A rebuild or a real-time batch that read the user's events before the erasure could publish
them again afterwards (cache entries, and `user_profiles` rows), and another API process may
flush a served list naming them a moment later, so a follow-up sweep runs once such work is
over: the cache again, and the rows derived from their data (every user table but `events` and
`users`, which only new activity of the shopper can fill again). The next rebuild reads no
event of theirs (the worker's in-memory event log notices the deleted rows and reloads), so
they do not come back.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import inspect, select, text

from app.analytics import served
from app.cache import KEY_PREFIX, CacheUnavailable
from app.context import AppContext
from app.logging import get_logger
from app.metrics import USERS_ERASED
from app.models import ModelRun
from app.promotions import store as promotion_store
from app.promotions.tally import tally
from app.realtime.queue import DIRTY_KEY, UPDATED_KEY

log = get_logger(__name__)

# Parts of a published version (bl:v:{version}:{part}) that are hashes keyed by user id:
# lists and never-again items (app/training/publish.py), profiles and ad scores
# (app/training/publish_profiles.py). A feature that publishes per-user data adds its part.
USER_HASH_PARTS = frozenset({"recs", "top", "seen", "prof", "ads"})
# Parts stored as one key per user: bl:v:{version}:{part}:{user_id}.
USER_KEY_PARTS: frozenset[str] = frozenset()
# Hashes whose values list users: campaign audiences, {"p": [[user, p_click, p_convert], ...],
# "b": [...]} per campaign. Entries naming the user are cut out of each value.
USER_LIST_PARTS = frozenset({"aud"})
# Sorted sets whose members are user ids.
USER_ZSETS = (DIRTY_KEY, UPDATED_KEY)
FOLLOW_UP_DELAY = 2.0  # longer than a real-time batch takes to publish, and than another
# API process takes to flush the promotion reach it noted (app/promotions/tally.py, 0.5 s)
FOLLOW_UP_POLL = 2.0
FOLLOW_UP_LIMIT = 3600.0  # rebuilds never run this long; a run stuck as `training` is dead
VERSION_PREFIX = f"{KEY_PREFIX}v:"
# Tables only the shopper's own new activity writes to; every other user table holds data
# derived from their history, which a racing rebuild or analytics pass could write back.
ACTIVITY_TABLES = frozenset({"events", "users"})


def user_hash(ctx: AppContext, user_id: str) -> str:
    """What the log says instead of the id: a keyed hash (ERASURE_HASH_KEY), 16 hex chars."""
    secret = (ctx.settings.erasure_hash_key or "brandlift-erasure").encode()
    return hmac.new(secret, user_id.encode(), hashlib.sha256).hexdigest()[:16]


async def user_tables(ctx: AppContext) -> list[str]:
    """Tables with a user_id column (looked up once per process)."""
    cached = ctx.extras.get("erasure_tables")
    if cached is None:

        def find(conn: Any) -> list[str]:
            inspector = inspect(conn)
            return sorted(
                name
                for name in inspector.get_table_names()
                if any(c["name"] == "user_id" for c in inspector.get_columns(name))
            )

        async with ctx.engine.connect() as conn:
            cached = ctx.extras["erasure_tables"] = await conn.run_sync(find)
    return list(cached)


async def delete_rows(
    ctx: AppContext, user_id: str, *, derived_only: bool = False
) -> dict[str, int]:
    """Delete the user's rows from every table that has them (with `derived_only`, from the
    tables other than ACTIVITY_TABLES), in one transaction."""
    deleted: dict[str, int] = {}
    async with ctx.sessions() as session:
        for table in await user_tables(ctx):
            if derived_only and table in ACTIVITY_TABLES:
                continue
            # Table names come from the schema itself, never from the request.
            result = await session.execute(
                text(f'DELETE FROM "{table}" WHERE user_id = :user'), {"user": user_id}
            )
            deleted[table] = int(result.rowcount or 0)  # type: ignore[attr-defined]
        await session.commit()
    return deleted


def _versions(names: list[Any]) -> set[int]:
    versions = set()
    for raw in names:
        name = raw.decode() if isinstance(raw, bytes) else raw
        number = name[len(VERSION_PREFIX) :].split(":", 1)[0]
        if number.isdigit():
            versions.add(int(number))
    return versions


def _without_user(blob: bytes, user_id: str) -> bytes | None:
    """The audience value without the user's entries, or None when it does not name them."""
    if orjson.dumps(user_id) not in blob:
        return None  # cheap test first: most values do not mention the user at all
    value = orjson.loads(blob)
    if not isinstance(value, dict):
        return None
    changed = False
    for group, entries in value.items():
        if isinstance(entries, list):
            kept = [e for e in entries if not (isinstance(e, list) and e and e[0] == user_id)]
            changed |= len(kept) != len(entries)
            value[group] = kept
    return orjson.dumps(value) if changed else None


async def _trim_lists(client: Any, names: list[str], user_id: str) -> int:
    """Cut the user out of audience values, one field at a time (each can be large)."""
    rewritten = 0
    for name in names:
        for field in await client.hkeys(name):
            blob = await client.hget(name, field)
            trimmed = _without_user(blob, user_id) if blob is not None else None
            if trimmed is not None:
                # HSET keeps the key's TTL, so a pending version still expires.
                await client.hset(name, field, trimmed)
                rewritten += 1
    return rewritten


async def sweep_cache(ctx: AppContext, user_id: str) -> int:
    """Remove every cache entry naming the user; returns how many were removed."""

    async def op(client: Any) -> int:
        names = [name async for name in client.scan_iter(match=f"{VERSION_PREFIX}*", count=1000)]
        versions = sorted(_versions(names))
        async with client.pipeline(transaction=False) as pipe:
            for version in versions:
                for part in USER_HASH_PARTS:
                    pipe.hdel(f"{VERSION_PREFIX}{version}:{part}", user_id)
                for part in USER_KEY_PARTS:
                    pipe.delete(f"{VERSION_PREFIX}{version}:{part}:{user_id}")
            for name in USER_ZSETS:
                pipe.zrem(name, user_id)
            # HDEL, DEL and ZREM answer how many they removed.
            removed = sum(int(n) for n in await pipe.execute())
        lists = [f"{VERSION_PREFIX}{v}:{part}" for v in versions for part in USER_LIST_PARTS]
        return removed + await _trim_lists(client, lists, user_id)

    removed = await ctx.cache.run(op)
    # Promotion frequency-cap counters and exposed/holdout reach entries, those this process
    # has not flushed yet first (a flush after the sweep would write them back).
    removed += tally(ctx).forget(user_id)
    removed += await promotion_store.forget_user(ctx.cache, user_id)
    # Served lists not yet in the database (this process's buffer, the cache's queue).
    return removed + await served.forget(ctx, user_id)


async def _rebuilds_started_before(ctx: AppContext, moment: float) -> bool:
    since = datetime.fromtimestamp(moment, UTC)
    stmt = select(ModelRun.version).where(
        ModelRun.status == "training", ModelRun.started_at <= since
    )
    async with ctx.sessions() as session:
        return (await session.scalar(stmt.limit(1))) is not None


async def follow_up(ctx: AppContext, user_id: str, erased_at: float) -> int:
    """Sweep again once a real-time batch or a rebuild that read the user's events is done.

    Also finishes an erasure whose first sweep met the cache down: it keeps trying until the
    cache answers (or FOLLOW_UP_LIMIT passes).
    """
    removed = 0
    deadline = erased_at + FOLLOW_UP_LIMIT
    await asyncio.sleep(FOLLOW_UP_DELAY)
    while True:
        try:
            removed += await sweep_cache(ctx, user_id)
            rows = await delete_rows(ctx, user_id, derived_only=True)
            removed += sum(rows.values())
            if not await _rebuilds_started_before(ctx, erased_at):
                break
        except Exception as exc:  # the cache or the database is down: try again shortly
            log.warning("erasure follow-up failed", error=type(exc).__name__)
        if time.time() > deadline:
            log.error("erasure follow-up gave up", user=user_hash(ctx, user_id))
            break
        await asyncio.sleep(FOLLOW_UP_POLL)
    if removed:
        log.info(
            "erasure follow-up removed entries and rows",
            user=user_hash(ctx, user_id),
            removed=removed,
        )
    return removed


def _schedule(ctx: AppContext, user_id: str, erased_at: float) -> None:
    tasks: set[asyncio.Task[int]] = ctx.extras.setdefault("erasure_tasks", set())
    task = asyncio.create_task(follow_up(ctx, user_id, erased_at), name="erasure-follow-up")
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def wait_follow_ups(ctx: AppContext) -> None:
    """Wait for this process's pending follow-up sweeps (tests, orderly shutdown)."""
    tasks = set(ctx.extras.get("erasure_tasks", ()))
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


async def erase_user(ctx: AppContext, user_id: str) -> dict[str, Any]:
    """Delete the user's rows and cache entries now; schedule the follow-up sweep."""
    erased_at = time.time()
    rows = await delete_rows(ctx, user_id)
    # The rows are gone first: a rebuild starting now cannot read them back into the cache.
    entries: int | None
    try:
        entries = await sweep_cache(ctx, user_id)
    except CacheUnavailable:
        entries = None  # the follow-up finishes the job when the cache is back
    _schedule(ctx, user_id, erased_at)
    tag = user_hash(ctx, user_id)
    USERS_ERASED.inc()
    log.info("user erased", user=tag, rows=sum(rows.values()), cache_entries=entries)
    return {
        "user_hash": tag,
        "deleted_rows": rows,
        "cache_entries": entries,
        "cache": "done" if entries is not None else "pending",
    }
