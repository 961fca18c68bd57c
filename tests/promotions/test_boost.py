"""Boosts: bounded by the holdout NDCG tolerance, measured per campaign, applied when served."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
from scipy import sparse

from app.training.evaluate import Split
from app.training.models import build_model
from app.training.promotions import measure_boosts
from tests.conftest import ADMIN
from tests.promotions.conftest import PromoWorld, recommend, sponsored


def planted_holdout(seed: int = 1) -> SimpleNamespace:
    """40 shoppers, 30 items: held-out purchases are among the popular items 0-9, never
    among the campaign's items 20-29, so raising those can only push hits down."""
    rng = np.random.default_rng(seed)
    users, items = 40, 30
    popularity = np.r_[np.full(10, 6.0), np.full(10, 2.0), np.full(10, 1.0)]
    rows, cols = [], []
    for u in range(users):
        for i in rng.choice(items, size=8, replace=False, p=popularity / popularity.sum()):
            rows.append(u)
            cols.append(i)
    train = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), (users, items))
    train.data[:] = 1.0
    test = sparse.lil_matrix((users, items), dtype=np.float32)
    for u in range(users):
        unseen = [i for i in range(10) if train[u, i] == 0]
        test[u, unseen[0]] = 1.0
    model = build_model("popular")
    model.fit(train)
    return SimpleNamespace(holdout=(Split(train=train, test=test.tocsr()), model))


def test_boost_shrinks_until_the_ndcg_drop_is_within_tolerance() -> None:
    out = planted_holdout()
    campaign = np.arange(20, 30)
    strict = measure_boosts(out, {"c": (50.0, campaign)}, 0.01)["c"]
    assert strict["requested"] == 50.0 and 1.0 <= strict["boost"] < 50.0
    assert strict["ndcg_drop"] <= 0.01 and strict["users"] == 40
    assert strict["ndcg_boosted"] <= strict["ndcg_base"]
    loose = measure_boosts(out, {"c": (50.0, campaign)}, 1.0)["c"]
    assert loose["boost"] == 50.0 and loose["ndcg_drop"] > strict["ndcg_drop"]
    # A campaign whose items are what shoppers go on to buy costs nothing to boost.
    helpful = measure_boosts(out, {"h": (5.0, np.arange(0, 10))}, 0.0)["h"]
    assert helpful["boost"] == 5.0 and helpful["ndcg_drop"] == 0.0
    without = measure_boosts(SimpleNamespace(holdout=None), {"c": (2.0, campaign)}, 0.1)["c"]
    assert without["boost"] == 1.0 and without["reason"] == "no holdout"


async def test_worker_reports_the_measured_boost_and_serving_applies_it(
    client: httpx.AsyncClient, promo_world: PromoWorld, app: Any
) -> None:
    w = promo_world
    resp = await client.get(f"/v1/models/{w.version}", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    promotions = resp.json()["metrics"]["promotions"]
    measured = promotions["boosts"][w.boost]
    tolerance = app.state.ctx.settings.promotion_ndcg_tolerance
    assert promotions["tolerance"] == tolerance
    assert measured["requested"] == 3.0 and 1.0 <= measured["boost"] <= 3.0
    assert measured["ndcg_drop"] <= tolerance
    report = (await client.get(f"/v1/campaigns/{w.boost}/delivery", headers=ADMIN)).json()
    assert report["boost"]["boost"] == measured["boost"]
    labelled = 0
    for user in w.users("beauty"):
        body = await recommend(client, user, 10)
        assert not sponsored(body, w.boost), "a boost never takes slots"
        boosted = [i for i in body["items"] if i.get("campaign_id") == w.boost]
        if w.held_out(w.boost, user) or measured["boost"] == 1.0:
            assert not boosted
        assert all(i["item_id"] in w.items[w.boost] for i in boosted)
        labelled += len(boosted)
    assert labelled > 0 or measured["boost"] == 1.0
