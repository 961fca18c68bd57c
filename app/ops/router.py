"""Public operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.responses import Response

from app.cache import CacheUnavailable
from app.deps import ContextDep
from app.metrics import render_metrics
from app.ops.service import readiness
from app.realtime.queue import queue_stats

router = APIRouter(tags=["operations"])


@router.get("/health/live")
async def live() -> dict[str, str]:
    """The process is up and serving HTTP."""
    return {"status": "alive"}


@router.get("/health/ready")
async def ready(ctx: ContextDep) -> Response:
    """Database and cache reachable: 200; otherwise 503 naming what is down."""
    ok, body = await readiness(ctx)
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(ctx: ContextDep) -> Response:
    # Queue figures live in the cache; read them at scrape time so every process agrees.
    with contextlib.suppress(CacheUnavailable):
        await queue_stats(ctx.cache)
    payload, content_type = render_metrics()
    return Response(payload, media_type=content_type)
