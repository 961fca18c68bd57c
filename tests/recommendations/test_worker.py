"""The worker: jobs, the guardrail, one rebuild at a time, atomic publish."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import update

from app.context import AppContext
from app.models import ModelRun
from app.recommendations.live_view import get_live_view
from app.registry import service as registry
from app.training.pipeline import guardrail, rebuild
from app.training.publish import LIVE_KEY, live_version, version_key, write_version
from app.worker import run_once
from tests.conftest import ADMIN, READ
from tests.live_world import LiveWorld
from tests.rebuilds import forced_live


async def test_rebuild_job_through_the_api(
    client: httpx.AsyncClient, app: Any, live_world: LiveWorld
) -> None:
    resp = await client.post("/v1/admin/rebuild", headers=ADMIN)
    assert resp.status_code == 202
    job_id = resp.json()["job_id"]
    assert resp.json()["status"] == "queued"
    result = await run_once(app.state.ctx)
    assert result is not None and result["status"] in {"live", "rejected"}
    job = (await client.get(f"/v1/admin/jobs/{job_id}", headers=ADMIN)).json()
    assert job["status"] == "done"
    assert job["result"]["version"] == result["version"]
    assert (await client.post("/v1/admin/rebuild", headers=READ)).status_code == 403


def test_guardrail_rule() -> None:
    assert guardrail({"ndcg@10": 0.30}, {"ndcg@10": 0.31}, 0.05) is None
    assert guardrail({"ndcg@10": 0.20}, {"ndcg@10": 0.31}, 0.05) is not None
    assert guardrail({"ndcg@10": 0.20}, None, 0.05) is None


async def test_worse_model_is_rejected_and_live_one_stays(
    client: httpx.AsyncClient, app: Any, live_world: LiveWorld
) -> None:
    ctx: AppContext = app.state.ctx
    live = await registry.live_run(ctx.sessions)
    assert live is not None
    original = dict(live.metrics or {})
    # Plant a live model that was far better than anything this data can give.
    async with ctx.sessions() as session:
        await session.execute(
            update(ModelRun)
            .where(ModelRun.version == live.version)
            .values(metrics={**original, "ndcg@10": 0.99})
        )
        await session.commit()
    try:
        result = await rebuild(ctx, trigger="test")
        assert result["status"] == "rejected", result
        assert await live_version(ctx.cache) == live.version
        rejected = await registry.get_run_by_version(ctx.sessions, result["version"])
        assert rejected is not None and rejected.status == "rejected" and rejected.detail
        resp = await client.get("/v1/models", headers=ADMIN)
        assert resp.json()["live_version"] == live.version
    finally:
        async with ctx.sessions() as session:
            await session.execute(
                update(ModelRun).where(ModelRun.version == live.version).values(metrics=original)
            )
            await session.commit()


async def test_two_workers_never_rebuild_at_once(
    app: Any, settings: Any, live_world: LiveWorld
) -> None:
    first, second = AppContext.create(settings), AppContext.create(settings)
    try:
        results = await asyncio.gather(
            rebuild(first, trigger="test"), rebuild(second, trigger="test")
        )
    finally:
        await first.close()
        await second.close()
    statuses = sorted(r["status"] for r in results)
    assert statuses.count("skipped") == 1, results
    assert statuses[0] in {"live", "rejected"} or statuses[1] in {"live", "rejected"}


async def test_publish_killed_halfway_leaves_the_old_version_served(
    client: httpx.AsyncClient, app: Any, live_world: LiveWorld
) -> None:
    ctx: AppContext = app.state.ctx
    before = await live_version(ctx.cache)
    assert before is not None
    fan = next(iter(live_world.taste))
    await get_live_view(ctx).refresh(ctx, force=True)
    served = (await client.get(f"/v1/users/{fan}/recommendations?n=5", headers=READ)).json()
    doomed = 10_000_000 + (before or 0)

    def many_users() -> Any:
        for k in range(200_000):
            yield f"someone-{k}", b'{"s":"personalised","i":[]}'

    task = asyncio.create_task(
        write_version(ctx.cache, doomed, {"recs": many_users}, {"v": doomed})
    )
    for _ in range(500):  # wait until the publish is really under way, then kill it
        if await ctx.cache.client.exists(version_key(doomed, "recs")):
            break
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert await ctx.cache.client.exists(version_key(doomed, "recs"))
    assert int(await ctx.cache.client.get(LIVE_KEY)) == before
    ttl = await ctx.cache.client.ttl(version_key(doomed, "recs"))
    assert 0 < ttl <= 3600  # the half-written version cleans itself up
    again = (await client.get(f"/v1/users/{fan}/recommendations?n=5", headers=READ)).json()
    assert again["model_version"] == before
    assert [i["item_id"] for i in again["items"]] == [i["item_id"] for i in served["items"]]


async def test_cold_items_and_cold_users_after_a_rebuild(
    client: httpx.AsyncClient, app: Any, live_world: LiveWorld
) -> None:
    from datetime import UTC, datetime

    from tests.conftest import INGEST, unique

    ctx: AppContext = app.state.ctx
    cold_item = unique("cold-glow")
    doc = {"item_id": cold_item, "category": "beauty", "brand": "glow", "tags": ["beauty", "glow"]}
    await client.post("/v1/items", json=[doc], headers=INGEST)
    shopper = unique("one-view")
    beauty_item = next(i["item_id"] for i in live_world.items if i["category"] == "beauty")
    view = {
        "event_id": unique("e"),
        "user_id": shopper,
        "item_id": beauty_item,
        "type": "view",
        "timestamp": datetime.now(UTC).isoformat(),
    }
    await client.post("/v1/events", json=[view], headers=INGEST)
    previous = await live_version(ctx.cache)
    with forced_live(ctx):
        assert (await rebuild(ctx, trigger="test"))["status"] == "live"
    await get_live_view(ctx).refresh(ctx, force=True)

    # An item nobody touched gets neighbours from its brand, category and tags.
    similar = (await client.get(f"/v1/items/{cold_item}/similar?n=5", headers=READ)).json()
    assert {live_world.category_of(i["item_id"]) for i in similar["items"]} == {"beauty"}
    # A shopper with one event gets popular items of the category they touched.
    body = (await client.get(f"/v1/users/{shopper}/recommendations?n=5", headers=READ)).json()
    assert body["strategy"] == "cold-start"
    ours = [i for i in body["items"] if i["item_id"].startswith(live_world.prefix)]
    assert ours and all(live_world.category_of(i["item_id"]) == "beauty" for i in ours)
    # The superseded version is on its way out.
    assert previous is not None
    ttl = await ctx.cache.client.ttl(version_key(previous, "recs"))
    assert 0 < ttl <= 300
