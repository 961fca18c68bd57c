"""Background worker: scheduled and on-demand rebuilds (filled in by the training pipeline)."""

from __future__ import annotations

import asyncio

from app.config import get_settings
from app.context import AppContext
from app.logging import configure_logging, get_logger

log = get_logger(__name__)


async def run_worker(ctx: AppContext, *, once: bool = False) -> None:
    """Loop forever: rebuild every REBUILD_INTERVAL_SECONDS."""
    while True:
        log.info("worker tick")
        if once:
            return
        await asyncio.sleep(ctx.settings.rebuild_interval_seconds)


async def main(*, once: bool = False) -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    ctx = AppContext.create(settings)
    try:
        await run_worker(ctx, once=once)
    finally:
        await ctx.close()
