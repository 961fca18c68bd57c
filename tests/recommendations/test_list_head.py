"""Serving reads a list's short head ("top") and reads on into the whole list ("recs") only
when filters leave the head short; versions published without a head are served whole."""

from __future__ import annotations

from typing import Any

import httpx

from app.recommendations.live_view import get_live_view
from app.training.publish import LIVE_KEY, TOP_ITEMS, version_key
from tests.conftest import INGEST, READ
from tests.live_world import LiveWorld


def _fan(world: LiveWorld, category: str) -> str:
    return next(u for u, c in world.taste.items() if c == category)


async def _items(client: httpx.AsyncClient, user: str, n: int) -> list[dict[str, Any]]:
    resp = await client.get(f"/v1/users/{user}/recommendations?n={n}", headers=READ)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["strategy"] == "personalised"
    items: list[dict[str, Any]] = body["items"]
    return items


async def test_head_and_whole_list_agree(
    client: httpx.AsyncClient, app: Any, live_world: LiveWorld
) -> None:
    user = _fan(live_world, "shoes")
    cache = app.state.ctx.cache.client
    top = await cache.hget(version_key(live_world.version, "top"), user)
    assert top is not None
    head = await _items(client, user, 10)  # read from the head
    whole = await _items(client, user, 50)  # read from the whole list
    assert len(whole) > TOP_ITEMS
    assert head == whole[:10]


async def test_a_head_emptied_by_filters_reads_on_into_the_list(
    client: httpx.AsyncClient, live_world: LiveWorld
) -> None:
    user = _fan(live_world, "beauty")
    whole = await _items(client, user, 40)
    assert len(whole) >= TOP_ITEMS + 10
    # Most of the head becomes unavailable: the list must go on with the user's next
    # personalised items, not drop to the popular fallback.
    gone = [i["item_id"] for i in whole[: TOP_ITEMS - 5]]
    off = await client.post(
        "/v1/items", json=[{"item_id": i, "available": False} for i in gone], headers=INGEST
    )
    assert off.status_code == 200, off.text
    try:
        served = await _items(client, user, 10)
        assert served == whole[TOP_ITEMS - 5 : TOP_ITEMS + 5]
        excluded = await client.get(
            f"/v1/users/{user}/recommendations",
            params={"n": 3, "exclude": ",".join(i["item_id"] for i in served[:3])},
            headers=READ,
        )
        assert [i["item_id"] for i in excluded.json()["items"]] == [
            i["item_id"] for i in whole[TOP_ITEMS - 2 : TOP_ITEMS + 1]
        ]
    finally:
        back = [{"item_id": i, "available": True} for i in gone]
        await client.post("/v1/items", json=back, headers=INGEST)


async def test_a_version_published_without_a_head_is_served_whole(
    client: httpx.AsyncClient, app: Any, live_world: LiveWorld
) -> None:
    # A version written before the head existed (an upgrade with the old version live).
    ctx = app.state.ctx
    cache = ctx.cache.client
    user = _fan(live_world, "electronics")
    expected = await _items(client, user, 10)
    live = int(await cache.get(LIVE_KEY))
    old = live + 1000
    names = [n.decode() async for n in cache.scan_iter(match=version_key(live, "*"))]
    for name in names:
        part = name.rsplit(":", 1)[1]
        if part != "top":
            await cache.restore(version_key(old, part), 0, await cache.dump(name), replace=True)
    view = get_live_view(ctx)
    try:
        await cache.set(LIVE_KEY, old)
        await view.refresh(ctx, force=True)
        assert view.version == old and not view.has_top
        assert await _items(client, user, 10) == expected
    finally:
        await cache.set(LIVE_KEY, live)
        await view.refresh(ctx, force=True)
        for name in names:
            await cache.delete(version_key(old, name.rsplit(":", 1)[1]))
    assert view.version == live and view.has_top
