"""Rate limiting per API key (429 with Retry-After, then recovery) and opt-in CORS."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from tests.conftest import ADMIN, INGEST, READ
from tests.ops.test_health import DEAD_REDIS, running

WINDOW = 2
ORIGIN = "https://shop.example"


async def window_start(window: int = WINDOW, needed: float = 1.0) -> None:
    """Make sure the current rate-limit window (aligned to the clock) has `needed` seconds
    left, waiting for the next one if not."""
    left = window - time.time() % window
    if left < needed:
        await asyncio.sleep(left + 0.05)


def rate_limited_count(metrics: str) -> float:
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "brandlift_rate_limited_total":
                return sample.value
    return 0.0


async def test_over_the_limit_answers_429_then_recovers(settings: Settings) -> None:
    async with running(settings, rate_limit_requests=3, rate_limit_window_seconds=WINDOW) as http:
        before = rate_limited_count((await http.get("/metrics")).text)
        await window_start()
        answers = [await http.get("/v1/items/nothing-here", headers=READ) for _ in range(3)]
        assert [a.status_code for a in answers] == [404, 404, 404]
        assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
        refused = await http.get("/v1/items/nothing-here", headers=READ)
        # Another key has its own budget; health and metrics are never counted.
        other = await http.get("/v1/items/nothing-here", headers=ADMIN)
        health = [(await http.get("/health/live")).status_code for _ in range(5)]
        metrics = (await http.get("/metrics")).text
        retry_after = int(refused.headers["Retry-After"])
        await asyncio.sleep(retry_after + 0.05)
        recovered = await http.get("/v1/items/nothing-here", headers=READ)

    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["status"] == 429 and "rate limit" in refused.json()["detail"]
    assert 1 <= retry_after <= WINDOW
    assert refused.headers["RateLimit-Limit"] == "3"
    assert other.status_code == 404
    assert health == [200] * 5
    assert rate_limited_count(metrics) - before == 1
    assert 'route="/v1/items/{item_id}",status="429"' in metrics
    assert recovered.status_code == 404 and recovered.headers["RateLimit-Remaining"] == "2"


async def test_bad_keys_are_counted_too(settings: Settings) -> None:
    async with running(settings, rate_limit_requests=2, rate_limit_window_seconds=60) as http:
        await window_start(60)
        codes = [
            (await http.get("/v1/items/x", headers={"X-API-Key": "guess"})).status_code
            for _ in range(3)
        ]
    assert codes == [401, 401, 429]


async def test_off_by_default(client: httpx.AsyncClient) -> None:
    answers = [await client.get("/v1/items/nothing-here", headers=READ) for _ in range(5)]
    assert {a.status_code for a in answers} == {404}
    assert "RateLimit-Limit" not in answers[0].headers


@pytest.mark.postgres_only
async def test_cache_down_lets_traffic_through(settings: Settings) -> None:
    async with running(
        settings, redis_url=DEAD_REDIS, rate_limit_requests=1, rate_limit_window_seconds=60
    ) as http:
        codes = [(await http.get("/v1/items/x", headers=READ)).status_code for _ in range(3)]
    assert codes == [404, 404, 404]


async def test_cors_is_off_by_default(client: httpx.AsyncClient) -> None:
    preflight = await client.options(
        "/v1/events",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key,content-type",
        },
    )
    assert "access-control-allow-origin" not in preflight.headers
    plain = await client.get("/health/live", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in plain.headers


async def test_cors_allows_configured_origins_only(settings: Settings) -> None:
    origins = f"{ORIGIN}, https://admin.example"
    async with running(settings, cors_origins=origins, rate_limit_requests=100) as http:
        preflight = await http.options(
            "/v1/events",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-api-key,content-type",
            },
        )
        posted = await http.post("/v1/events", json=[], headers={**INGEST, "Origin": ORIGIN})
        stranger = await http.get("/health/live", headers={"Origin": "https://evil.example"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert posted.headers["access-control-allow-origin"] == ORIGIN
    assert "ratelimit-remaining" in posted.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in stranger.headers
