"""An experiment on the ads surface: the holdout gets campaign priors, the others their own
scores; every answer names the experiment and the variant and carries a request_id."""

from __future__ import annotations

import httpx

from app.experiments.assignment import HOLDOUT, Spec
from tests.conftest import ADMIN, READ, unique
from tests.profiles.world import ProfileWorld


async def test_ads_holdout_gets_the_non_personalised_baseline(
    client: httpx.AsyncClient, ad_world: ProfileWorld
) -> None:
    campaigns = [c["campaign_id"] for c in ad_world.world.campaigns if c["active"]]
    known = [u for u in ad_world.users if u not in ad_world.world.truth.cold_users][:60]
    query = "&".join(f"campaign_id={c}" for c in campaigns)

    async def scores(user: str) -> dict:
        resp = await client.get(f"/v1/ads/scores?user_id={user}&{query}", headers=READ)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    priors = (await scores(unique("stranger")))["scores"]
    before = {u: (await scores(u))["scores"] for u in known}
    name = unique("adholdout")
    variants = [
        {"name": "control", "weight": 1},
        {"name": "bold", "weight": 1, "params": {"shade": 1.0}},
    ]
    body = {"name": name, "surface": "ads", "variants": variants, "holdout": 0.5}
    resp = await client.post("/v1/experiments", json=body, headers=ADMIN)
    assert resp.status_code == 201, resp.text
    spec = Spec(name, "ads", variants, holdout=0.5, start=0.0, end=None)
    groups = set()
    try:
        for user in known:
            got = await scores(user)
            group = spec.variant_of(user)
            groups.add(group)
            assert (got["experiment"], got["variant"]) == (name, group)
            assert got["request_id"]
            if group == HOLDOUT:
                assert got["strategy"] == "baseline"
                assert got["scores"] == priors  # not their profile's scores
            else:
                assert got["strategy"] == "personalised"
                assert got["scores"] == before[user]
        bulk = await client.post(
            "/v1/ads/scores", json={"user_ids": known, "campaign_ids": campaigns}, headers=READ
        )
        for result in bulk.json()["results"]:
            if result["variant"] == HOLDOUT:
                assert result["scores"] == priors
            else:
                assert result["scores"] == before[result["user_id"]]
    finally:
        resp = await client.post(f"/v1/experiments/{name}/stop", headers=ADMIN)
        assert resp.status_code == 200
    assert groups == {"control", "bold", HOLDOUT}
    assert any(before[u] != priors for u in known if spec.variant_of(u) == HOLDOUT)
    after = await scores(known[0])
    assert after["experiment"] is None and after["scores"] == before[known[0]]
