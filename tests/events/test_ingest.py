"""POST /v1/events: round trips, idempotency and the all-or-nothing batch rule."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from app.models import Event, Item, User
from tests.conftest import INGEST, READ, unique


def event(**overrides: Any) -> dict[str, Any]:
    base = {
        "event_id": unique("e"),
        "user_id": "u-default",
        "type": "view",
        "timestamp": datetime.now(UTC).isoformat(),
        "item_id": "i-default",
    }
    base.update(overrides)
    return base


async def count_events(app: Any, ids: list[str]) -> int:
    async with app.state.ctx.sessions() as session:
        result = await session.scalar(
            select(func.count()).select_from(Event).where(Event.event_id.in_(ids))
        )
        return int(result or 0)


async def test_round_trip_stores_every_field(client: httpx.AsyncClient, app: Any) -> None:
    user, item = unique("u"), unique("i")
    ev = event(
        user_id=user,
        item_id=item,
        type="purchase",
        quantity=2,
        amount=59.9,
        dwell_seconds=12.5,
        source="web",
        context={"page": "pdp", "request_id": "r1"},
    )
    resp = await client.post("/v1/events", json=[ev], headers=INGEST)
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"accepted": 1, "duplicates": 0}
    async with app.state.ctx.sessions() as session:
        row = await session.scalar(select(Event).where(Event.event_id == ev["event_id"]))
        assert row is not None
        assert (row.user_id, row.item_id, row.type) == (user, item, "purchase")
        assert (row.quantity, row.amount, row.dwell_seconds) == (2, 59.9, 12.5)
        assert row.context == {"page": "pdp", "request_id": "r1"}
        assert abs((row.ts - datetime.fromisoformat(ev["timestamp"])).total_seconds()) < 1e-3
        # Unknown users and items become bare rows instead of a rejection.
        assert await session.get(User, user) is not None
        bare = await session.get(Item, item)
        assert bare is not None and bare.available is True


async def test_resent_events_are_counted_as_duplicates(client: httpx.AsyncClient, app: Any) -> None:
    batch = [event(user_id=unique("u")) for _ in range(20)]
    first = await client.post("/v1/events", json=batch, headers=INGEST)
    assert first.json() == {"accepted": 20, "duplicates": 0}
    again = await client.post("/v1/events", json=[*batch[:15], event()], headers=INGEST)
    assert again.status_code == 202
    assert again.json() == {"accepted": 1, "duplicates": 15}
    assert await count_events(app, [e["event_id"] for e in batch]) == 20


async def test_duplicate_inside_one_batch_is_stored_once(client: httpx.AsyncClient) -> None:
    ev = event()
    resp = await client.post("/v1/events", json=[ev, ev, ev], headers=INGEST)
    assert resp.json() == {"accepted": 1, "duplicates": 2}


async def test_concurrent_duplicate_batches_store_each_event_once(
    client: httpx.AsyncClient, app: Any
) -> None:
    users = [unique("u") for _ in range(30)]
    batch = [event(user_id=users[i % 30], item_id=unique("i")) for i in range(300)]
    shuffled = [list(reversed(batch)), batch, batch[150:] + batch[:150], batch, batch]
    responses = await asyncio.gather(
        *(client.post("/v1/events", json=b, headers=INGEST) for b in shuffled)
    )
    assert all(r.status_code == 202 for r in responses), [r.text for r in responses]
    bodies = [r.json() for r in responses]
    assert sum(b["accepted"] for b in bodies) == 300
    assert sum(b["duplicates"] for b in bodies) == 4 * 300
    assert await count_events(app, [e["event_id"] for e in batch]) == 300


async def test_every_event_type_is_accepted(client: httpx.AsyncClient) -> None:
    batch = [
        event(type="view"),
        event(type="click"),
        event(type="add_to_cart", quantity=1),
        event(type="remove_from_cart", quantity=1),
        event(type="purchase", amount=10.0, quantity=1),
        event(type="rating", value=4.5),
        event(type="ad_impression", item_id=None, campaign_id="c1"),
        event(type="ad_click", item_id=None, campaign_id="c1"),
        event(type="ad_conversion", campaign_id="c1", amount=20.0),
        event(type="rec_impression", context={"request_id": "r"}),
        event(type="rec_click", context={"request_id": "r"}),
    ]
    resp = await client.post("/v1/events", json=batch, headers=INGEST)
    assert resp.status_code == 202, resp.text
    assert resp.json()["accepted"] == len(batch)


async def test_empty_batch_is_a_no_op(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/events", json=[], headers=INGEST)
    assert resp.status_code == 202
    assert resp.json() == {"accepted": 0, "duplicates": 0}


async def test_read_key_cannot_ingest(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/events", json=[event()], headers=READ)
    assert resp.status_code == 403


async def test_naive_and_past_timestamps(client: httpx.AsyncClient) -> None:
    old = (datetime.now(UTC) - timedelta(days=400)).isoformat()
    ok = await client.post("/v1/events", json=[event(timestamp=old)], headers=INGEST)
    assert ok.status_code == 202
    naive = await client.post(
        "/v1/events", json=[event(timestamp="2026-01-01T10:00:00")], headers=INGEST
    )
    assert naive.status_code == 422
    assert naive.json()["errors"][0]["field"] == "timestamp"
