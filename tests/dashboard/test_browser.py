"""The dashboard in a real browser: headless Chromium signs in, reads the page, screenshots it.

Against a running `brandlift serve` with two worker processes (so /metrics must aggregate
across processes) on the test database with a live model. The figures on the rendered page
must equal /v1/ops/status; the screenshot lands in tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from tests.conftest import ADMIN, KEYS, READ
from tests.dashboard.browser import CHROMIUM, browser_page
from tests.dashboard.facts import mismatches, page_facts
from tests.dashboard.planted import plant_activity, worker_heartbeat
from tests.dashboard.server import serve
from tests.live_world import LiveWorld

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SHOT = ARTIFACTS / "dashboard.png"

pytestmark = [
    pytest.mark.postgres_only,  # several processes share one Redis: not the embedded cache
    pytest.mark.skipif(
        shutil.which("chromium") is None and not Path(CHROMIUM).exists(),
        reason="Debian's chromium is not installed (make test installs it)",
    ),
]


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


async def test_dashboard_in_chromium_matches_the_status(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, live_world: LiveWorld
) -> None:
    planted = await plant_activity(client)
    await worker_heartbeat(app.state.ctx)
    with serve(settings, workers=2) as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            users = list(live_world.taste)[:5]
            for user in users:
                resp = await http.get(f"/v1/users/{user}/recommendations", headers=READ)
                assert resp.status_code == 200
            async with browser_page() as page:
                await page.goto(f"{base}/dashboard")
                await page.wait_for(
                    "document.readyState === 'complete' && !!document.querySelector('#login')"
                )
                await page.evaluate(
                    f"document.querySelector('#key').value = {KEYS['admin']!r};"
                    "document.querySelector('#login').submit(); true"
                )
                await page.wait_for(
                    "document.readyState === 'complete' && "
                    "!!document.querySelector('[data-fact=\"health.status\"]')"
                )
                html = await page.evaluate("document.documentElement.outerHTML")
                cookie_visible = await page.evaluate("document.cookie")
                png = await page.screenshot()
            status: dict[str, Any] = (await http.get("/v1/ops/status", headers=ADMIN)).json()
            # Requests spread over both processes; /metrics must count all of them.
            await asyncio.gather(*(http.get("/health/live") for _ in range(40)))
            scrapes = [(await http.get("/metrics")).text for _ in range(4)]

    ARTIFACTS.mkdir(exist_ok=True)
    SHOT.write_bytes(png)
    assert png.startswith(b"\x89PNG") and len(png) > 20_000

    assert cookie_visible == ""  # HttpOnly: the page's scripts cannot read the key
    facts = page_facts(html)
    assert {"model.version", "model.users", "runs.0.status", "cache.hits"} <= set(facts)
    assert mismatches(facts, status) == []
    assert status["model"] is not None and status["model"]["version"] >= live_world.version
    assert status["health"]["worker"]["status"] == "ok"
    assert status["cache"]["hits"] >= len(users)
    row = [r["strategy"] for r in status["recommendations"]["by_strategy"]].index(planted.strategy)
    assert facts[f"recommendations.by_strategy.{row}.ctr"]["text"] == "25.0%"

    for text in scrapes:
        count = metric(text, "brandlift_http_requests_total", route="/health/live", status="200")
        assert count >= 40, count  # both processes' requests, whichever one answers
        assert metric(text, "brandlift_model_version") == status["model"]["version"]
        assert metric(text, "brandlift_model_users") == status["model"]["users"]
