"""Real time: a shopper's new behaviour shows in their list without a rebuild."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.context import AppContext
from app.realtime.loop import compute_batch, current_model
from app.realtime.queue import DIRTY_KEY, mark_dirty
from app.realtime.recompute import load_user_events
from app.recommendations.live_view import get_live_view
from app.training.pipeline import rebuild
from tests.conftest import INGEST, READ, unique
from tests.live_world import LiveWorld
from tests.rebuilds import drain, forced_live


@pytest.fixture
async def ctx(app: Any, live_world: LiveWorld) -> AsyncIterator[AppContext]:
    """The app's context with a model of its own live (earlier tests may have swapped it)."""
    context: AppContext = app.state.ctx
    with forced_live(context):
        assert (await rebuild(context, trigger="test"))["status"] == "live"
    await get_live_view(context).refresh(context, force=True)
    yield context


async def shopper_of(
    client: httpx.AsyncClient, ctx: AppContext, world: LiveWorld, category: str, count: int = 6
) -> str:
    """A fresh shopper (other tests keep the world's fans untouched) who bought `category`."""
    user = unique(f"rt-{category}")
    items = [i["item_id"] for i in world.items if i["category"] == category][:count]
    resp = await client.post("/v1/events", json=purchases(user, items, 60 * 24), headers=INGEST)
    assert resp.status_code == 202
    await drain(ctx)
    return user


def purchases(user: str, items: list[str], minutes_ago: float = 1.0) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {
            "event_id": unique("rt"),
            "user_id": user,
            "item_id": item,
            "type": "purchase",
            "amount": 20.0,
            "timestamp": (now - timedelta(minutes=minutes_ago, seconds=k)).isoformat(),
        }
        for k, item in enumerate(items)
    ]


async def categories_of(client: httpx.AsyncClient, world: LiveWorld, user: str) -> Counter[str]:
    resp = await client.get(f"/v1/users/{user}/recommendations?n=10", headers=READ)
    assert resp.status_code == 200
    return Counter(
        world.category_of(i["item_id"])
        for i in resp.json()["items"]
        if i["item_id"].startswith(world.prefix)
    )


async def test_new_shopper_gets_a_personalised_list_at_once(
    client: httpx.AsyncClient, ctx: AppContext, live_world: LiveWorld
) -> None:
    user = unique("newbie")
    beauty = [i["item_id"] for i in live_world.items if i["category"] == "beauty"][:4]
    resp = await client.post("/v1/events", json=purchases(user, beauty), headers=INGEST)
    assert resp.status_code == 202
    await drain(ctx)
    body = (await client.get(f"/v1/users/{user}/recommendations?n=10", headers=READ)).json()
    assert body["strategy"] == "personalised"
    assert not {i["item_id"] for i in body["items"]} & set(beauty)
    assert (await categories_of(client, live_world, user))["beauty"] >= 7


async def test_a_shopper_who_buys_another_category_sees_it_dominate(
    client: httpx.AsyncClient, ctx: AppContext, live_world: LiveWorld
) -> None:
    user = await shopper_of(client, ctx, live_world, "shoes", count=3)
    assert (await categories_of(client, live_world, user))["shoes"] >= 7
    electronics = [i["item_id"] for i in live_world.items if i["category"] == "electronics"]
    await client.post("/v1/events", json=purchases(user, electronics[:12], 0.1), headers=INGEST)
    await drain(ctx)
    after = await categories_of(client, live_world, user)
    assert after["electronics"] > after["shoes"], after


async def test_purchased_item_drops_out(
    client: httpx.AsyncClient, ctx: AppContext, live_world: LiveWorld
) -> None:
    user = await shopper_of(client, ctx, live_world, "electronics")
    first = (await client.get(f"/v1/users/{user}/recommendations?n=5", headers=READ)).json()
    top = first["items"][0]["item_id"]
    await client.post("/v1/events", json=purchases(user, [top], 0.05), headers=INGEST)
    await drain(ctx)
    again = (await client.get(f"/v1/users/{user}/recommendations?n=50", headers=READ)).json()
    assert top not in {i["item_id"] for i in again["items"]}


async def test_new_items_get_content_neighbours_before_a_rebuild(
    client: httpx.AsyncClient, ctx: AppContext, live_world: LiveWorld
) -> None:
    item = unique("fresh-shoe")
    doc = {"item_id": item, "category": "shoes", "brand": "stride", "tags": ["shoes", "stride"]}
    assert (await client.post("/v1/items", json=[doc], headers=INGEST)).status_code == 200
    await drain(ctx)
    similar = (await client.get(f"/v1/items/{item}/similar?n=5", headers=READ)).json()
    assert {live_world.category_of(i["item_id"]) for i in similar["items"]} == {"shoes"}


