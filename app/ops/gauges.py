"""Service gauges computed at scrape time from shared state, so every API process agrees."""

from __future__ import annotations

import asyncio
import contextlib
import time

from sqlalchemy import select

from app.cache import CacheUnavailable
from app.context import AppContext
from app.logging import get_logger
from app.metrics import (
    LAST_REBUILD_FINISHED,
    LAST_REBUILD_STATUS,
    MODEL_AGE,
    MODEL_ITEMS,
    MODEL_USERS,
    MODEL_VERSION,
    REBUILD_DURATION,
    WORKER_HEARTBEAT_AGE,
)
from app.models import ModelRun
from app.ops.status import HEARTBEAT_KEY, model_facts
from app.realtime.queue import queue_stats

log = get_logger(__name__)
RUN_STATUSES = ("live", "rejected", "failed", "retired")
SCRAPE_BUDGET_SECONDS = 2.0


async def _last_finished_run(ctx: AppContext) -> ModelRun | None:
    stmt = (
        select(ModelRun)
        .where(ModelRun.finished_at.is_not(None))
        .order_by(ModelRun.finished_at.desc(), ModelRun.version.desc())
        .limit(1)
    )
    async with ctx.sessions() as session:
        return await session.scalar(stmt)


async def _model(ctx: AppContext) -> None:
    model = await model_facts(ctx)
    if model is None:
        MODEL_VERSION.set(0)
        MODEL_AGE.set(-1)
        return
    MODEL_VERSION.set(model["version"])
    MODEL_AGE.set(model["age_seconds"] if model["age_seconds"] is not None else -1)
    MODEL_USERS.set(model["users"] or 0)
    MODEL_ITEMS.set(model["items"] or 0)


async def _last_rebuild(ctx: AppContext) -> None:
    run = await _last_finished_run(ctx)
    if run is None or run.finished_at is None:
        return
    REBUILD_DURATION.set((run.finished_at - run.started_at).total_seconds())
    LAST_REBUILD_FINISHED.set(run.finished_at.timestamp())
    for status in RUN_STATUSES:
        LAST_REBUILD_STATUS.labels(status).set(1 if run.status == status else 0)


async def _worker(ctx: AppContext) -> None:
    raw = await ctx.cache.run(lambda r: r.get(HEARTBEAT_KEY))
    WORKER_HEARTBEAT_AGE.set(time.time() - float(raw) if raw is not None else -1)


async def refresh_gauges(ctx: AppContext) -> None:
    """Update the scrape-time gauges; a dependency that is down leaves its gauges as they were."""
    steps = {
        "queue": queue_stats(ctx.cache),
        "model": _model(ctx),
        "rebuild": _last_rebuild(ctx),
        "worker": _worker(ctx),
    }
    results = await asyncio.gather(
        *(_bounded(step) for step in steps.values()), return_exceptions=True
    )
    for name, result in zip(steps, results, strict=True):
        if isinstance(result, Exception) and not isinstance(result, CacheUnavailable):
            log.debug("gauge refresh failed", part=name, error=type(result).__name__)


async def _bounded(step: object) -> None:
    # A scrape must answer even when the database hangs: give up on the figure instead.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SCRAPE_BUDGET_SECONDS):
            await step  # type: ignore[misc]
