"""Operational endpoints: liveness, readiness, Prometheus metrics (public) and status (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from starlette.responses import Response

from app.deps import AdminKey, ContextDep
from app.metrics import render_metrics
from app.ops.gauges import refresh_gauges
from app.ops.service import readiness
from app.ops.status import collect_status

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
    # Model, rebuild, worker and queue figures live in the database and the cache: read them
    # at scrape time so every process reports the same.
    await refresh_gauges(ctx)
    payload, content_type = render_metrics()
    return Response(payload, media_type=content_type)


@router.get("/v1/ops/status")
async def ops_status(
    ctx: ContextDep,
    _key: AdminKey,
    hours: Annotated[int, Query(ge=1, le=168, description="hours of ingest history")] = 24,
    days: Annotated[int, Query(ge=1, le=90, description="days of click-through history")] = 7,
) -> dict[str, Any]:
    """Health, live model, recent runs, ingest by type and hour, cache and click-through rates:
    everything the dashboard shows, as JSON."""
    return await collect_status(ctx, hours=hours, days=days)