async def test_the_queue_coalesces_repeated_users(ctx: AppContext) -> None:
    users = [unique("burst") for _ in range(3)]
    client = ctx.cache.client
    before = await client.zcard(DIRTY_KEY)
    for _ in range(50):
        await mark_dirty(ctx.cache, users, max_size=1_000_000)
    assert await client.zcard(DIRTY_KEY) - before == 3
    # The cap keeps the queue bounded: nothing new gets in once it is reached.
    size = await client.zcard(DIRTY_KEY)
    await mark_dirty(ctx.cache, [unique("late")], max_size=size)
    assert await client.zcard(DIRTY_KEY) == size
    await drain(ctx)


async def test_lag_is_exported(client: httpx.AsyncClient, ctx: AppContext) -> None:
    await mark_dirty(ctx.cache, [unique("waiting")], max_size=1_000_000)
    ready = (await client.get("/health/ready")).json()
    assert ready["checks"]["realtime"]["queued_users"] >= 1
    metrics = (await client.get("/metrics")).text
    assert "brandlift_realtime_queue_users" in metrics
    assert "brandlift_realtime_lag_seconds" in metrics
    await drain(ctx)


async def test_rebuild_during_updates_keeps_the_newest_list(
    client: httpx.AsyncClient, ctx: AppContext, live_world: LiveWorld
) -> None:
    user = await shopper_of(client, ctx, live_world, "beauty")
    shoes = [i["item_id"] for i in live_world.items if i["category"] == "shoes"]
    before = await categories_of(client, live_world, user)
    with forced_live(ctx):
        building = asyncio.create_task(rebuild(ctx, trigger="test"))
        await asyncio.sleep(0)  # the rebuild has taken its snapshot time
        await client.post("/v1/events", json=purchases(user, shoes[:14], 0.01), headers=INGEST)
        await drain(ctx)
        assert (await building)["status"] == "live"
    await get_live_view(ctx).refresh(ctx, force=True)
    await drain(ctx)
    after = await categories_of(client, live_world, user)
    # Whichever finished last, the shoes bought during the rebuild shape the served list.
    assert after["shoes"] >= before["shoes"] + 3, (before, after)
    served = (await client.get(f"/v1/users/{user}/recommendations?n=50", headers=READ)).json()
    assert not {i["item_id"] for i in served["items"]} & set(shoes[:14])


async def test_carry_over_copies_lists_newer_than_the_build(ctx: AppContext) -> None:
    import time

    from app.realtime.queue import UPDATED_KEY, carry_over_realtime
    from app.training.publish import live_version, version_key

    live = await live_version(ctx.cache)
    assert live is not None
    snapshot = time.time()
    fresh, stale = unique("fresh"), unique("stale")
    client = ctx.cache.client
    await client.hset(version_key(live, "recs"), mapping={fresh: b'{"s":"x"}', stale: b'{"s":"y"}'})
    await client.zadd(UPDATED_KEY, {fresh: snapshot + 1, stale: snapshot - 100})
    target = live + 1_000_000
    carried = await carry_over_realtime(ctx.cache, target, since=snapshot)
    assert fresh in carried and stale not in carried
    assert await client.hget(version_key(target, "recs"), fresh) == b'{"s":"x"}'
    assert await client.hget(version_key(target, "recs"), stale) is None
    await client.delete(version_key(target, "recs"))


@pytest.mark.postgres_only
async def test_marks_fall_back_to_the_database_while_the_cache_is_down(
    settings: Any, app: Any
) -> None:
    from asgi_lifespan import LifespanManager
    from sqlalchemy import select

    from app.main import create_app
    from app.models import DirtyUser
    from app.realtime.queue import move_database_marks

    user = unique("outage")
    cacheless = create_app(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    async with LifespanManager(cacheless):
        transport = httpx.ASGITransport(app=cacheless)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            resp = await http.post("/v1/events", json=purchases(user, ["any-item"]), headers=INGEST)
            assert resp.status_code == 202
    ctx: AppContext = app.state.ctx
    async with ctx.sessions() as session:
        assert await session.get(DirtyUser, user) is not None
    moved = await move_database_marks(ctx.sessions, ctx.cache, max_size=1_000_000)
    assert moved >= 1
    assert await ctx.cache.client.zscore(DIRTY_KEY, user) is not None
    async with ctx.sessions() as session:
        assert (await session.scalar(select(DirtyUser).where(DirtyUser.user_id == user))) is None


async def test_a_batch_publishes_what_each_shopper_alone_would(
    client: httpx.AsyncClient, ctx: AppContext, live_world: LiveWorld
) -> None:
    # The loop scores a whole batch in one call: no shopper's list or ad scores may depend on
    # who else was in the batch.
    users = [await shopper_of(client, ctx, live_world, c) for c in ("shoes", "beauty")]
    users.append(unique("rt-nobody"))  # no events: nothing to publish
    live = current_model(ctx)
    assert live is not None
    now = time.time()
    events = await load_user_events(ctx.engine, users, live.catalog)
    lists, ads = compute_batch(live, events, ctx.settings, set(), now)
    assert set(lists) == set(users[:2])
    for user in users:
        alone = await load_user_events(ctx.engine, [user], live.catalog)
        own_lists, own_ads = compute_batch(live, alone, ctx.settings, set(), now)
        assert lists.get(user) == own_lists.get(user)
        assert ads.get(user) == own_ads.get(user)
