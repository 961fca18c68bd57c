"""/metrics carries the service's own figures: model, last rebuild, worker, cache, queue."""

from __future__ import annotations

import time

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from app.models import ModelRun
from app.registry import service as registry
from tests.conftest import ADMIN, READ
from tests.dashboard.planted import worker_heartbeat
from tests.live_world import LiveWorld
from tests.ops.test_metrics import scrape, value


async def test_model_rebuild_and_worker_gauges(
    client: httpx.AsyncClient, app: FastAPI, live_world: LiveWorld
) -> None:
    ctx = app.state.ctx
    await worker_heartbeat(ctx)
    samples = await scrape(client)
    live = await registry.live_run(ctx.sessions)
    assert live is not None and live.finished_at is not None
    assert value(samples, "brandlift_model_version") == live.version
    age = value(samples, "brandlift_model_age_seconds")
    assert 0 <= age <= time.time() - live.finished_at.timestamp() + 5
    assert value(samples, "brandlift_model_users") > 0
    assert value(samples, "brandlift_model_items") >= len(live_world.items)
    assert 0 <= value(samples, "brandlift_worker_heartbeat_age_seconds") < 30

    async with ctx.sessions() as session:
        last = await session.scalar(
            select(ModelRun)
            .where(ModelRun.finished_at.is_not(None))
            .order_by(ModelRun.finished_at.desc(), ModelRun.version.desc())
            .limit(1)
        )
    assert last is not None and last.finished_at is not None
    duration = (last.finished_at - last.started_at).total_seconds()
    assert value(samples, "brandlift_last_rebuild_duration_seconds") == duration
    statuses = {
        s: value(samples, "brandlift_last_rebuild_status", status=s)
        for s in ("live", "rejected", "failed", "retired")
    }
    assert statuses[last.status] == 1 and sum(statuses.values()) == 1
    finished = value(samples, "brandlift_last_rebuild_finished_timestamp_seconds")
    assert abs(finished - last.finished_at.timestamp()) < 1e-3


async def test_cache_outcomes_queue_and_route_latency(
    client: httpx.AsyncClient, live_world: LiveWorld
) -> None:
    before = await scrape(client)
    user = next(iter(live_world.taste))
    for _ in range(4):
        assert (
            await client.get(f"/v1/users/{user}/recommendations", headers=READ)
        ).status_code == 200
    assert (await client.get("/v1/ops/status", headers=ADMIN)).status_code == 200
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("brandlift_cache_requests_total", result="hit") == 4
    route = "/v1/users/{user_id}/recommendations"
    assert delta("brandlift_http_request_duration_seconds_count", method="GET", route=route) == 4
    bucket = value(
        after,
        "brandlift_http_request_duration_seconds_bucket",
        method="GET",
        route=route,
        le="+Inf",
    )
    assert bucket >= 4
    assert (
        delta("brandlift_http_request_duration_seconds_count", method="GET", route="/v1/ops/status")
        == 1
    )
    assert ("brandlift_realtime_queue_users", frozenset()) in after
    assert ("brandlift_realtime_lag_seconds", frozenset()) in after
