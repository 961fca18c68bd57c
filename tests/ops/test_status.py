"""GET /v1/ops/status: health, live model, runs and activity figures, checked against plants."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from app.ops.status import HEARTBEAT_KEY
from app.registry import service as registry
from app.worker import HEARTBEAT_KEY as WORKER_HEARTBEAT_KEY
from tests.conftest import ADMIN, READ
from tests.dashboard.planted import plant_activity, worker_heartbeat
from tests.live_world import LiveWorld


async def status(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    resp = await client.get("/v1/ops/status", headers=ADMIN, params=params)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_status_needs_the_admin_scope(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/ops/status")).status_code == 401
    assert (await client.get("/v1/ops/status", headers=READ)).status_code == 403


def test_status_reads_the_key_the_worker_writes() -> None:
    assert HEARTBEAT_KEY == WORKER_HEARTBEAT_KEY


async def test_planted_activity_shows_with_its_rates(client: httpx.AsyncClient) -> None:
    before = await status(client)
    planted = await plant_activity(client)
    after = await status(client)

    ingest = after["ingest"]
    assert len(ingest["buckets"]) == ingest["hours"] == 24
    delta = ingest["totals"]["view"] - before["ingest"]["totals"].get("view", 0)
    assert delta == planted.views
    # The views sit in the hour bucket three hours back, computed here independently.
    first_hour = math.floor(time.time() / 3600) - 23
    index = math.floor(planted.views_at.timestamp() / 3600) - first_hour
    old = before["ingest"]["by_type"].get("view", [0] * 24)
    assert ingest["by_type"]["view"][index] - old[index] == planted.views
    assert after["ingest"]["totals"]["rec_impression"] >= planted.impressions

    by_strategy = {r["strategy"]: r for r in after["recommendations"]["by_strategy"]}
    row = by_strategy[planted.strategy]
    assert (row["impressions"], row["clicks"]) == (planted.impressions, planted.clicks)
    assert row["ctr"] == planted.clicks / planted.impressions

    top = after["campaigns"]["top"]
    mine = next(c for c in top if c["campaign_id"] == planted.campaign)
    assert mine == {
        "campaign_id": planted.campaign,
        "brand": planted.brand,
        "impressions": planted.ad_impressions,
        "clicks": planted.ad_clicks,
        "ctr": 1.0,
    }
    ctrs = [c["ctr"] for c in top]
    assert ctrs == sorted(ctrs, reverse=True)
    assert all(c["impressions"] >= after["campaigns"]["min_impressions"] for c in top)


async def test_ingest_window_can_be_chosen(client: httpx.AsyncClient) -> None:
    body = await status(client, hours=6, days=1)
    assert body["ingest"]["hours"] == 6 and len(body["ingest"]["buckets"]) == 6
    assert body["recommendations"]["window_days"] == 1
    assert (await client.get("/v1/ops/status?hours=0", headers=ADMIN)).status_code == 422


async def test_live_model_runs_cache_and_worker(
    client: httpx.AsyncClient, app: FastAPI, live_world: LiveWorld
) -> None:
    ctx = app.state.ctx
    await worker_heartbeat(ctx)
    before = await status(client)
    user = next(iter(live_world.taste))
    for _ in range(3):
        resp = await client.get(f"/v1/users/{user}/recommendations", headers=READ)
        assert resp.status_code == 200
    body = await status(client)

    assert body["health"]["database"]["status"] == "ok"
    assert body["health"]["worker"]["status"] == "ok"
    assert 0 <= body["health"]["worker"]["heartbeat_age_seconds"] < 30
    assert body["health"]["realtime"]["queued_users"] >= 0

    live = await registry.live_run(ctx.sessions)
    model = body["model"]
    assert live is not None and model["version"] == live.version
    assert model["users"] > 0 and model["items"] > 0
    assert 0 <= model["age_seconds"] < 24 * 3600
    assert model["metrics"]["ndcg@10"] == round(live.metrics["ndcg@10"], 4)

    runs = body["runs"]
    assert runs and runs[0]["version"] >= live.version
    assert [r["version"] for r in runs] == sorted((r["version"] for r in runs), reverse=True)
    shown = next(r for r in runs if r["version"] == live.version)
    assert shown["status"] == "live" and shown["duration_seconds"] > 0

    hits = body["cache"]["hits"] - before["cache"]["hits"]
    assert hits == 3
    total = body["cache"]["hits"] + body["cache"]["misses"] + body["cache"]["fallbacks"]
    assert body["cache"]["hit_rate"] == round(body["cache"]["hits"] / total, 4)


async def test_segment_sizes_follow_the_profiles_table(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    body = await status(client)
    segments = body["segments"]
    if not segments["available"]:
        assert segments["sizes"] == []
        return
    async with app.state.ctx.sessions() as session:
        total = await session.scalar(text("SELECT count(*) FROM user_profiles"))
    assert sum(s["users"] for s in segments["sizes"]) == total


async def test_generated_at_is_now(client: httpx.AsyncClient) -> None:
    body = await status(client)
    stamp = datetime.fromisoformat(body["generated_at"])
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 10
    assert body["health"]["status"] in ("ok", "degraded")
