"""Health checks of the service's dependencies."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text

from app.cache import CacheUnavailable
from app.context import AppContext
from app.realtime.queue import queue_stats

REALTIME_LAG_WARN_SECONDS = 30.0

DATABASE_PROBE_SECONDS = 2.0


async def check_database(ctx: AppContext) -> dict[str, Any]:
    """Run SELECT 1 against the database within DATABASE_PROBE_SECONDS."""
    try:
        async with asyncio.timeout(DATABASE_PROBE_SECONDS), ctx.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "down"; the type is enough to diagnose
        return {"status": "down", "error": type(exc).__name__}
    return {"status": "ok", "backend": ctx.engine.dialect.name}


async def check_cache(ctx: AppContext) -> dict[str, Any]:
    """Ping the cache; when down the API keeps serving from in-process fallbacks (degraded)."""
    backend = "in-process" if ctx.cache.embedded else "redis"
    if await ctx.cache.ping():
        return {"status": "ok", "backend": backend}
    return {"status": "degraded", "backend": backend, "error": ctx.cache.last_error}


async def check_realtime(ctx: AppContext) -> dict[str, Any]:
    """Real-time queue length and lag: informational, it does not make the service unready."""
    try:
        stats = await queue_stats(ctx.cache)
    except CacheUnavailable:
        return {"status": "unknown"}
    lagging = stats["lag_seconds"] > REALTIME_LAG_WARN_SECONDS
    return {"status": "lagging" if lagging else "ok", **stats}


async def readiness(ctx: AppContext) -> tuple[bool, dict[str, Any]]:
    """All checks at once; ready only when every dependency answers."""
    database, cache = await asyncio.gather(check_database(ctx), check_cache(ctx))
    checks: dict[str, Any] = {"database": database, "cache": cache}
    if cache["status"] == "ok":
        checks["realtime"] = await check_realtime(ctx)
    for name, probe in ctx.extras.get("readiness_probes", {}).items():
        checks[name] = await probe(ctx)
    down = sorted(name for name in ("cache", "database") if checks[name]["status"] != "ok")
    body = {"status": "unavailable" if down else "ready", "down": down, "checks": checks}
    return not down, body
