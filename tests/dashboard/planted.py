"""Activity with known figures, for the status page and dashboard tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.context import AppContext
from app.worker import HEARTBEAT_KEY, _heartbeat
from tests.conftest import INGEST, unique


@dataclass
class Planted:
    strategy: str
    campaign: str
    brand: str
    impressions: int
    clicks: int
    ad_impressions: int
    ad_clicks: int
    views_at: datetime
    views: int


def _event(kind: str, user: str, ts: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": unique("e"),
        "user_id": user,
        "type": kind,
        "timestamp": ts.isoformat(),
        **fields,
    }


async def plant_activity(client: httpx.AsyncClient) -> Planted:
    """Recommendation and ad click-through at known rates, and views three hours ago."""
    now = datetime.now(UTC) - timedelta(minutes=1)
    planted = Planted(
        strategy=unique("strategy"),
        campaign=unique("camp"),
        brand=unique("brand"),
        impressions=8,
        clicks=2,
        ad_impressions=12,
        ad_clicks=12,  # a CTR of 100%: first among the top campaigns
        views_at=now - timedelta(hours=3),
        views=5,
    )
    user, item = unique("u"), unique("i")
    context = {"strategy": planted.strategy, "request_id": unique("r")}
    events = [
        *(_event("rec_impression", user, now, context=context) for _ in range(planted.impressions)),
        *(
            _event("rec_click", user, now, item_id=item, context=context)
            for _ in range(planted.clicks)
        ),
        *(
            _event(t, user, now, campaign_id=planted.campaign)
            for t in ["ad_impression"] * planted.ad_impressions + ["ad_click"] * planted.ad_clicks
        ),
        *(_event("view", user, planted.views_at, item_id=item) for _ in range(planted.views)),
    ]
    campaign = [{"campaign_id": planted.campaign, "brand": planted.brand}]
    assert (await client.post("/v1/campaigns", json=campaign, headers=INGEST)).status_code == 200
    resp = await client.post("/v1/events", json=events, headers=INGEST)
    assert resp.status_code == 202, resp.text
    return planted


async def worker_heartbeat(ctx: AppContext) -> None:
    """Beat as the worker does; first close the cache's breaker if a slow call on this busy
    machine opened it (the worker's own beat is best-effort and would be skipped)."""
    assert await ctx.cache.ping(timeout=5.0)
    await _heartbeat(ctx)
    assert await ctx.cache.run(lambda r: r.exists(HEARTBEAT_KEY))
