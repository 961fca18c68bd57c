"""Health endpoints: liveness, and readiness failing for real when a dependency is gone."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from app.config import Settings
from app.main import create_app
from tests.conftest import BACKEND, INGEST, unique

# Port 1 on loopback: nothing listens there, so connections are refused at once.
DEAD_POSTGRES = "postgresql://postgres@127.0.0.1:1/brandlift"
DEAD_REDIS = "redis://127.0.0.1:1/0"


@asynccontextmanager
async def running(settings: Settings, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A separate app (own engine and cache) with some settings changed."""
    app = create_app(settings.model_copy(update=changes))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


async def test_live(client: httpx.AsyncClient) -> None:
    resp = await client.get("/health/live")
    assert resp.status_code == 200
    assert resp.json() == {"status": "alive"}


async def test_ready_when_everything_answers(client: httpx.AsyncClient) -> None:
    resp = await client.get("/health/ready")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert body["status"] == "ready" and body["down"] == []
    database, cache = body["checks"]["database"], body["checks"]["cache"]
    assert database["status"] == "ok" and cache["status"] == "ok"
    if BACKEND == "sqlite":
        assert (database["backend"], cache["backend"]) == ("sqlite", "in-process")
    else:
        assert (database["backend"], cache["backend"]) == ("postgresql", "redis")


async def test_ready_is_503_when_postgres_is_unreachable(settings: Settings) -> None:
    async with running(settings, database_url=DEAD_POSTGRES) as http:
        started = time.monotonic()
        resp = await http.get("/health/ready")
        assert time.monotonic() - started < 5  # a probe must not hang on a dead database
        live = await http.get("/health/live")
    assert resp.status_code == 503, resp.text
    body = resp.json()
    assert body["status"] == "unavailable" and body["down"] == ["database"]
    assert body["checks"]["database"]["status"] == "down"
    assert body["checks"]["database"]["error"]
    assert body["checks"]["cache"]["status"] == "ok"
    assert live.status_code == 200  # liveness does not depend on the database


async def test_ingest_is_503_problem_when_postgres_is_unreachable(settings: Settings) -> None:
    event = {
        "event_id": unique("e"),
        "user_id": "u",
        "item_id": "i",
        "type": "view",
        "timestamp": "2026-01-01T00:00:00Z",
    }
    async with running(settings, database_url=DEAD_POSTGRES) as http:
        resp = await http.post("/v1/events", json=[event], headers=INGEST)
    assert resp.status_code == 503, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert "database" in resp.json()["detail"]


async def test_ready_is_503_when_redis_is_unreachable(settings: Settings) -> None:
    async with running(settings, redis_url=DEAD_REDIS) as http:
        started = time.monotonic()
        resp = await http.get("/health/ready")
        assert time.monotonic() - started < 5
    assert resp.status_code == 503, resp.text
    body = resp.json()
    assert body["status"] == "unavailable" and body["down"] == ["cache"]
    assert body["checks"]["database"]["status"] == "ok"
    cache = body["checks"]["cache"]
    assert cache["backend"] == "redis" and cache["status"] != "ok" and cache["error"]


async def test_ready_names_both_when_both_are_down(settings: Settings) -> None:
    async with running(settings, database_url=DEAD_POSTGRES, redis_url=DEAD_REDIS) as http:
        resp = await http.get("/health/ready")
    assert resp.status_code == 503
    assert resp.json()["down"] == ["cache", "database"]
