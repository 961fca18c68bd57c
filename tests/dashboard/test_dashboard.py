"""GET /dashboard: sign-in with an admin key, the page's figures equal /v1/ops/status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from tests.conftest import ADMIN, KEYS
from tests.dashboard.facts import mismatches, page_facts
from tests.dashboard.planted import plant_activity
from tests.ops.test_health import DEAD_POSTGRES, running

FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def web(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of its own per test, so cookies never leak into the shared one."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def sign_in(http: httpx.AsyncClient, key: str) -> httpx.Response:
    return await http.post("/dashboard/login", content=f"key={key}".encode(), headers=FORM)


async def test_without_a_key_the_page_is_a_login_form(web: httpx.AsyncClient) -> None:
    resp = await web.get("/dashboard")
    assert resp.status_code == 401
    assert 'id="login"' in resp.text and 'name="key"' in resp.text
    assert "data-fact" not in resp.text
    # An API key header is not a way in: the page is for browsers, through the cookie.
    assert (await web.get("/dashboard", headers=ADMIN)).status_code == 401


async def test_login_sets_an_httponly_cookie_for_admin_keys_only(web: httpx.AsyncClient) -> None:
    wrong = await sign_in(web, "not-a-key")
    reader = await sign_in(web, KEYS["read"])
    admin = await sign_in(web, KEYS["admin"])
    assert wrong.status_code == 401 and "unknown API key" in wrong.text
    assert reader.status_code == 403 and "admin" in reader.text
    assert "set-cookie" not in wrong.headers and "set-cookie" not in reader.headers
    assert admin.status_code == 303 and admin.headers["location"] == "/dashboard"
    cookie = admin.headers["set-cookie"].lower()
    for part in ("key=", "httponly", "samesite=strict", "path=/dashboard", "max-age="):
        assert part in cookie, cookie
    assert "secure" not in cookie  # plain HTTP here; HTTPS (or X-Forwarded-Proto) adds it
    https = await web.post(
        "/dashboard/login",
        content=f"key={KEYS['admin']}".encode(),
        headers={**FORM, "X-Forwarded-Proto": "https"},
    )
    assert "secure" in https.headers["set-cookie"].lower()


async def test_cookie_must_hold_an_admin_key(web: httpx.AsyncClient) -> None:
    web.cookies.set("key", "revoked")
    stale = await web.get("/dashboard")
    web.cookies.set("key", KEYS["read"])
    reader = await web.get("/dashboard")
    assert stale.status_code == 401 and "not valid" in stale.text
    assert reader.status_code == 403 and "data-fact" not in reader.text


async def test_logout_clears_the_cookie(web: httpx.AsyncClient) -> None:
    await sign_in(web, KEYS["admin"])
    assert (await web.get("/dashboard")).status_code == 200
    resp = await web.post("/dashboard/logout")
    assert resp.status_code == 303
    assert "max-age=0" in resp.headers["set-cookie"].lower()
    assert (await web.get("/dashboard")).status_code == 401


async def test_page_shows_the_status_figures(client: httpx.AsyncClient, settings: Settings) -> None:
    planted = await plant_activity(client)
    async with running(settings, dashboard_refresh_seconds=7) as http:
        assert (await sign_in(http, KEYS["admin"])).status_code == 303
        page = await http.get("/dashboard")
        status: dict[str, Any] = (await http.get("/v1/ops/status", headers=ADMIN)).json()
        css = await http.get("/dashboard/static/dashboard.css")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert '<meta http-equiv="refresh" content="7">' in page.text
    assert "<script" not in page.text and "http://" not in page.text.replace("http-equiv", "")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]

    facts = page_facts(page.text)
    for path in (
        "health.status",
        "health.database.status",
        "health.cache.status",
        "health.worker.status",
        "health.realtime.queued_users",
        "cache.hits",
        "cache.fallbacks",
        "ingest.total",
        "ingest.totals.view",
    ):
        assert path in facts, path
    assert mismatches(facts, status) == []
    # The planted rows are on the page with their rates.
    strategies = [r["strategy"] for r in status["recommendations"]["by_strategy"]]
    row = strategies.index(planted.strategy)
    assert facts[f"recommendations.by_strategy.{row}.ctr"]["text"] == "25.0%"
    campaigns = [c["campaign_id"] for c in status["campaigns"]["top"]]
    spot = campaigns.index(planted.campaign)
    assert facts[f"campaigns.top.{spot}.ctr"]["text"] == "100.0%"
    assert "<svg" in page.text and "polyline" in page.text


async def test_database_down_shows_an_unavailable_page(settings: Settings) -> None:
    async with running(settings, database_url=DEAD_POSTGRES) as http:
        assert (await sign_in(http, KEYS["admin"])).status_code == 303
        page = await http.get("/dashboard")
        status = await http.get("/v1/ops/status", headers=ADMIN)
        metrics = await http.get("/metrics")
    assert page.status_code == 503
    assert "database cannot be reached" in page.text and "refresh" in page.text
    assert status.status_code == 503
    assert status.headers["content-type"].startswith("application/problem+json")
    assert metrics.status_code == 200  # a scrape still answers, without the database figures
