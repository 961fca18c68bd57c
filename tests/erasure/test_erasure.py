"""DELETE /v1/users/{id}: no row and no cache entry names the user afterwards, not even after
the next rebuild, and a racing publish is swept up."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import structlog
import structlog.testing
from fastapi import FastAPI
from sqlalchemy import String, Text, inspect, text

from app.analytics.served import drain, served_log
from app.context import AppContext
from app.erasure import service as erasure
from app.models import ExperimentUser, UserProfile
from app.promotions.tally import FLUSH_SECONDS, tally
from app.registry import service as registry
from app.training.pipeline import rebuild
from app.training.publish import PENDING_TTL, live_version, version_key
from tests.conftest import ADMIN, INGEST, READ, unique
from tests.live_world import LiveWorld
from tests.rebuilds import forced_live


async def rows_naming(ctx: AppContext, needle: str) -> dict[str, int]:
    """Rows in any table with any text or JSON column containing `needle`."""

    def columns(conn: Any) -> dict[str, list[str]]:
        inspector = inspect(conn)
        found = {}
        for table in inspector.get_table_names():
            names = [
                c["name"]
                for c in inspector.get_columns(table)
                if isinstance(c["type"], String | Text) or "JSON" in type(c["type"]).__name__
            ]
            if names:
                found[table] = names
        return found

    async with ctx.engine.connect() as conn:
        tables = await conn.run_sync(columns)
        hits = {}
        for table, names in tables.items():
            where = " OR ".join(f'CAST("{n}" AS TEXT) LIKE :needle' for n in names)
            count = await conn.scalar(
                text(f'SELECT count(*) FROM "{table}" WHERE {where}'), {"needle": f"%{needle}%"}
            )
            if count:
                hits[table] = int(count)
    return hits


async def cache_entries_naming(ctx: AppContext, needle: str) -> list[str]:
    """Every cache key whose name, fields, members or values contain `needle`."""
    marker = needle.encode()

    async def op(client: Any) -> list[str]:
        found = []
        async for raw in client.scan_iter(match="*", count=1000):
            name = raw.decode()
            if needle in name:
                found.append(name)
                continue
            kind = (await client.type(raw)).decode()
            if kind == "hash":
                content = await client.hgetall(raw)
                blobs = [b for pair in content.items() for b in pair]
            elif kind == "zset":
                blobs = await client.zrange(raw, 0, -1)
            elif kind == "set":
                blobs = list(await client.smembers(raw))
            elif kind == "list":
                blobs = await client.lrange(raw, 0, -1)
            else:
                blobs = [await client.get(raw) or b""]
            if any(marker in blob for blob in blobs):
                found.append(f"{name} ({kind})")
        return found

    return await ctx.cache.run(op)


def shopper_events(user: str, live_world: LiveWorld) -> list[dict[str, Any]]:
    items = [i["item_id"] for i in live_world.items[:6]]
    now = datetime.now(UTC) - timedelta(hours=1)
    events = [
        {
            "event_id": unique("e"),
            "user_id": user,
            "item_id": item,
            "type": kind,
            "timestamp": (now + timedelta(minutes=k)).isoformat(),
        }
        for k, (item, kind) in enumerate(
            [(i, "view") for i in items] + [(items[0], "purchase"), (items[1], "add_to_cart")]
        )
    ]
    events.append(
        {
            "event_id": unique("e"),
            "user_id": user,
            "type": "ad_click",
            "campaign_id": unique("c"),
            "timestamp": now.isoformat(),
        }
    )
    return events


async def serve_lists(client: httpx.AsyncClient, ctx: AppContext, user: str) -> None:
    """Two served lists naming the user: one drained into `served_lists` by the analytics pass,
    one still waiting in the cache's queue."""
    for drained in (True, False):
        resp = await client.get(f"/v1/users/{user}/recommendations", headers=READ)
        assert resp.status_code == 200, resp.text
        assert await served_log(ctx).flush(ctx) >= 1
        if drained:
            assert await drain(ctx, {}) >= 1


async def assign_to_experiment(ctx: AppContext, user: str) -> None:
    """An experiment assignment, as the analytics pass records a first exposure."""
    async with ctx.sessions() as session:
        session.add(
            ExperimentUser(
                experiment=unique("exp"),
                user_id=user,
                variant="treatment",
                first_seen_at=datetime.now(UTC),
                lists=1,
            )
        )
        await session.commit()


