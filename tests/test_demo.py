"""`brandlift demo` loads a generated shop once and the API serves it."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from app.demo import load_demo
from app.models import Campaign, Event, Item, User
from app.synthetic import generate_world
from tests.conftest import READ, unique

SIZE = {"users": 60, "items": 40, "days": 20}


async def _count(app: Any, model: Any, prefix: str) -> int:
    """Rows whose id starts with `prefix` (the session's database holds other tests' rows)."""
    ids = {Item: Item.item_id, User: User.user_id, Campaign: Campaign.campaign_id}
    column = ids.get(model, Event.event_id)
    async with app.state.ctx.sessions() as session:
        query = select(func.count()).select_from(model).where(column.startswith(prefix))
        return int(await session.scalar(query) or 0)


async def test_demo_loads_a_generated_shop_once(
    app: Any, settings: Any, client: httpx.AsyncClient
) -> None:
    prefix = unique("demo") + "-"
    world = generate_world(
        n_users=SIZE["users"], n_items=SIZE["items"], days=SIZE["days"], seed=99, id_prefix=prefix
    )
    # The shared test database may already hold items, so force this load.
    summary = await load_demo(settings, **SIZE, only_if_empty=False, seed=99, id_prefix=prefix)
    assert summary.startswith("demo loaded")
    assert f"{len(world.events)} events" in summary
    assert await _count(app, Item, prefix) == len(world.items)
    assert await _count(app, User, prefix) == len(world.users)
    assert await _count(app, Campaign, prefix) == len(world.campaigns)
    assert await _count(app, Event, prefix) == len(world.events) > 500

    item = world.items[1]
    resp = await client.get(f"/v1/items/{item['item_id']}", headers=READ)
    assert resp.status_code == 200
    body = resp.json()
    assert (body["brand"], body["category"], body["price"]) == (
        item["brand"],
        item["category"],
        item["price"],
    )

    # Items exist now: the default call loads nothing and says so.
    again = await load_demo(settings, **SIZE, seed=99, id_prefix=unique("demo"))
    assert "nothing loaded" in again
    # A forced re-load of the same shop stores no event twice.
    forced = await load_demo(settings, **SIZE, only_if_empty=False, seed=99, id_prefix=prefix)
    assert " 0 events" in forced
    assert await _count(app, Event, prefix) == len(world.events)
