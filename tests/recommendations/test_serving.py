"""Serving: planted tastes come back, filters hold, cold start never comes back empty."""

from __future__ import annotations

from collections import Counter

import httpx

from tests.conftest import ADMIN, INGEST, READ, unique
from tests.live_world import LiveWorld


def _fan(world: LiveWorld, category: str, k: int = 0) -> str:
    return [u for u, c in world.taste.items() if c == category][k]


async def test_planted_tastes_dominate_recommendations(
    client: httpx.AsyncClient, live_world: LiveWorld
) -> None:
    for category in ("shoes", "electronics", "beauty"):
        for k in range(3):
            user = _fan(live_world, category, k)
            resp = await client.get(f"/v1/users/{user}/recommendations?n=10", headers=READ)
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert body["strategy"] == "personalised"
            assert body["model_version"] >= live_world.version
            assert len(body["items"]) == 10
            categories = Counter(
                live_world.category_of(i["item_id"])
                for i in body["items"]
                if i["item_id"].startswith(live_world.prefix)
            )
            assert categories[category] >= 8, (user, categories)
            assert all(i["reason"] for i in body["items"])


async def test_purchased_items_are_never_recommended(
    client: httpx.AsyncClient, live_world: LiveWorld
) -> None:
    for user in list(live_world.taste)[:15]:
        bought = live_world.purchases(user)
        resp = await client.get(f"/v1/users/{user}/recommendations?n=50", headers=READ)
        returned = {i["item_id"] for i in resp.json()["items"]}
        assert not returned & bought


async def test_filters_are_applied_and_filled(
    client: httpx.AsyncClient, live_world: LiveWorld
) -> None:
    user = _fan(live_world, "shoes")
    resp = await client.get(
        f"/v1/users/{user}/recommendations", params={"n": 5, "category": "beauty"}, headers=READ
    )
    body = resp.json()
    assert len(body["items"]) == 5
    assert {live_world.category_of(i["item_id"]) for i in body["items"]} == {"beauty"}

    resp = await client.get(
        f"/v1/users/{user}/recommendations", params={"n": 5, "brand": "peak"}, headers=READ
    )
    assert resp.status_code == 200
    for item in resp.json()["items"]:
        assert item["item_id"] in {i["item_id"] for i in live_world.items if i["brand"] == "peak"}

    first = await client.get(f"/v1/users/{user}/recommendations?n=3", headers=READ)
    top = [i["item_id"] for i in first.json()["items"]]
    again = await client.get(
        f"/v1/users/{user}/recommendations",
        params={"n": 3, "exclude": ",".join(top[:2])},
        headers=READ,
    )
    assert not {i["item_id"] for i in again.json()["items"]} & set(top[:2])


async def test_unknown_user_gets_cold_start_items(
    client: httpx.AsyncClient, live_world: LiveWorld
) -> None:
    resp = await client.get(f"/v1/users/{unique('nobody')}/recommendations?n=7", headers=READ)
    assert resp.status_code == 200
    body = resp.json()
    assert body["strategy"] == "cold-start"
    assert len(body["items"]) == 7
    assert body["request_id"]


async def test_unavailable_items_are_filtered(
    client: httpx.AsyncClient, live_world: LiveWorld
) -> None:
    user = _fan(live_world, "electronics", 1)
    resp = await client.get(f"/v1/users/{user}/recommendations?n=5", headers=READ)
    top = resp.json()["items"][0]["item_id"]
    off = await client.post(
        "/v1/items", json=[{"item_id": top, "available": False}], headers=INGEST
    )
    assert off.status_code == 200
    try:
        resp = await client.get(f"/v1/users/{user}/recommendations?n=5", headers=READ)
        assert top not in {i["item_id"] for i in resp.json()["items"]}
        popular = await client.get("/v1/popular?n=100&window=all", headers=READ)
        assert top not in {i["item_id"] for i in popular.json()["items"]}
    finally:
        await client.post("/v1/items", json=[{"item_id": top, "available": True}], headers=INGEST)


async def test_bad_parameters_give_422(client: httpx.AsyncClient, live_world: LiveWorld) -> None:
    user = _fan(live_world, "beauty")
    for query in ("n=0", "n=101", "n=abc", "colour=red", "kind=gadget"):
        resp = await client.get(f"/v1/users/{user}/recommendations?{query}", headers=READ)
        assert resp.status_code == 422, query
        assert resp.headers["content-type"].startswith("application/problem+json")
    resp = await client.get("/v1/popular?window=2w", headers=READ)
    assert resp.status_code == 422


async def test_similar_items_share_the_category(
    client: httpx.AsyncClient, live_world: LiveWorld
) -> None:
    item = f"{live_world.prefix}-electronics-0"
    resp = await client.get(f"/v1/items/{item}/similar?n=5", headers=READ)
    assert resp.status_code == 200
    neighbours = [i["item_id"] for i in resp.json()["items"]]
    assert item not in neighbours and len(neighbours) == 5
    assert sum(live_world.category_of(i) == "electronics" for i in neighbours) >= 4
    missing = await client.get(f"/v1/items/{unique('ghost')}/similar", headers=READ)
    assert missing.status_code == 404


async def test_popular_by_category(client: httpx.AsyncClient, live_world: LiveWorld) -> None:
    resp = await client.get(
        "/v1/popular", params={"n": 5, "category": "shoes", "window": "30d"}, headers=READ
    )
    assert resp.status_code == 200
    items = resp.json()["items"]
    assert len(items) == 5
    assert {live_world.category_of(i["item_id"]) for i in items} == {"shoes"}
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)


async def test_models_endpoint_lists_the_live_run(
    client: httpx.AsyncClient, live_world: LiveWorld
) -> None:
    resp = await client.get("/v1/models", headers=ADMIN)
    assert resp.status_code == 200
    body = resp.json()
    live = [m for m in body["models"] if m["status"] == "live"]
    assert len(live) == 1 and body["live_version"] == live[0]["version"]
    metrics = live[0]["metrics"]
    for name in ("ndcg@10", "recall@10", "map@10", "coverage"):
        assert name in metrics
    assert "baseline_popular" in metrics
    assert (await client.get("/v1/models", headers=READ)).status_code == 403