@pytest.fixture(autouse=True)
def quick_follow_up(monkeypatch: pytest.MonkeyPatch, app: FastAPI) -> Iterator[None]:
    monkeypatch.setattr(erasure, "FOLLOW_UP_DELAY", 0.05)
    monkeypatch.setattr(erasure, "FOLLOW_UP_POLL", 0.05)
    yield
    # A failed test must not leave a follow-up polling for an hour behind it (the next test's
    # wait_follow_ups would wait for it).
    for task in app.state.ctx.extras.get("erasure_tasks", ()):
        task.cancel()


async def test_erasure_needs_the_admin_scope(client: httpx.AsyncClient) -> None:
    assert (await client.delete("/v1/users/someone")).status_code == 401
    assert (await client.delete("/v1/users/someone", headers=READ)).status_code == 403
    assert (await client.delete("/v1/users/someone", headers=INGEST)).status_code == 403


async def test_erased_user_is_gone_everywhere_also_after_a_rebuild(
    client: httpx.AsyncClient, app: FastAPI, live_world: LiveWorld
) -> None:
    ctx: AppContext = app.state.ctx
    user = unique("erase-me")
    attributes = [{"user_id": user, "attributes": {"tier": "gold"}}]
    assert (await client.post("/v1/users", json=attributes, headers=INGEST)).status_code == 200
    resp = await client.post("/v1/events", json=shopper_events(user, live_world), headers=INGEST)
    assert resp.status_code == 202, resp.text
    with forced_live(ctx):
        built = await rebuild(ctx, trigger="test")
    assert built["status"] == "live", built
    # Real-time state too: the user waits in the queue and was republished once.
    resp = await client.post("/v1/events", json=shopper_events(user, live_world), headers=INGEST)
    assert resp.status_code == 202
    version = await live_version(ctx.cache)
    assert version is not None
    await ctx.cache.run(lambda r: r.zadd("bl:rt:updated", {user: 1.0}))
    # A version still being written (no pointer to it yet) names the user as well.
    pending = version + 1000
    await ctx.cache.run(
        lambda r: r.hset(version_key(pending, "recs"), user, b'{"s":"cold-start","i":[]}')
    )
    await ctx.cache.run(lambda r: r.expire(version_key(pending, "recs"), PENDING_TTL))
    await serve_lists(client, ctx, user)
    await assign_to_experiment(ctx, user)
    # A sponsored impression: the user's frequency-cap counter and a reach entry.
    sponsored = {
        "event_id": unique("imp"),
        "user_id": user,
        "type": "rec_impression",
        "item_id": live_world.items[0]["item_id"],
        "timestamp": datetime.now(UTC).isoformat(),
        "context": {"campaign_id": "erase-camp", "request_id": "r1"},
    }
    resp = await client.post("/v1/events", json=[sponsored], headers=INGEST)
    assert resp.status_code == 202, resp.text
    await ctx.cache.run(lambda r: r.hset("bl:promo:reach:erase-camp:exposed", user, 1))
    before = await client.get(f"/v1/users/{user}/profile", headers=READ)
    assert before.status_code == 200, before.text

    planted = await rows_naming(ctx, user)
    wanted = {"events", "users", "user_profiles", "served_lists", "experiment_users"}
    assert wanted <= set(planted), planted
    named = await cache_entries_naming(ctx, user)
    for part in (":recs", ":prof", "bl:rt:dirty", "bl:analytics:served", "bl:promo:"):
        assert any(part in n for n in named), (part, named)

    resp = await client.delete(f"/v1/users/{user}", headers=ADMIN)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert user not in resp.text and body["user_hash"] == erasure.user_hash(ctx, user)
    assert body["deleted_rows"]["events"] == 2 * len(shopper_events(user, live_world)) + 1
    assert body["deleted_rows"]["users"] == 1 and body["cache"] == "done"
    assert body["cache_entries"] >= 4
    assert {"user_profiles", "served_lists", "experiment_users"} <= set(body["deleted_rows"])

    assert await rows_naming(ctx, user) == {}
    assert await cache_entries_naming(ctx, user) == []
    assert (await client.get(f"/v1/users/{user}", headers=READ)).status_code == 404
    profile = await client.get(f"/v1/users/{user}/profile", headers=READ)
    assert profile.status_code == 404

    with forced_live(ctx):
        after = await rebuild(ctx, trigger="test")
    assert after["status"] == "live", after
    await erasure.wait_follow_ups(ctx)
    assert await rows_naming(ctx, user) == {}
    assert await cache_entries_naming(ctx, user) == []
    assert user not in ctx.extras["event_log"].user_ids  # the worker's log was reloaded
    # Erasing again is harmless and finds nothing.
    again = await client.delete(f"/v1/users/{user}", headers=ADMIN)
    assert again.status_code == 202 and sum(again.json()["deleted_rows"].values()) == 0


