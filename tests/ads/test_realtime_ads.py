"""Real time rescores ads: new behaviour moves a shopper's ad scores without a rebuild."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.context import AppContext
from app.profiles.view import get_profile_view
from app.realtime.loop import current_model
from app.training.pipeline import rebuild
from app.training.publish import live_version, version_key
from tests.ads.test_scores import active_campaigns, scores
from tests.conftest import INGEST, unique
from tests.profiles.world import ProfileWorld
from tests.realtime.test_realtime import purchases
from tests.rebuilds import drain, forced_live


@pytest.fixture
async def ctx(app: Any, ad_world: ProfileWorld) -> AsyncIterator[AppContext]:
    """A live model of this process (with its ad model) and an empty dirty queue."""
    context: AppContext = app.state.ctx
    with forced_live(context):
        assert (await rebuild(context, trigger="test"))["status"] == "live"
    live = current_model(context)
    assert live is not None and live.ads is not None
    await get_profile_view(context).refresh(context, force=True)
    await drain(context)
    yield context


def brand_campaign(world: ProfileWorld) -> tuple[str, list[str]]:
    """An active campaign with a brand, and available items of that brand."""
    for campaign in world.world.campaigns:
        items = [
            i["item_id"]
            for i in world.world.items
            if i["brand"] == campaign["brand"] and i["available"]
        ]
        if campaign["active"] and campaign["brand"] and len(items) >= 6:
            return campaign["campaign_id"], items[:6]
    raise AssertionError("no active brand campaign with items")


def p_click(body: dict[str, Any], campaign: str) -> float:
    return next(s["p_click"] for s in body["scores"] if s["campaign_id"] == campaign)


async def test_buying_a_brand_raises_its_campaign_score_and_nobody_elses(
    client: httpx.AsyncClient, ctx: AppContext, ad_world: ProfileWorld
) -> None:
    campaign, items = brand_campaign(ad_world)
    truth = ad_world.world.truth
    # A shopper with history who has no planted taste for the brand.
    user = next(
        u
        for u in ad_world.users
        if u not in truth.cold_users and not truth.affinity(u, campaign)[0]
    )
    others = [u for u in ad_world.users if u != user]
    version = await live_version(ctx.cache)
    assert version is not None
    name = version_key(version, "ads")
    before_others = await ctx.cache.client.hmget(name, others)
    before = await scores(client, user, active_campaigns(ad_world))
    assert before["strategy"] == "personalised"

    resp = await client.post("/v1/events", json=purchases(user, items, 5.0), headers=INGEST)
    assert resp.status_code == 202
    await drain(ctx)

    after = await scores(client, user, active_campaigns(ad_world))
    assert after["strategy"] == "personalised"
    assert p_click(after, campaign) > 1.3 * p_click(before, campaign), (before, after)
    assert await ctx.cache.client.hmget(name, others) == before_others


async def test_a_new_shopper_gets_personalised_ad_scores_after_first_events(
    client: httpx.AsyncClient, ctx: AppContext, ad_world: ProfileWorld
) -> None:
    campaign, items = brand_campaign(ad_world)
    campaigns = active_campaigns(ad_world)
    user = unique("ad-newbie")
    cold = await scores(client, user, campaigns)
    assert cold["strategy"] == "cold-start"

    resp = await client.post("/v1/events", json=purchases(user, items, 5.0), headers=INGEST)
    assert resp.status_code == 202
    await drain(ctx)

    body = await scores(client, user, campaigns)
    assert body["strategy"] == "personalised"
    # The brand they bought now beats its prior; a brand they never touched does not.
    assert p_click(body, campaign) > 1.3 * p_click(cold, campaign)
    brand = {c["campaign_id"]: c["brand"] for c in ad_world.world.campaigns}
    other = next(c for c in campaigns if brand[c] != brand[campaign])
    assert p_click(body, other) < p_click(body, campaign)
