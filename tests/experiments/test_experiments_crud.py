"""Experiments API: definitions, conflicts, validation, auth, and the ads surface."""

from __future__ import annotations

import httpx

from app.experiments.assignment import HOLDOUT, Spec
from tests.conftest import ADMIN, INGEST, READ, unique
from tests.experiments.feedback import create_experiment, results, stop_experiment


async def test_crud_conflicts_and_validation(feedback: httpx.AsyncClient) -> None:
    name = unique("exp")
    body = {
        "name": name,
        "surface": "ads",
        "variants": [
            {"name": "base", "weight": 2, "params": {"bid_shading": 0.9}},
            {"name": "bold", "weight": 1, "params": {"bid_shading": 1.0}},
        ],
    }
    created = await create_experiment(feedback, body)
    assert created["variants"][0]["params"] == {"bid_shading": 0.9}
    assert (await feedback.post("/v1/experiments", json=body, headers=ADMIN)).status_code == 409
    other = {**body, "name": unique("exp")}
    resp = await feedback.post("/v1/experiments", json=other, headers=ADMIN)
    assert resp.status_code == 409 and name in resp.json()["detail"]  # one per surface
    listed = (await feedback.get("/v1/experiments", headers=READ)).json()["experiments"]
    assert name in [e["name"] for e in listed]
    one = await feedback.get(f"/v1/experiments/{name}", headers=READ)
    assert one.status_code == 200 and one.json()["surface"] == "ads"
    stopped = await feedback.post(f"/v1/experiments/{name}/stop", headers=ADMIN)
    assert stopped.json()["status"] == "stopped"
    again = await feedback.post(f"/v1/experiments/{name}/stop", headers=ADMIN)
    assert again.status_code == 200  # idempotent
    assert (await feedback.post("/v1/experiments", json=other, headers=ADMIN)).status_code == 201
    await stop_experiment(feedback, other["name"])
    empty = await results(feedback, name)
    assert empty["verdict"] == "no data yet" and empty["status"] == "stopped"

    bad = [
        ({**body, "surface": "email"}, "surface"),
        ({**body, "holdout": 0.6}, "holdout"),
        ({**body, "variants": body["variants"][:1]}, "variants"),
        (
            {**body, "variants": [{"name": "x", "weight": 1}, {"name": "x", "weight": 1}]},
            "variants",
        ),
        ({**body, "variants": [{"name": "a", "weight": 0}, {"name": "b"}]}, "weight"),
        ({**body, "variants": [{"name": "holdout"}, {"name": "b"}]}, "variants"),
        (
            {
                **body,
                "surface": "recommendations",
                "variants": [{"name": "a"}, {"name": "b", "strategy": "magic"}],
            },
            "variants",
        ),
        ({**body, "start": "2030-01-02T00:00:00Z", "end": "2030-01-01T00:00:00Z"}, "end"),
        ({**body, "start": "2030-01-01T00:00:00"}, "start"),
    ]
    for payload, field in bad:
        payload = {**payload, "name": unique("bad")}
        resp = await feedback.post("/v1/experiments", json=payload, headers=ADMIN)
        assert resp.status_code == 422, (payload, resp.text)
        assert field in resp.text, (field, resp.text)
    assert (await feedback.get("/v1/experiments/nope", headers=READ)).status_code == 404
    assert (await feedback.get("/v1/experiments/nope/results", headers=READ)).status_code == 404
    assert (await feedback.post("/v1/experiments/nope/stop", headers=ADMIN)).status_code == 404


async def test_auth(feedback: httpx.AsyncClient) -> None:
    body = {"name": unique("exp"), "surface": "ads", "variants": [{"name": "a"}, {"name": "b"}]}
    for headers, status in (({}, 401), (READ, 403), (INGEST, 403)):
        resp = await feedback.post("/v1/experiments", json=body, headers=headers)
        assert resp.status_code == status
        resp = await feedback.post("/v1/experiments/x/stop", headers=headers)
        assert resp.status_code == status
    for path in ("/v1/experiments", "/v1/experiments/x", "/v1/experiments/x/results"):
        assert (await feedback.get(path)).status_code == 401
        assert (await feedback.get(path, headers=INGEST)).status_code == 403
        assert (await feedback.get(path, headers=READ)).status_code in (200, 404)


async def test_ad_scores_carry_the_ads_experiment(feedback: httpx.AsyncClient) -> None:
    name = unique("adsurface")
    variants = [{"name": "base", "weight": 1}, {"name": "boost", "weight": 3}]
    await create_experiment(
        feedback, {"name": name, "surface": "ads", "variants": variants, "holdout": 0.3}
    )
    spec = Spec(name=name, surface="ads", variants=variants, holdout=0.3, start=0.0, end=None)
    pool = [f"{name}-u{k}" for k in range(200)]
    # A few shoppers of each group, the holdout included.
    users: list[str] = []
    for group in ("base", "boost", HOLDOUT):
        users += [u for u in pool if spec.variant_of(u) == group][:4]
    request_ids = set()
    try:
        for user in users:
            resp = await feedback.get("/v1/ads/scores", params={"user_id": user}, headers=READ)
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert (body["experiment"], body["variant"]) == (name, spec.variant_of(user))
            request_ids.add(body["request_id"])
            # The holdout is scored from campaign priors only: the non-personalised baseline.
            assert (body["strategy"] == "baseline") == (body["variant"] == HOLDOUT), body
        resp = await feedback.post(
            "/v1/ads/scores", json={"user_ids": users, "campaign_ids": []}, headers=READ
        )
        assert resp.status_code == 200, resp.text
        for result in resp.json()["results"]:
            assert result["experiment"] == name
            assert result["variant"] == spec.variant_of(result["user_id"])
            assert (result["strategy"] == "baseline") == (result["variant"] == HOLDOUT)
            request_ids.add(result["request_id"])
    finally:
        await stop_experiment(feedback, name)
    assert len(request_ids) == 2 * len(users)  # one per answer
    resp = await feedback.get("/v1/ads/scores", params={"user_id": users[0]}, headers=READ)
    body = resp.json()
    assert body["experiment"] is None and body["variant"] is None and body["request_id"]