async def test_a_publish_racing_the_erasure_is_swept_up(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    ctx: AppContext = app.state.ctx
    user = unique("racer")
    # A rebuild that read the events before the erasure is still running...
    racing = await registry.start_run(ctx.sessions, "als", "test")
    # The scheduled follow-up would sweep while this test plants the racing writes: hold it
    # off and run the follow-up itself below, once they are in place.
    erasure.FOLLOW_UP_DELAY = 3600.0  # restored by the quick_follow_up fixture
    erased_at = time.time()
    resp = await client.delete(f"/v1/users/{user}", headers=ADMIN)
    assert resp.status_code == 202
    for task in ctx.extras.get("erasure_tasks", ()):
        task.cancel()
    # ...and publishes the user afterwards, under its pending version, with their profile row;
    name = version_key(racing, "recs")
    await ctx.cache.run(lambda r: r.hset(name, user, b'{"s":"personalised","i":[]}'))
    await ctx.cache.run(lambda r: r.expire(name, PENDING_TTL))
    async with ctx.sessions() as session:
        session.add(UserProfile(user_id=user, segment="browser", version=racing))
        await session.commit()
    # another API process flushes a list it served the user just before the erasure, and
    # the analytics pass records their experiment exposure.
    resp = await client.get(f"/v1/users/{user}/recommendations", headers=READ)
    assert resp.status_code == 200
    await served_log(ctx).flush(ctx)
    await assign_to_experiment(ctx, user)
    assert set(await rows_naming(ctx, user)) >= {"user_profiles", "experiment_users"}
    erasure.FOLLOW_UP_DELAY = 0.05
    follow_up = asyncio.create_task(erasure.follow_up(ctx, user, erased_at))
    await asyncio.sleep(0.3)
    assert not follow_up.done()  # it waits while the racing rebuild is still training
    await registry.finish_run(ctx.sessions, racing, "failed", detail="test: racing publish")
    assert await asyncio.wait_for(follow_up, timeout=30) > 0
    assert await rows_naming(ctx, user) == {}
    assert await cache_entries_naming(ctx, user) == []
    await ctx.cache.run(lambda r: r.delete(name))


async def test_reach_noted_but_not_yet_flushed_stays_gone(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    ctx: AppContext = app.state.ctx
    user = unique("unflushed")
    # Serving noted the user as held out of a promotion a moment ago; the flush is due later.
    notes = tally(ctx)
    notes.note(ctx, "erase-unflushed", user, "holdout")
    assert notes.pending()
    resp = await client.delete(f"/v1/users/{user}", headers=ADMIN)
    assert resp.status_code == 202
    await erasure.wait_follow_ups(ctx)
    await asyncio.sleep(FLUSH_SECONDS * 2)  # the flush that was due has run
    assert await cache_entries_naming(ctx, user) == []
    # Served again after the erasure (new activity): noted and flushed once more.
    notes.note(ctx, "erase-unflushed", user, "holdout")
    await notes.flush(ctx)
    assert await cache_entries_naming(ctx, user) != []
    await erasure.sweep_cache(ctx, user)


async def test_audiences_lose_the_user_and_keep_the_others(app: FastAPI) -> None:
    ctx: AppContext = app.state.ctx
    user, other = unique("aud-user"), unique("aud-other")
    name = version_key(999_000, "aud")
    blob = b'{"p": [["%s", 0.9, 0.1], ["%s", 0.5, 0.05]], "b": [["%s", 0.2, 0.01]]}' % (
        user.encode(),
        other.encode(),
        user.encode(),
    )
    await ctx.cache.run(lambda r: r.hset(name, "c1", blob))
    try:
        removed = await erasure.sweep_cache(ctx, user)
        stored = await ctx.cache.run(lambda r: r.hget(name, "c1"))
    finally:
        await ctx.cache.run(lambda r: r.delete(name))
    assert removed >= 1
    assert user.encode() not in stored
    assert other.encode() in stored


async def test_the_log_carries_a_hash_never_the_id(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The suite logs at WARNING; catch the erasure's own log lines whatever the level.
    capture = structlog.testing.LogCapture()
    logger = structlog.wrap_logger(
        None,
        processors=[capture],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )
    monkeypatch.setattr(erasure, "log", logger)
    user = unique("secret-shopper")
    resp = await client.delete(f"/v1/users/{user}", headers=ADMIN)
    assert resp.status_code == 202
    await erasure.wait_follow_ups(app.state.ctx)
    erased = [e for e in capture.entries if e["event"] == "user erased"]
    assert len(erased) == 1
    assert erased[0]["user"] == erasure.user_hash(app.state.ctx, user) != user
    assert all(user not in str(value) for e in capture.entries for value in e.values())
