"""A second app on the session's database for feedback tests: no settle delay, a 1-hour
attribution window (so "outside the window" stays inside the one-day future limit)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from tests.conftest import ADMIN, INGEST, READ

WINDOW_HOURS = 1.0


@pytest.fixture(scope="session")
async def feedback_app(settings: Settings) -> AsyncIterator[FastAPI]:
    changed = settings.model_copy(
        update={
            "analytics_settle_seconds": 0.0,
            "analytics_request_budget_seconds": 0.0,  # exact counts right after each post
            "attribution_window_hours": WINDOW_HOURS,
        }
    )
    application = create_app(changed)
    async with LifespanManager(application):
        yield application


@pytest.fixture(scope="session")
async def feedback(feedback_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=feedback_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        # Items first: this app's popular fallback is read once a minute, so the first list
        # it serves must already find some.
        feedback_app.state.feedback_items = await seed_catalog(http, "feedback")
        yield http


@pytest.fixture
def catalog(feedback: httpx.AsyncClient, feedback_app: FastAPI) -> list[str]:
    """The items seeded for the feedback app (prices 10, 11, 12, ...)."""
    return list(feedback_app.state.feedback_items)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat()


def soon(minutes: float) -> str:
    return iso(datetime.now(UTC) + timedelta(minutes=minutes))


async def post_events(client: httpx.AsyncClient, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 5000):
        resp = await client.post("/v1/events", json=events[start : start + 5000], headers=INGEST)
        assert resp.status_code == 202, resp.text


async def seed_catalog(client: httpx.AsyncClient, prefix: str, n: int = 12) -> list[str]:
    """A few items with views, so even a fresh database serves non-empty popular lists."""
    items = [
        {"item_id": f"{prefix}-item-{k}", "category": "feedback", "price": 10.0 + k}
        for k in range(n)
    ]
    resp = await client.post("/v1/items", json=items, headers=INGEST)
    assert resp.status_code == 200, resp.text
    views = [
        {
            "event_id": f"{prefix}-view-{k}",
            "user_id": f"{prefix}-viewer",
            "type": "view",
            "item_id": item["item_id"],
            "timestamp": soon(-60),
        }
        for k, item in enumerate(items)
    ]
    await post_events(client, views)
    return [i["item_id"] for i in items]


async def create_experiment(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/v1/experiments", json=body, headers=ADMIN)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def stop_experiment(client: httpx.AsyncClient, name: str) -> None:
    resp = await client.post(f"/v1/experiments/{name}/stop", headers=ADMIN)
    assert resp.status_code == 200, resp.text


async def serve(client: httpx.AsyncClient, user: str, n: int = 5) -> dict[str, Any]:
    resp = await client.get(f"/v1/users/{user}/recommendations?n={n}", headers=READ)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def results(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    resp = await client.get(f"/v1/experiments/{name}/results", headers=READ)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())
