"""Campaigns with promotions over the planted live world, scored by one rebuild."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.experiments.assignment import bucket
from app.recommendations.live_view import get_live_view
from app.training.pipeline import rebuild
from tests.conftest import INGEST, READ, unique
from tests.live_world import LiveWorld


@dataclass
class PromoWorld:
    live: LiveWorld
    slot: str  # slots 3, share 0.2
    capped: str  # slots 1, share 0.5, at most 2 impressions a day
    boost: str  # boost 3.0
    items: dict[str, list[str]]  # campaign -> its item ids
    version: int
    app: Any

    def held_out(self, campaign_id: str, user_id: str) -> bool:
        holdout = self.app.state.ctx.settings.promotion_holdout
        return bucket(f"promo:{campaign_id}", user_id) < holdout

    def users(self, category: str | None = None) -> list[str]:
        return sorted(u for u, c in self.live.taste.items() if category in (None, c))


def expire(app: Any) -> None:
    """Let this app's live view re-read the promotion epoch at once (else within a second)."""
    get_live_view(app.state.ctx).expire()


async def upsert_campaigns(client: httpx.AsyncClient, app: Any, rows: list[dict]) -> None:
    resp = await client.post("/v1/campaigns", json=rows, headers=INGEST)
    assert resp.status_code == 200, resp.text
    expire(app)


async def recommend(client: httpx.AsyncClient, user: str, n: int = 10, query: str = "") -> dict:
    resp = await client.get(f"/v1/users/{user}/recommendations?n={n}{query}", headers=READ)
    assert resp.status_code == 200, resp.text
    return resp.json()


def sponsored(body: dict, campaign_id: str | None = None) -> list[dict]:
    return [
        i
        for i in body["items"]
        if i.get("sponsored") and campaign_id in (None, i.get("campaign_id"))
    ]


def ad_traffic(
    prefix: str, live_world: LiveWorld, campaigns: dict[str, tuple[str, str]]
) -> list[dict[str, Any]]:
    """Ad impressions and clicks: fans of a campaign's category click far more often."""
    rng = random.Random(11)
    now = datetime.now(UTC)
    events: list[dict[str, Any]] = []
    for user, taste in sorted(live_world.taste.items()):
        for cid, (_, category) in campaigns.items():
            for _ in range(6):
                ts = now - timedelta(days=rng.uniform(1, 30))
                base = {"user_id": user, "campaign_id": cid, "timestamp": ts.isoformat()}
                events.append({**base, "event_id": f"{prefix}-ad-{len(events)}",
                               "type": "ad_impression"})  # fmt: skip
                if rng.random() < (0.5 if taste == category else 0.03):
                    events.append({**base, "event_id": f"{prefix}-ad-{len(events)}",
                                   "type": "ad_click"})  # fmt: skip
    return events


@pytest.fixture(scope="package")
async def promo_world(
    client: httpx.AsyncClient, app: Any, live_world: LiveWorld
) -> AsyncIterator[PromoWorld]:
    def items_of(category: str, brand_index: int) -> list[str]:
        pool = [i["item_id"] for i in live_world.items if i["category"] == category]
        return pool[brand_index::2]

    # The brand-lift test needs both held-out and exposed "beauty" shoppers for the slot
    # campaign: pick ids whose hash gives both (a random id holds none of 25 out 7% of the time).
    beauty = [u for u, c in live_world.taste.items() if c == "beauty"]
    holdout = app.state.ctx.settings.promotion_holdout
    while True:
        prefix = unique("pc")
        held = sum(bucket(f"promo:{prefix}-slot", u) < holdout for u in beauty)
        if 1 <= held <= len(beauty) - 6:
            break
    ids = {"slot": f"{prefix}-slot", "capped": f"{prefix}-cap", "boost": f"{prefix}-boost"}
    items = {
        ids["slot"]: items_of("shoes", 0),
        ids["capped"]: items_of("electronics", 0),
        ids["boost"]: items_of("beauty", 0),
    }
    cap = {"impressions": 2, "per_hours": 24}
    promotions = {
        ids["slot"]: {"slots": 3, "share": 0.2},
        ids["capped"]: {"slots": 1, "share": 0.5, "frequency_cap": cap},
        ids["boost"]: {"boost": 3.0},
    }
    # The items' own brand and category, so ad targeting scores their fans higher.
    brands = {ids["slot"]: ("stride", "shoes"), ids["capped"]: ("volt", "electronics"),
              ids["boost"]: ("glow", "beauty")}  # fmt: skip
    rows = [
        {
            "campaign_id": cid,
            "brand": brands[cid][0],
            "category": brands[cid][1],
            "item_ids": items[cid],
            "bid": 1.0,
            "active": True,
            "promotion": promotions[cid],
        }
        for cid in ids.values()
    ]
    await upsert_campaigns(client, app, rows)
    resp = await client.post(
        "/v1/events", json=ad_traffic(prefix, live_world, brands), headers=INGEST
    )
    assert resp.status_code == 202, resp.text
    # A rebuild scores the new campaigns for every shopper and measures the boost.
    result = await rebuild(app.state.ctx, trigger="test")
    assert result["status"] == "live", result
    expire(app)
    yield PromoWorld(
        live_world, ids["slot"], ids["capped"], ids["boost"], items, result["version"], app
    )
    # Later test folders share this session's data: their lists must stay organic.
    await upsert_campaigns(client, app, [{"campaign_id": c, "active": False} for c in ids.values()])
