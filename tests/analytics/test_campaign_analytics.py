"""Campaign analytics: ad impressions, clicks, conversions, spend and return per campaign."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.analytics.service import catch_up
from app.context import AppContext
from app.experiments import service as experiments
from tests.conftest import INGEST, READ, unique
from tests.experiments.feedback import create_experiment, post_events, serve, soon, stop_experiment

DAY = "2021-03-01"


def ad(kind: str, user: str, campaign: str, hour: int, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": unique("ad"),
        "type": kind,
        "user_id": user,
        "campaign_id": campaign,
        "timestamp": f"{DAY}T{hour:02d}:00:00Z",
        **extra,
    }


async def test_counts_spend_and_return(feedback: httpx.AsyncClient) -> None:
    paid, free = unique("camp"), unique("camp")
    resp = await feedback.post(
        "/v1/campaigns",
        json=[
            {"campaign_id": paid, "brand": "stride", "bid": 0.5},
            {"campaign_id": free, "brand": "glow"},
        ],
        headers=INGEST,
    )
    assert resp.status_code == 200, resp.text
    events = [ad("ad_impression", f"u{k}", paid, 10) for k in range(40)]
    events += [ad("ad_click", f"u{k}", paid, 11) for k in range(8)]
    events += [
        ad("ad_conversion", "u1", paid, 12, amount=30.0),
        ad("ad_conversion", "u2", paid, 13, amount=12.0),
    ]
    events += [ad("ad_impression", f"u{k}", free, 10) for k in range(10)]
    events += [ad("ad_click", "u1", free, 11)]
    events += [{**ad("ad_impression", "u9", paid, 0), "timestamp": "2021-03-05T00:00:00Z"}]
    await post_events(feedback, events)
    params = {"from": f"{DAY}T00:00:00Z", "to": "2021-03-02T00:00:00Z"}
    resp = await feedback.get(
        "/v1/analytics/campaigns", params={**params, "campaign_id": [paid, free]}, headers=READ
    )
    assert resp.status_code == 200, resp.text
    rows = {c["campaign_id"]: c for c in resp.json()["campaigns"]}
    assert set(rows) == {paid, free}
    p = rows[paid]
    assert (p["impressions"], p["clicks"], p["conversions"]) == (40, 8, 2)  # 03-05 left out
    assert p["ctr"] == pytest.approx(0.2)
    assert p["conversion_rate"] == pytest.approx(0.25)
    assert p["revenue"] == pytest.approx(42.0)
    assert p["spend"] == pytest.approx(4.0)  # 8 clicks x 0.5
    assert p["return_on_spend"] == pytest.approx(10.5)
    assert p["brand"] == "stride"
    f = rows[free]
    assert (f["impressions"], f["clicks"], f["spend"], f["return_on_spend"]) == (10, 1, None, None)
    only = await feedback.get(
        "/v1/analytics/campaigns", params={**params, "campaign_id": free}, headers=READ
    )
    assert [c["campaign_id"] for c in only.json()["campaigns"]] == [free]
    brands = await feedback.get(
        "/v1/analytics/campaigns",
        params={**params, "campaign_id": [paid, free], "group_by": "brand"},
        headers=READ,
    )
    assert brands.status_code == 200, brands.text
    assert brands.json()["group_by"] == "brand"
    per_brand = {b["brand"]: b for b in brands.json()["brands"]}
    assert set(per_brand) == {"stride", "glow"}
    s = per_brand["stride"]
    assert (s["campaigns"], s["impressions"], s["clicks"], s["conversions"]) == (1, 40, 8, 2)
    assert (s["spend"], s["return_on_spend"]) == (pytest.approx(4.0), pytest.approx(10.5))
    g = per_brand["glow"]
    assert (g["impressions"], g["campaigns_with_bid"], g["spend"]) == (10, 0, None)
    bad = await feedback.get(
        "/v1/analytics/campaigns", params={**params, "group_by": "colour"}, headers=READ
    )
    assert bad.status_code == 422 and "group_by" in bad.text


async def test_ads_experiment_counts_ad_events_naming_it(feedback: httpx.AsyncClient) -> None:
    name, campaign = unique("adsexp"), unique("camp")
    await create_experiment(
        feedback,
        {
            "name": name,
            "surface": "ads",
            "variants": [{"name": "a", "params": {"k": 1}}, {"name": "b", "params": {"k": 2}}],
        },
    )
    users = [f"{name}-u{k}" for k in range(60)]
    context = {"experiment": name}
    events = [ad("ad_impression", u, campaign, 9, context=context) for u in users]
    events += [ad("ad_click", u, campaign, 10, context=context) for u in users[:15]]
    events += [ad("ad_conversion", users[0], campaign, 11, context=context, amount=25.0)]
    events += [ad("ad_impression", u, campaign, 9) for u in users[:10]]  # not naming it
    try:
        await post_events(feedback, events)
        resp = await feedback.get(f"/v1/experiments/{name}/results", headers=READ)
    finally:
        await stop_experiment(feedback, name)
    body = resp.json()
    totals = {k: sum(v[k] for v in body["variants"]) for k in ("users", "impressions", "clicks")}
    assert totals == {"users": 60, "impressions": 60, "clicks": 15}
    assert sum(v["conversions"] for v in body["variants"]) == 1


@pytest.mark.postgres_only
async def test_concurrent_passes_never_count_twice(
    feedback: httpx.AsyncClient, feedback_app: FastAPI, catalog: list[str]
) -> None:
    """Two processes folding the same backlog at once (an advisory lock orders them)."""
    name = unique("concurrent")
    await create_experiment(
        feedback,
        {"name": name, "surface": "recommendations", "variants": [{"name": "a"}, {"name": "b"}]},
    )
    rng = random.Random(4)
    events, impressions = [], 0
    try:
        for k in range(150):
            body = await serve(feedback, f"{name}-u{k}")
            for j, item in enumerate(body["items"]):
                if rng.random() < 0.7:
                    impressions += 1
                    events.append(
                        {
                            "event_id": f"{body['request_id']}-{j}",
                            "type": "rec_impression",
                            "user_id": body["user_id"],
                            "item_id": item["item_id"],
                            "timestamp": soon(1),
                            "context": {"request_id": body["request_id"]},
                        }
                    )
        # The lists land first (as the settle delay ensures in service); then both processes
        # race over the same backlog of impressions.
        await catch_up(feedback_app.state.ctx)
        await post_events(feedback, events)
        other = AppContext.create(feedback_app.state.ctx.settings)
        try:
            await asyncio.gather(catch_up(feedback_app.state.ctx), catch_up(other))
        finally:
            await other.close()
        result = await experiments.results(feedback_app.state.ctx, name, refresh=False)
    finally:
        await stop_experiment(feedback, name)
    assert sum(v["impressions"] for v in result["variants"]) == impressions
    assert sum(v["users"] for v in result["variants"]) == 150
