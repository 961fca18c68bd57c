"""The ad models' building blocks on hand-made data: attribution, CTR priors, allocation."""

from __future__ import annotations

import numpy as np
import pytest

from app.ads.allocation import Curve, allocate, returns
from app.training.ad_attribution import CLICK_WINDOW, attribute
from app.training.ads import MIN_PRIOR_IMPRESSIONS, PRIOR_STRENGTH, smooth_ctr
from app.training.profile_data import AD_CODE, AdLog, Campaigns

IMP, CLICK, CONV = AD_CODE["ad_impression"], AD_CODE["ad_click"], AD_CODE["ad_conversion"]


def log(rows: list[tuple[int, int, int, float, float]]) -> AdLog:
    user, campaign, kind, ts, amount = zip(*rows, strict=True)
    return AdLog(
        np.array(user, np.int32), np.array(campaign, np.int32), np.array(kind, np.int8),
        np.array(ts, np.float64) + 1.7e9, np.array(amount, np.float32),
    )  # fmt: skip


def test_clicks_and_conversions_attach_to_the_latest_impression() -> None:
    imps = attribute(
        log([
            (0, 0, IMP, 0, np.nan),
            (0, 0, IMP, 100, np.nan),  # the click below belongs to this one
            (0, 0, CLICK, 130, np.nan),
            (0, 0, CONV, 900, 25.0),
            (0, 1, IMP, 50, np.nan),
            (0, 1, CLICK, 50 + CLICK_WINDOW + 1, np.nan),  # too late: not attributed
            (1, 0, CLICK, 10, np.nan),  # no impression for this user at all
            (1, 0, IMP, 20, np.nan),
            (1, 0, CONV, 30, 9.0),  # a conversion without a click
        ]),
        n_campaigns=2,
    )  # fmt: skip
    columns = (imps.user, imps.campaign, imps.ts, imps.clicked, imps.converted, imps.amount)
    rows = {
        (int(u), int(c), round(t - 1.7e9)): (bool(k), bool(v), float(a))
        for u, c, t, k, v, a in zip(*columns, strict=True)
    }
    assert rows == {
        (0, 0, 0): (False, False, 0.0),
        (0, 0, 100): (True, True, 25.0),
        (0, 1, 50): (False, False, 0.0),
        (1, 0, 20): (False, False, 0.0),
    }
    assert imps.stats == {
        "impressions": 4, "clicks": 1, "clicks_without_impression": 2, "conversions": 1,
        "conversions_without_click": 1,
    }  # fmt: skip


def campaigns(brands: list[str], categories: list[str]) -> Campaigns:
    out = Campaigns()
    for k, (brand, category) in enumerate(zip(brands, categories, strict=True)):
        out.add(f"c{k}", brand=brand, category=category, active=True)
    return out


def test_new_campaigns_get_a_prior_from_similar_campaigns() -> None:
    camps = campaigns(
        ["nova", "nova", "peak", "peak", "oak"], ["shoes", "shoes", "toys", "toys", "toys"]
    )
    imps = np.array([1000.0, 0.0, 2000.0, 0.0, 0.0])
    clicks = np.array([100.0, 0.0, 20.0, 0.0, 0.0])
    ctr, prior, glob = smooth_ctr(imps, clicks, camps)
    # c1 has no history: its prior is its brand sibling's CTR (shrunk a little to the global).
    assert prior[1] == pytest.approx((100 + glob * PRIOR_STRENGTH) / (1000 + PRIOR_STRENGTH))
    assert ctr[1] == pytest.approx(prior[1])
    assert ctr[3] == pytest.approx(prior[3]) and ctr[3] < 0.02  # peak's sibling: 1%
    # oak has no brand sibling with history: the category (toys, via peak) decides.
    assert prior[4] == pytest.approx(prior[3])
    # Campaigns with plenty of history keep close to their own CTR.
    assert abs(ctr[0] - 0.1) < 0.02 and abs(ctr[2] - 0.01) < 0.005
    assert MIN_PRIOR_IMPRESSIONS <= 1000


def test_no_traffic_at_all_gives_the_default_prior() -> None:
    ctr, prior, glob = smooth_ctr(np.zeros(2), np.zeros(2), campaigns(["a", "b"], ["x", "y"]))
    assert np.allclose(ctr, glob) and np.allclose(prior, glob) and 0 < glob < 0.05


def test_allocation_equalises_marginal_returns_under_caps() -> None:
    curves = [
        Curve("a", reach_cost=100, reach_return=800, cost_per_click=1, conversion_value=10),
        Curve("b", reach_cost=50, reach_return=200, cost_per_click=1, conversion_value=10),
        Curve("c", reach_cost=80, reach_return=500, cost_per_click=1, conversion_value=10, cap=20),
        Curve("d", reach_cost=0, reach_return=0, cost_per_click=1, conversion_value=10),
    ]
    spend, lam = allocate(curves, 300)
    assert sum(spend) == pytest.approx(300, rel=1e-6)
    assert spend[2] == pytest.approx(20) and spend[3] == 0
    assert returns(curves[0], spend[0])[1] == pytest.approx(lam, rel=1e-6)
    assert returns(curves[1], spend[1])[1] == pytest.approx(lam, rel=1e-6)
    # No other split of the same budget between a and b returns more.
    best = returns(curves[0], spend[0])[0] + returns(curves[1], spend[1])[0]
    for shift in (-10, -1, 1, 10):
        other = returns(curves[0], spend[0] + shift)[0] + returns(curves[1], spend[1] - shift)[0]
        assert other < best


def test_allocation_stops_at_the_caps() -> None:
    curves = [
        Curve("a", 10, 50, 1, 5, cap=5),
        Curve("b", 10, 20, 1, 5, cap=7),
    ]
    spend, _ = allocate(curves, 100)
    assert spend == pytest.approx([5, 7])
    assert allocate(curves, 0)[0] == [0.0, 0.0]
