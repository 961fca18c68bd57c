"""Ad scores: planted affinity ranks first, cold users and unknown campaigns, bulk bounds."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tests.conftest import ADMIN, INGEST, READ, unique
from tests.profiles.world import ProfileWorld


def active_campaigns(world: ProfileWorld) -> list[str]:
    return [c["campaign_id"] for c in world.world.campaigns if c["active"]]


async def scores(client: httpx.AsyncClient, user: str, campaigns: list[str]) -> dict:
    query = "&".join(f"campaign_id={c}" for c in campaigns)
    resp = await client.get(f"/v1/ads/scores?user_id={user}&{query}", headers=READ)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_high_affinity_shoppers_score_above_the_others(
    client: httpx.AsyncClient, ad_world: ProfileWorld
) -> None:
    truth = ad_world.world.truth
    campaigns = active_campaigns(ad_world)
    users = [u for u in ad_world.users if u not in truth.cold_users]
    resp = await client.post(
        "/v1/ads/scores", json={"user_ids": users, "campaign_ids": campaigns}, headers=READ
    )
    assert resp.status_code == 200, resp.text
    predicted, true = [], []
    for result in resp.json()["results"]:
        assert result["strategy"] == "personalised"
        for score in result["scores"]:
            predicted.append(score["p_click"])
            true.append(truth.click_probability(result["user_id"], score["campaign_id"]))
    # Shoppers whose planted brand and category match the campaign rank above the rest.
    fans = np.array(true) > np.quantile(true, 0.75)
    assert roc_auc_score(fans, predicted) > 0.75
    for campaign in campaigns[:3]:
        brand = {u: truth.affinity(u, campaign)[0] for u in users}
        by_user = {
            r["user_id"]: next(s["p_click"] for s in r["scores"] if s["campaign_id"] == campaign)
            for r in resp.json()["results"]
        }
        lovers = [p for u, p in by_user.items() if brand[u]]
        others = [p for u, p in by_user.items() if not brand[u]]
        assert lovers and np.mean(lovers) > 1.5 * np.mean(others), campaign


async def test_scores_come_sorted_by_expected_value(
    client: httpx.AsyncClient, ad_world: ProfileWorld
) -> None:
    body = await scores(client, ad_world.users[3], active_campaigns(ad_world))
    assert body["model_version"] >= ad_world.version and body["unknown"] == []
    values = [s["expected_value"] for s in body["scores"]]
    assert values == sorted(values, reverse=True)
    bids = {c["campaign_id"]: c["bid"] for c in ad_world.world.campaigns}
    for s in body["scores"]:
        assert s["expected_value"] == pytest.approx(s["p_click"] * bids[s["campaign_id"]], abs=1e-5)
        assert 0 < s["p_convert"] <= s["p_click"] < 1


async def test_no_campaign_asked_means_every_scored_campaign(
    client: httpx.AsyncClient, ad_world: ProfileWorld
) -> None:
    body = (await client.get(f"/v1/ads/scores?user_id={ad_world.users[0]}", headers=READ)).json()
    assert set(active_campaigns(ad_world)) <= {s["campaign_id"] for s in body["scores"]}


async def test_cold_users_get_campaign_priors(
    client: httpx.AsyncClient, ad_world: ProfileWorld
) -> None:
    campaigns = active_campaigns(ad_world)[:4]
    first = await scores(client, unique("stranger"), campaigns)
    second = await scores(client, unique("stranger"), campaigns)
    assert first["strategy"] == second["strategy"] == "cold-start"
    assert first["scores"] == second["scores"] and len(first["scores"]) == 4
    assert all(s["p_click"] > 0 for s in first["scores"])
    # A shopper with no events (only attributes) is scored the same way.
    third = await scores(client, ad_world.attributes_only, campaigns)
    assert third["scores"] == first["scores"]


async def test_unknown_campaigns_are_listed_not_errors(
    client: httpx.AsyncClient, ad_world: ProfileWorld
) -> None:
    known = active_campaigns(ad_world)[0]
    inactive = next(c["campaign_id"] for c in ad_world.world.campaigns if not c["active"])
    body = await scores(client, ad_world.users[1], [known, "no-such-campaign", inactive, known])
    assert [s["campaign_id"] for s in body["scores"]] == [known]
    assert body["unknown"] == ["no-such-campaign", inactive]
    only_unknown = await scores(client, ad_world.users[1], ["nope"])
    assert only_unknown["scores"] == [] and only_unknown["unknown"] == ["nope"]


async def test_cache_down_still_answers_from_priors(
    client: httpx.AsyncClient, app: object, ad_world: ProfileWorld
) -> None:
    campaigns = active_campaigns(ad_world)[:3]
    cold = await scores(client, unique("stranger"), campaigns)
    cache = app.state.ctx.cache  # type: ignore[attr-defined]
    cache.mark_down(ConnectionError("test: cache unreachable"))
    try:
        body = await scores(client, ad_world.users[2], campaigns)
        bulk = await client.post(
            "/v1/ads/scores", json={"user_ids": [ad_world.users[2]]}, headers=READ
        )
    finally:
        cache._down_until = 0.0
    assert body["strategy"] == "fallback"
    assert body["scores"] == cold["scores"]
    assert bulk.status_code == 200 and bulk.json()["results"][0]["strategy"] == "fallback"


async def test_bulk_lookup_matches_single_lookups(
    client: httpx.AsyncClient, ad_world: ProfileWorld
) -> None:
    campaigns = active_campaigns(ad_world)[:5]
    users = [*ad_world.users[:4], unique("stranger"), ad_world.users[0]]
    resp = await client.post(
        "/v1/ads/scores",
        json={"user_ids": users, "campaign_ids": [*campaigns, "nope"]},
        headers=READ,
    )
    body = resp.json()
    assert [r["user_id"] for r in body["results"]] == users[:5]  # repeats answered once
    assert body["unknown"] == ["nope"]
    for result in body["results"]:
        single = await scores(client, result["user_id"], campaigns)
        assert result["scores"] == single["scores"]
        assert result["strategy"] == single["strategy"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"user_ids": [f"u{k}" for k in range(1001)]}, 413),
        ({"user_ids": ["u1"], "campaign_ids": [f"c{k}" for k in range(101)]}, 413),
        ({"user_ids": []}, 422),
        ({"user_ids": "u1"}, 422),
        ({"user_ids": ["u1", ""]}, 422),
        ({"user_ids": ["u1", 7]}, 422),
        ({"user_ids": ["x" * 257]}, 422),
        ({"campaign_ids": ["c1"]}, 422),
        ({"user_ids": ["u1"], "campaigns": ["c1"]}, 422),
        ([["u1"]], 422),
    ],
)
async def test_bulk_bounds_and_validation(
    client: httpx.AsyncClient, ad_world: ProfileWorld, body: object, status: int
) -> None:
    resp = await client.post("/v1/ads/scores", json=body, headers=READ)
    assert resp.status_code == status, resp.text
    problem = resp.json()
    assert resp.headers["content-type"].startswith("application/problem+json")
    if status == 422:
        assert problem["errors"] and all("field" in e for e in problem["errors"])


async def test_bulk_at_the_bounds_is_fine_and_bad_json_is_400(
    client: httpx.AsyncClient, ad_world: ProfileWorld
) -> None:
    users = [f"bulk-{k}" for k in range(1000)]
    campaigns = [*active_campaigns(ad_world), *[f"nope-{k}" for k in range(91)]][:100]
    resp = await client.post(
        "/v1/ads/scores", json={"user_ids": users, "campaign_ids": campaigns}, headers=READ
    )
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["results"]) == 1000
    bad = await client.post("/v1/ads/scores", content=b"{not json", headers=READ)
    assert bad.status_code == 400


@pytest.mark.parametrize(
    "query",
    [
        "campaign_id=c1",
        "user_id=",
        "user_id=u1&colour=red",
        "user_id=u1&" + "&".join(f"campaign_id=c{k}" for k in range(101)),
    ],
)
async def test_bad_score_queries_are_422(
    client: httpx.AsyncClient, ad_world: ProfileWorld, query: str
) -> None:
    resp = await client.get(f"/v1/ads/scores?{query}", headers=READ)
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"][0]["field"] in ("user_id", "campaign_id", "colour")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/ads/scores?user_id=u1", None),
        ("POST", "/v1/ads/scores", {"user_ids": ["u1"]}),
        ("GET", "/v1/campaigns/allocation?budget=100", None),
        ("GET", "/v1/campaigns/{campaign}/audience", None),
    ],
)
async def test_read_scope_is_required(
    client: httpx.AsyncClient, ad_world: ProfileWorld, method: str, path: str, body: object
) -> None:
    url = path.format(campaign=active_campaigns(ad_world)[0])
    for headers, status in (({}, 401), (INGEST, 403), (READ, 200), (ADMIN, 200)):
        resp = await client.request(method, url, json=body, headers=headers)
        assert resp.status_code == status, (headers, resp.text)
