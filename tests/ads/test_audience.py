"""Audience export (prospects first) and budget allocation across campaigns."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.conftest import READ
from tests.profiles.world import ProfileWorld


def buyers_of(world: ProfileWorld, brand: str) -> set[str]:
    items = {i["item_id"] for i in world.world.items if i["brand"] == brand}
    events = world.world.events + world.planted_events
    return {e["user_id"] for e in events if e["type"] == "purchase" and e.get("item_id") in items}


def first_active(world: ProfileWorld) -> dict:
    return next(c for c in world.world.campaigns if c["active"])


async def audience(client: httpx.AsyncClient, campaign: str, query: str = "") -> dict:
    resp = await client.get(f"/v1/campaigns/{campaign}/audience?{query}", headers=READ)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_prospects_come_first_and_buyers_only_on_request(
    client: httpx.AsyncClient, ad_world: ProfileWorld
) -> None:
    campaign = first_active(ad_world)
    buyers = buyers_of(ad_world, campaign["brand"])
    assert buyers, "the generated world should have buyers of the first campaign's brand"
    body = await audience(client, campaign["campaign_id"])
    users = body["users"]
    assert body["buyers"] == 0 and body["prospects"] == len(users) > 0
    assert not {u["user_id"] for u in users} & buyers
    scores = [u["p_click"] for u in users]
    assert scores == sorted(scores, reverse=True)
    both = (await audience(client, campaign["campaign_id"], "include_buyers=true&n=10000"))["users"]
    flags = [u["buyer"] for u in both]
    assert flags == sorted(flags)  # every prospect before every buyer
    assert {u["user_id"] for u in both if u["buyer"]} == buyers
    assert [u for u in both if not u["buyer"]] == users


async def test_audience_prefers_planted_fans(
    client: httpx.AsyncClient, ad_world: ProfileWorld
) -> None:
    truth = ad_world.world.truth
    campaign = first_active(ad_world)["campaign_id"]
    users = [u["user_id"] for u in (await audience(client, campaign))["users"]]
    known = [u for u in users if u in truth.user_brands]
    top = np.mean([truth.click_probability(u, campaign) for u in known[:40]])
    rest = np.mean([truth.click_probability(u, campaign) for u in known[40:]])
    assert top > 2 * rest


async def test_min_score_and_n_cut_the_list(
    client: httpx.AsyncClient, ad_world: ProfileWorld
) -> None:
    campaign = first_active(ad_world)["campaign_id"]
    full = (await audience(client, campaign))["users"]
    threshold = full[len(full) // 4]["p_click"]
    cut = (await audience(client, campaign, f"min_score={threshold}"))["users"]
    assert cut == [u for u in full if u["p_click"] >= threshold]
    assert (await audience(client, campaign, "n=5"))["users"] == full[:5]


async def test_inactive_and_unknown_campaigns(
    client: httpx.AsyncClient, ad_world: ProfileWorld
) -> None:
    inactive = next(c for c in ad_world.world.campaigns if not c["active"])["campaign_id"]
    assert (await audience(client, inactive))["users"] == []
    resp = await client.get("/v1/campaigns/no-such-campaign/audience", headers=READ)
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "query", ["n=0", "n=10001", "min_score=-0.1", "min_score=2", "include_buyers=maybe", "top=5"]
)
async def test_bad_audience_queries_are_422(
    client: httpx.AsyncClient, ad_world: ProfileWorld, query: str
) -> None:
    campaign = first_active(ad_world)["campaign_id"]
    resp = await client.get(f"/v1/campaigns/{campaign}/audience?{query}", headers=READ)
    assert resp.status_code == 422, resp.text


async def plan(client: httpx.AsyncClient, budget: float) -> dict:
    resp = await client.get(f"/v1/campaigns/allocation?budget={budget}", headers=READ)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_allocation_spreads_the_budget_with_diminishing_returns(
    client: httpx.AsyncClient, ad_world: ProfileWorld
) -> None:
    small, large = await plan(client, 50), await plan(client, 100)
    active = {c["campaign_id"] for c in ad_world.world.campaigns if c["active"]}
    budgets = {c["campaign_id"]: c["budget"] for c in ad_world.world.campaigns}
    for body, budget in ((small, 50), (large, 100)):
        rows = {r["campaign_id"]: r for r in body["campaigns"]}
        assert active <= set(rows)
        assert body["allocated"] == pytest.approx(budget, abs=0.05)
        assert sum(r["amount"] for r in rows.values()) == pytest.approx(budget, abs=0.05)
        assert all(r["explanation"] for r in rows.values())
        funded = [r for r in rows.values() if r["amount"] > 0 and not r["capped"]]
        assert len(funded) >= 2
        # Every funded campaign ends at the same return for its last unit.
        margins = [r["marginal_roi"] for r in funded]
        assert max(margins) == pytest.approx(min(margins), rel=1e-3)
        for r in rows.values():
            assert r["marginal_roi"] <= r["roi_first_unit"]
            if budgets.get(r["campaign_id"]):
                assert r["amount"] <= budgets[r["campaign_id"]] + 0.01
    # Twice the budget buys more, but less than twice as much.
    assert small["expected_return"] < large["expected_return"] < 2 * small["expected_return"]
    best = max(small["campaigns"], key=lambda r: r["roi_first_unit"])
    assert best["amount"] > 0


@pytest.mark.parametrize("query", ["", "budget=0", "budget=-5", "budget=lots", "budget=5&x=1"])
async def test_bad_allocation_queries_are_422(
    client: httpx.AsyncClient, ad_world: ProfileWorld, query: str
) -> None:
    resp = await client.get(f"/v1/campaigns/allocation?{query}", headers=READ)
    assert resp.status_code == 422, resp.text


async def test_campaign_lookup_still_routes_to_the_catalog(
    client: httpx.AsyncClient, ad_world: ProfileWorld
) -> None:
    campaign = first_active(ad_world)
    resp = await client.get(f"/v1/campaigns/{campaign['campaign_id']}", headers=READ)
    assert resp.status_code == 200 and resp.json()["brand"] == campaign["brand"]
