"""The served-list log: which items each request_id showed, without a write on the hot path.

Serving appends a tuple to an in-process buffer (no I/O). A background task in each API
process flushes the buffer to a Redis list every FLUSH_SECONDS with one RPUSH; while the
cache is down the buffer is kept (bounded) and flushed later. The analytics pass (worker, or
a results request) drains the list into `served_lists` in batches: each batch is popped
atomically (LRANGE + LTRIM in one MULTI), so concurrent drainers never share an entry, and is
pushed back if the database write fails. Inserts ignore known request_ids.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections import deque
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from app.analytics.fold_io import LIST_COLUMNS, open_io
from app.cache import CacheUnavailable, key
from app.context import AppContext
from app.experiments.assignment import Spec
from app.flusher import BackgroundFlusher
from app.logging import get_logger

log = get_logger(__name__)
QUEUE_PREFIX = "analytics:served"
FLUSH_SECONDS = 0.2
BUFFER_MAX = 200_000  # per process, while the cache is down; older lists are dropped beyond
QUEUE_MAX = 2_000_000  # cap of the cache-side queue if no worker drains it
DRAIN_BATCH = 2_000
PAGE = 10_000


class ServedLog(BackgroundFlusher):
    def __init__(self) -> None:
        super().__init__(FLUSH_SECONDS)
        self.buffer: deque[bytes] = deque(maxlen=BUFFER_MAX)
        self.dropped = 0

    def record(self, ctx: AppContext, entry: tuple[Any, ...]) -> None:
        if len(self.buffer) == BUFFER_MAX:
            self.dropped += 1
        self.buffer.append(orjson.dumps(entry))
        self.kick(ctx)

    def pending(self) -> bool:
        return bool(self.buffer)

    async def flush(self, ctx: AppContext) -> int:
        """Send the buffered lists to the stream; keep them when the cache is down."""
        if not self.buffer:
            return 0
        batch = list(self.buffer)
        self.buffer.clear()
        try:
            await ctx.cache.run(partial(_push_all, queue=queue_key(ctx), batch=batch))
        except CacheUnavailable:
            self.buffer.extendleft(reversed(batch))  # newer lists stay behind, order kept
            return 0
        return len(batch)


async def _push_all(client: Any, queue: str, batch: list[bytes]) -> None:
    async with client.pipeline(transaction=False) as pipe:
        pipe.rpush(queue, *batch)
        pipe.ltrim(queue, -QUEUE_MAX, -1)  # nobody drains: keep the newest only
        await pipe.execute()


async def _pop(client: Any, queue: str, count: int) -> list[bytes]:
    async with client.pipeline(transaction=True) as pipe:
        pipe.lrange(queue, 0, count - 1)
        pipe.ltrim(queue, count, -1)
        blobs, _ = await pipe.execute()
    return list(blobs)


async def _push_back(client: Any, queue: str, blobs: list[bytes]) -> None:
    await client.lpush(queue, *reversed(blobs))  # back at the head, in their order


async def _page(client: Any, queue: str, start: int) -> list[bytes]:
    return list(await client.lrange(queue, start, start + PAGE - 1))


async def _remove(client: Any, queue: str, blob: bytes) -> int:
    return int(await client.lrem(queue, 0, blob))


def queue_key(ctx: AppContext) -> str:
    """The cache queue of this database's served lists. Named after the database, so
    deployments (or test sessions) sharing one Redis never drain each other's lists."""
    name = ctx.extras.get("served_queue")
    if name is None:
        url = make_url(ctx.settings.database_url).render_as_string(hide_password=True)
        digest = hashlib.sha256(url.encode()).hexdigest()[:12]
        name = ctx.extras["served_queue"] = key(QUEUE_PREFIX, digest)
    return str(name)


def served_log(ctx: AppContext) -> ServedLog:
    current = ctx.extras.get("served_log")
    if current is None:
        current = ctx.extras["served_log"] = ServedLog()
    assert isinstance(current, ServedLog)
    return current


def record_served(ctx: AppContext, body: dict[str, Any]) -> None:
    """Remember a served list (request_id, user, items, strategy, version, experiment...)."""
    served_at: datetime = body["generated_at"]
    entry = (
        body["request_id"],
        body["user_id"],
        [i["item_id"] for i in body["items"]],
        body["strategy"],
        body["model_version"],
        body.get("experiment"),
        body.get("variant"),
        served_at.timestamp(),
    )
    served_log(ctx).record(ctx, entry)


def parse_entry(blob: bytes) -> dict[str, Any]:
    rid, user, items, strategy, version, experiment, variant, at = orjson.loads(blob)
    return {
        "request_id": rid,
        "user_id": user,
        "item_ids": items,
        "strategy": strategy,
        "model_version": version,
        "experiment": experiment,
        "variant": variant,
        "served_at": datetime.fromtimestamp(at, tz=UTC),
    }


async def drain(
    ctx: AppContext,
    specs: dict[str, Spec],
    max_batches: int = 1000,
    deadline: float | None = None,
) -> int:
    """Move served lists from the cache queue into `served_lists`; returns how many were new
    (stopping at `deadline`, a time.monotonic() value, when given)."""
    stored = 0
    for _ in range(max_batches):
        if deadline is not None and time.monotonic() > deadline:
            return stored
        try:
            blobs = await ctx.cache.run(partial(_pop, queue=queue_key(ctx), count=DRAIN_BATCH))
        except CacheUnavailable:
            return stored
        if not blobs:
            return stored
        try:
            async with ctx.sessions() as session:
                stored += await store_lists(session, [parse_entry(b) for b in blobs], specs)
                await session.commit()
        except BaseException:
            with contextlib.suppress(CacheUnavailable):
                await ctx.cache.run(partial(_push_back, queue=queue_key(ctx), blobs=blobs))
            raise
    return stored


async def forget(ctx: AppContext, user_id: str) -> int:
    """Drop a shopper's served lists not yet in the database (erasure); returns how many."""
    log = served_log(ctx)
    kept = [b for b in log.buffer if parse_entry(b)["user_id"] != user_id]
    dropped = len(log.buffer) - len(kept)
    log.buffer.clear()
    log.buffer.extend(kept)
    named: set[bytes] = set()
    start = 0
    while page := await ctx.cache.run(partial(_page, queue=queue_key(ctx), start=start)):
        named.update(b for b in page if parse_entry(b)["user_id"] == user_id)
        start += PAGE
    for blob in named:
        dropped += await ctx.cache.run(partial(_remove, queue=queue_key(ctx), blob=blob))
    return dropped


async def store_lists(
    session: AsyncSession, rows: list[dict[str, Any]], specs: dict[str, Spec]
) -> int:
    """Insert served lists (known request_ids skipped) and count new exposures per experiment."""
    if not rows:
        return 0
    io = await open_io(session)
    new_ids = await io.insert_lists([tuple(r[c] for c in LIST_COLUMNS) for r in rows])
    exposures: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        spec = specs.get(row["experiment"] or "")
        if row["request_id"] not in new_ids or spec is None:
            continue
        k = (spec.name, row["user_id"])
        entry = exposures.get(k)
        if entry is None:
            # The truth is the hash, whatever a client or an old process wrote.
            entry = exposures[k] = [
                spec.variant_of(row["user_id"]),
                row["served_at"],
                0,
                0,
                0,
                0,
                0.0,
            ]
        entry[1] = min(entry[1], row["served_at"])
        entry[2] += 1
    await io.upsert_users([(*k, *v) for k, v in exposures.items()])
    return len(new_ids)
