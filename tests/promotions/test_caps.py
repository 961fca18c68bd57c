"""Frequency caps: counted from sponsored rec_impression events, shared by every process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.config import Settings
from app.main import create_app
from app.promotions.store import forget_user
from app.promotions.tally import tally
from tests.conftest import BACKEND, READ
from tests.promotions.caps_helpers import impression, send
from tests.promotions.conftest import PromoWorld, recommend, sponsored


@pytest.fixture
async def other_process(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """A second API instance on the same database and Redis: its own cache connections,
    live view and promotion copy, as another process has (the in-process store of the
    SQLite path is private to one app, so there the first app stands in for both)."""
    if BACKEND == "sqlite":
        yield None, None  # type: ignore[misc]
        return
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://other") as http:
            yield http, application


async def cap_hits(apps: list[Any], client: httpx.AsyncClient, campaign_id: str) -> int:
    for app in apps:  # each process sends its counts in the background: now, here
        await tally(app.state.ctx).flush(app.state.ctx)
    resp = await client.get(f"/v1/campaigns/{campaign_id}/delivery", headers=READ)
    assert resp.status_code == 200, resp.text
    return int(resp.json()["cap_hits"])


async def test_caps_hold_across_processes(
    client: httpx.AsyncClient, promo_world: PromoWorld, other_process: tuple[Any, Any], app: Any
) -> None:
    w = promo_world
    other = other_process[0] or client
    apps = [a for a in (app, other_process[1]) if a is not None]
    users = [u for u in w.users("shoes") if not w.held_out(w.capped, u)][:3]
    for user in users:
        first = sponsored(await recommend(client, user, 10), w.capped)
        assert len(first) == 1, user
        item = first[0]["item_id"]
        # The storefront reports the impression to the other process, twice (a retry): one.
        once = impression(user, w.capped, item)
        await send(other, [once])
        assert (await send(other, [once]))["duplicates"] == 1
        assert sponsored(await recommend(client, user, 10), w.capped)
        assert sponsored(await recommend(other, user, 10), w.capped)
        # The second impression (campaign named in the context) reaches the cap of 2 a day.
        await send(other, [impression(user, w.capped, item, in_context=True)])
        before = await cap_hits(apps, client, w.capped)
        for api in (client, other, client):
            body = await recommend(api, user, 10)
            assert not sponsored(body, w.capped), (user, body["items"])
            assert len(body["items"]) == 10
        assert await cap_hits(apps, client, w.capped) == before + 3  # every blocked request
    # Erasure's hook clears the counters: the shopper is eligible again.
    assert await forget_user(app.state.ctx.cache, users[0]) >= 1
    assert sponsored(await recommend(client, users[0], 10), w.capped)


async def test_impressions_outside_the_cap_window_do_not_count(
    client: httpx.AsyncClient, promo_world: PromoWorld
) -> None:
    w = promo_world
    user = next(u for u in w.users("beauty") if not w.held_out(w.capped, u))
    item = w.items[w.capped][0]
    old = [impression(user, w.capped, item, ago=timedelta(hours=30)) for _ in range(3)]
    await send(client, old)
    assert sponsored(await recommend(client, user, 10), w.capped)
