"""Catalog upserts: round trips, partial updates, last-wins, 404s and concurrent batches."""

from __future__ import annotations

import asyncio
import random
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import INGEST, READ, unique


async def upsert(client: httpx.AsyncClient, path: str, rows: list[dict[str, Any]]) -> None:
    resp = await client.post(path, json=rows, headers=INGEST)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"upserted": len({next(iter(r.values())) for r in rows})}


async def fetch(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    resp = await client.get(path, headers=READ)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_item_round_trip(client: httpx.AsyncClient) -> None:
    item = {
        "item_id": unique("i"),
        "title": "Trail runner 3 — men's",
        "category": "shoes",
        "brand": "Acme",
        "price": 89.95,
        "tags": ["running", "trail"],
        "kind": "product",
        "available": False,
    }
    await upsert(client, "/v1/items", [item])
    got = await fetch(client, f"/v1/items/{item['item_id']}")
    assert {k: got[k] for k in item} == item
    assert got["created_at"] and got["updated_at"]


async def test_item_defaults_when_only_the_id_is_sent(client: httpx.AsyncClient) -> None:
    item_id = unique("i")
    await upsert(client, "/v1/items", [{"item_id": item_id}])
    got = await fetch(client, f"/v1/items/{item_id}")
    assert got["kind"] == "product" and got["available"] is True
    assert got["tags"] == [] and got["title"] is None and got["price"] is None


async def test_user_round_trip(client: httpx.AsyncClient) -> None:
    user = {
        "user_id": unique("u"),
        "attributes": {"country": "DE", "age": 34, "vip": True, "ltv": 120.5, "ref": None},
    }
    await upsert(client, "/v1/users", [user])
    got = await fetch(client, f"/v1/users/{user['user_id']}")
    assert got["user_id"] == user["user_id"]
    assert got["attributes"] == user["attributes"]


async def test_campaign_round_trip_with_promotion(client: httpx.AsyncClient) -> None:
    campaign = {
        "campaign_id": unique("c"),
        "brand": "Acme",
        "category": "shoes",
        "item_ids": ["i1", "i2", "i3"],
        "bid": 0.42,
        "budget": 1000.0,
        "active": True,
        "promotion": {
            "slots": 2,
            "share": 0.25,
            "min_relevance": 0.1,
            "boost": 1.5,
            "frequency_cap": {"impressions": 3, "per_hours": 24.0},
            "start": "2026-01-01T00:00:00Z",
            "end": "2026-02-01T00:00:00Z",
        },
    }
    await upsert(client, "/v1/campaigns", [campaign])
    got = await fetch(client, f"/v1/campaigns/{campaign['campaign_id']}")
    promotion = got.pop("promotion")
    assert {k: got[k] for k in campaign if k != "promotion"} == {
        k: v for k, v in campaign.items() if k != "promotion"
    }
    assert promotion["slots"] == 2 and promotion["share"] == 0.25
    assert promotion["frequency_cap"] == {"impressions": 3, "per_hours": 24.0}
    assert promotion["start"].startswith("2026-01-01T00:00:00")
    assert promotion["end"].startswith("2026-02-01T00:00:00")


async def test_campaign_promotion_defaults(client: httpx.AsyncClient) -> None:
    campaign_id = unique("c")
    await upsert(client, "/v1/campaigns", [{"campaign_id": campaign_id, "promotion": {}}])
    got = await fetch(client, f"/v1/campaigns/{campaign_id}")
    assert got["promotion"]["slots"] == 1 and got["promotion"]["share"] == 0.2
    assert got["active"] is True and got["item_ids"] == []


async def test_partial_upsert_keeps_fields_not_sent(client: httpx.AsyncClient) -> None:
    item_id = unique("i")
    await upsert(
        client,
        "/v1/items",
        [{"item_id": item_id, "title": "Mug", "brand": "Acme", "price": 9.5, "tags": ["home"]}],
    )
    before = await fetch(client, f"/v1/items/{item_id}")
    await upsert(client, "/v1/items", [{"item_id": item_id, "price": 7.0, "available": False}])
    got = await fetch(client, f"/v1/items/{item_id}")
    assert (got["title"], got["brand"], got["tags"]) == ("Mug", "Acme", ["home"])
    assert (got["price"], got["available"]) == (7.0, False)
    assert got["created_at"] == before["created_at"]
    assert got["updated_at"] >= before["updated_at"]
    # An explicit null clears a field (unlike leaving it out).
    await upsert(client, "/v1/items", [{"item_id": item_id, "brand": None}])
    got = await fetch(client, f"/v1/items/{item_id}")
    assert got["brand"] is None and got["title"] == "Mug"


async def test_partial_upsert_of_users_and_campaigns(client: httpx.AsyncClient) -> None:
    user_id, campaign_id = unique("u"), unique("c")
    await upsert(client, "/v1/users", [{"user_id": user_id, "attributes": {"tier": "gold"}}])
    await upsert(client, "/v1/users", [{"user_id": user_id}])
    assert (await fetch(client, f"/v1/users/{user_id}"))["attributes"] == {"tier": "gold"}

    await upsert(
        client,
        "/v1/campaigns",
        [{"campaign_id": campaign_id, "brand": "Acme", "bid": 1.0, "promotion": {"slots": 3}}],
    )
    await upsert(client, "/v1/campaigns", [{"campaign_id": campaign_id, "active": False}])
    got = await fetch(client, f"/v1/campaigns/{campaign_id}")
    assert (got["brand"], got["bid"], got["active"]) == ("Acme", 1.0, False)
    assert got["promotion"]["slots"] == 3


async def test_event_created_bare_rows_are_filled_by_a_later_upsert(
    client: httpx.AsyncClient,
) -> None:
    user_id, item_id = unique("u"), unique("i")
    event = {
        "event_id": unique("e"),
        "user_id": user_id,
        "item_id": item_id,
        "type": "view",
        "timestamp": "2026-01-01T00:00:00Z",
    }
    assert (await client.post("/v1/events", json=[event], headers=INGEST)).status_code == 202
    await upsert(client, "/v1/items", [{"item_id": item_id, "brand": "Acme"}])
    assert (await fetch(client, f"/v1/items/{item_id}"))["brand"] == "Acme"
    assert (await fetch(client, f"/v1/users/{user_id}"))["attributes"] == {}


async def test_last_entry_wins_for_a_repeated_id(client: httpx.AsyncClient) -> None:
    item_id, user_id = unique("i"), unique("u")
    rows = [
        {"item_id": item_id, "title": "first", "price": 1.0},
        {"item_id": unique("i")},
        {"item_id": item_id, "title": "second"},
    ]
    resp = await client.post("/v1/items", json=rows, headers=INGEST)
    assert resp.json() == {"upserted": 2}
    got = await fetch(client, f"/v1/items/{item_id}")
    # Same result as sending the entries one by one: later fields win, others are kept.
    assert (got["title"], got["price"]) == ("second", 1.0)
    users = [{"user_id": user_id, "attributes": {"n": i}} for i in range(5)]
    await upsert(client, "/v1/users", users)
    assert (await fetch(client, f"/v1/users/{user_id}"))["attributes"] == {"n": 4}


@pytest.mark.parametrize("path", ["/v1/items", "/v1/users", "/v1/campaigns"])
async def test_unknown_id_is_404_problem(client: httpx.AsyncClient, path: str) -> None:
    missing = unique("missing")
    resp = await client.get(f"{path}/{missing}", headers=READ)
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == 404 and missing in body["detail"]
    assert body["instance"] == f"{path}/{missing}"


@pytest.mark.parametrize("path", ["/v1/items", "/v1/users", "/v1/campaigns"])
async def test_over_long_path_id_is_422(client: httpx.AsyncClient, path: str) -> None:
    resp = await client.get(f"{path}/{'x' * 257}", headers=READ)
    assert resp.status_code == 422
    assert resp.headers["content-type"].startswith("application/problem+json")


async def test_ids_with_url_special_characters_round_trip(client: httpx.AsyncClient) -> None:
    item_id = f"{unique('i')} sku 42?x=1&y#é"
    await upsert(client, "/v1/items", [{"item_id": item_id, "title": "odd"}])
    got = await fetch(client, f"/v1/items/{quote(item_id, safe='')}")
    assert got["item_id"] == item_id


@pytest.mark.parametrize(
    ("path", "key"),
    [("/v1/items", "item_id"), ("/v1/users", "user_id"), ("/v1/campaigns", "campaign_id")],
)
async def test_concurrent_overlapping_upserts_do_not_deadlock(
    client: httpx.AsyncClient, path: str, key: str
) -> None:
    ids = [unique(key[0]) for _ in range(200)]
    field = {"item_id": "title", "user_id": "attributes", "campaign_id": "brand"}[key]

    def batch(n: int) -> list[dict[str, Any]]:
        chosen = random.Random(n).sample(ids, 150)  # overlapping, in a different order each
        value: Any = {"writer": n} if field == "attributes" else f"writer-{n}"
        return [{key: i, field: value} for i in chosen]

    batches = [batch(n) for n in range(8)]
    responses = await asyncio.wait_for(
        asyncio.gather(*(client.post(path, json=b, headers=INGEST) for b in batches)), timeout=60
    )
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    assert all(r.json() == {"upserted": 150} for r in responses)
    # Every row holds the value of one of the writers that sent it.
    for row_id in ids[:20]:
        got = (await fetch(client, f"{path}/{row_id}"))[field]
        writers = [n for n, b in enumerate(batches) if any(r[key] == row_id for r in b)]
        allowed = [{"writer": n} if field == "attributes" else f"writer-{n}" for n in writers]
        assert got in allowed
