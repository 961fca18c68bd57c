"""`brandlift demo` loads a generated shop once and the API serves it."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from app.demo import load_demo
from app.models import Event, Item
from tests.conftest import READ


async def _count(app: Any, model: Any) -> int:
    async with app.state.ctx.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_demo_loads_once(app: Any, settings: Any, client: httpx.AsyncClient) -> None:
    events_before = await _count(app, Event)
    summary = await load_demo(settings, users=60, items=40, days=20, only_if_empty=False, seed=99)
    assert summary.startswith("demo loaded")
    loaded = await _count(app, Event) - events_before
    assert loaded > 100
    resp = await client.get("/v1/items/i00001", headers=READ)
    assert resp.status_code == 200 and resp.json()["brand"]
    # Items exist now, so the default (only if empty) call loads nothing more.
    assert "nothing loaded" in await load_demo(settings, users=60, items=40, days=20)
    assert await _count(app, Event) - events_before == loaded
    assert await _count(app, Item) >= 40
