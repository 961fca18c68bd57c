"""A live model trained on a planted world, shared by recommendation, real-time and other tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.training.pipeline import rebuild
from tests.conftest import INGEST, unique
from tests.recommendations.world import planted_world


@dataclass
class LiveWorld:
    prefix: str
    items: list[dict[str, Any]]
    events: list[dict[str, Any]]
    taste: dict[str, str]
    version: int

    def category_of(self, item_id: str) -> str:
        return next(i["category"] for i in self.items if i["item_id"] == item_id)

    def purchases(self, user: str) -> set[str]:
        return {
            e["item_id"] for e in self.events if e["user_id"] == user and e["type"] == "purchase"
        }


async def ingest(
    client: httpx.AsyncClient, items: list[dict[str, Any]], events: list[dict[str, Any]]
) -> None:
    resp = await client.post("/v1/items", json=items, headers=INGEST)
    assert resp.status_code == 200, resp.text
    for start in range(0, len(events), 1000):
        resp = await client.post("/v1/events", json=events[start : start + 1000], headers=INGEST)
        assert resp.status_code == 202, resp.text


@pytest.fixture(scope="session")
async def live_world(client: httpx.AsyncClient, app: Any) -> AsyncIterator[LiveWorld]:
    prefix = unique("w")
    items, events, taste = planted_world(prefix)
    await ingest(client, items, events)
    result = await rebuild(app.state.ctx, trigger="test")
    assert result["status"] == "live", result
    yield LiveWorld(prefix, items, events, taste, result["version"])
