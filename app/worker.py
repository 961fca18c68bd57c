"""Background worker: rebuilds on a schedule and on demand (jobs queued by the API)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

from app.analytics.service import analytics_loop
from app.cache import CacheUnavailable, key
from app.config import get_settings
from app.context import AppContext
from app.logging import configure_logging, get_logger
from app.metrics import serve_worker_metrics
from app.realtime.loop import realtime_loop
from app.registry import service as registry
from app.training.pipeline import rebuild

log = get_logger(__name__)
HEARTBEAT_KEY = key("worker", "heartbeat")
POLL_SECONDS = 1.0


async def _heartbeat(ctx: AppContext) -> None:
    # The heartbeat is informational; the worker keeps working without the cache.
    with contextlib.suppress(CacheUnavailable):
        await ctx.cache.run(lambda r: r.set(HEARTBEAT_KEY, str(time.time()), ex=120))


async def run_once(ctx: AppContext) -> dict[str, object] | None:
    """Do the next piece of work: a queued rebuild job, else nothing."""
    job = await registry.claim_job(ctx.sessions, "rebuild")
    if job is None:
        return None
    result = await rebuild(ctx, trigger="api")
    if result["status"] == "skipped":
        # Another worker is rebuilding; hand the job back so a free worker runs it after.
        await registry.finish_job(ctx.sessions, job.job_id, "queued", result)
        return result
    status = "failed" if result["status"] == "failed" else "done"
    await registry.finish_job(ctx.sessions, job.job_id, status, result)
    return result


async def run_worker(ctx: AppContext, *, once: bool = False) -> None:
    """Rebuild loop plus, alongside it, the real-time loop (unless disabled or `once`) and the
    analytics pass (served lists and feedback roll-ups)."""
    if once:
        await rebuild_loop(ctx, once=once)
        return
    side = [asyncio.create_task(analytics_loop(ctx), name="analytics")]
    if ctx.settings.realtime_enabled:
        side.append(asyncio.create_task(realtime_loop(ctx), name="realtime"))
    try:
        await rebuild_loop(ctx)
    finally:
        for task in side:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def rebuild_loop(ctx: AppContext, *, once: bool = False) -> None:
    """Loop: take queued jobs as they come, rebuild every REBUILD_INTERVAL_SECONDS."""
    interval = ctx.settings.rebuild_interval_seconds
    next_scheduled = time.monotonic()
    while True:
        try:
            await _heartbeat(ctx)
            if await run_once(ctx) is not None:
                # An on-demand rebuild just ran: the schedule counts from it.
                next_scheduled = time.monotonic() + interval
            elif time.monotonic() >= next_scheduled:
                await rebuild(ctx, trigger="schedule")
                next_scheduled = time.monotonic() + interval
        except asyncio.CancelledError:
            raise
        except Exception:  # keep the loop alive; the failure is in the log and the registry
            log.exception("worker iteration failed")
        if once:
            return
        await asyncio.sleep(POLL_SECONDS)


async def main(*, once: bool = False, realtime: bool = True) -> None:
    settings = get_settings()
    if not realtime:
        settings = settings.model_copy(update={"realtime_enabled": False})
    configure_logging(settings.log_level, settings.log_json)
    if settings.worker_nice:
        os.nice(settings.worker_nice)
    if settings.worker_metrics_port and not once:
        serve_worker_metrics(settings.worker_metrics_port)
        log.info("worker metrics served", port=settings.worker_metrics_port)
    # Bulk publishes need more patience than a request does.
    ctx = AppContext.create(settings, cache_timeout=10.0)
    try:
        await run_worker(ctx, once=once)
    finally:
        await ctx.close()
