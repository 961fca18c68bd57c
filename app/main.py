"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from app import __version__
from app.ads.router import router as ads_router
from app.ads.schemas import BulkScoresIn
from app.analytics import service as analytics
from app.analytics.router import router as analytics_router
from app.catalog.router import router as catalog_router
from app.catalog.schemas import CampaignIn, ItemIn, UserIn
from app.config import Settings, get_settings
from app.context import AppContext
from app.dashboard.router import router as dashboard_router
from app.dashboard.router import static as dashboard_static
from app.erasure.router import router as erasure_router
from app.evaluation.router import router as evaluation_router
from app.events.router import router as events_router
from app.events.schemas import EventIn
from app.experiments.router import router as experiments_router
from app.logging import configure_logging, get_logger
from app.metrics import MetricsMiddleware
from app.ops.router import router as ops_router
from app.problems import install_problem_handlers
from app.profiles.router import router as profiles_router
from app.promotions.router import router as promotions_router
from app.promotions.tally import tally
from app.ratelimit import RateLimitMiddleware
from app.recommendations.router import router as recommendations_router
from app.registry.router import router as registry_router

log = get_logger(__name__)
# Request bodies read as raw bytes (for one-pass validation) still get documented schemas.
BODY_SCHEMAS: tuple[type[BaseModel], ...] = (EventIn, ItemIn, UserIn, CampaignIn, BulkScoresIn)


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in BODY_SCHEMAS:
        model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(model_schema.pop("$defs", {}))
        components[model.__name__] = model_schema
    app.openapi_schema = schema
    return schema


def _add_cors(app: FastAPI, settings: Settings) -> None:
    """Browser access from CORS_ORIGINS (comma list, or "*"); off when empty."""
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if not origins:
        return
    from starlette.middleware.cors import CORSMiddleware

    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"] if "*" in origins else origins,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["X-API-Key", "Content-Type"],
        expose_headers=["Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"],
        max_age=600,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API; resources open in the lifespan so tests can run several apps."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = AppContext.create(settings)
        app.state.ctx = ctx
        if not len(ctx.keys):
            log.warning("no API keys configured: every keyed endpoint answers 401")
        worker_task: asyncio.Task[None] | None = None
        if settings.run_worker_in_process:
            from app.worker import run_worker

            worker_task = asyncio.create_task(run_worker(ctx), name="in-process-worker")
        # Everything built at start-up lives as long as the process: keep it out of the cyclic
        # collector's full scans, which otherwise walk it every few hundred requests (about a
        # tenth of the ingest path's CPU, measured with bench/ingest.py).
        gc.freeze()
        try:
            yield
        finally:
            if worker_task is not None:
                worker_task.cancel()
                with suppress(asyncio.CancelledError):
                    await worker_task
            await analytics.close(ctx)  # flush this process's served lists
            await tally(ctx).close(ctx)  # and its promotion cap hits and reach
            await ctx.close()

    app = FastAPI(
        title="brandlift",
        version=__version__,
        summary="Recommendations and ad targeting from shoppers' behaviour",
        lifespan=lifespan,
        telemetry=None
        if settings.opentelemetry
        else {"tracing": False, "metrics": False, "logs": False},
    )
    # Outermost last: CORS (so refusals carry its headers), metrics, then rate limiting (only
    # when configured: a layer that does nothing still costs every request a few percent).
    if settings.rate_limit_requests > 0:
        app.add_middleware(RateLimitMiddleware)
    app.add_middleware(MetricsMiddleware)
    _add_cors(app, settings)
    install_problem_handlers(app)
    for router in (
        recommendations_router,
        ops_router,
        events_router,
        profiles_router,
        # Before the catalog: /v1/campaigns/allocation must not match /v1/campaigns/{id}.
        ads_router,
        promotions_router,
        catalog_router,
        registry_router,
        erasure_router,
        dashboard_router,
        experiments_router,
        analytics_router,
        evaluation_router,
    ):
        app.include_router(router)
    app.mount("/dashboard/static", dashboard_static, name="dashboard-static")
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app
