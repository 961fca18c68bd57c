"""The profile stage never fails on thin data: empty shop, a handful of events, no ads."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import sparse

from app.config import Settings
from app.training.dataset import TYPE_CODE, Catalog, Interactions
from app.training.models import build_model
from app.training.profile_build import build_profiles
from app.training.profile_data import AdLog, Campaigns, ProfileData, Users
from app.training.publish_profiles import ad_payloads, profile_rows

SETTINGS = Settings(database_url="sqlite:///unused.db")
NOW = time.time()


def catalog(n: int) -> Catalog:
    return Catalog(
        item_ids=[f"i{k}" for k in range(n)], category=(["a", "b", None] * n)[:n],
        brand=(["x", None, "y"] * n)[:n], kind=["product"] * n, title=[None] * n,
        tags=[[] for _ in range(n)], price=np.array([10.0, np.nan, 30.0] * (n // 3 + 1))[:n],
        available=np.ones(n, bool), index={f"i{k}": k for k in range(n)},
    )  # fmt: skip


def data(user_ids: list[str], campaigns: Campaigns) -> ProfileData:
    users = Users()
    for u in user_ids:
        users.code(u)
    empty = np.empty(0)
    ads = AdLog(empty.astype(np.int32), empty.astype(np.int32), empty.astype(np.int8), empty,
                empty.astype(np.float32))  # fmt: skip
    return ProfileData(users, campaigns, ads, np.zeros(len(users)), np.zeros(len(users)))


def interactions(rows: list[tuple[int, int, str, float]], users: list[str]) -> Interactions:
    user, item, kind, ago = zip(*rows, strict=True) if rows else ((), (), (), ())
    n = len(rows)
    return Interactions(
        user_ids=users, user=np.array(user, np.int32), item=np.array(item, np.int32),
        etype=np.array([TYPE_CODE[k] for k in kind], np.int8), ts=NOW - np.array(ago, float),
        quantity=np.full(n, np.nan, np.float32), amount=np.full(n, np.nan, np.float32),
        value=np.full(n, np.nan, np.float32),
    )  # fmt: skip


def check(res, n_users: int) -> None:  # type: ignore[no-untyped-def]
    assert len(res.users) == len(res.segments) == len(res.spend) == n_users
    assert np.all(np.isfinite(res.spend)) and np.all((res.churn >= 0) & (res.churn <= 1))
    rows = list(profile_rows(res, 1, "now", 0, n_users))
    assert len(rows) == n_users
    adm, scores, _, _ = ad_payloads(res)
    assert len(list(scores)) <= n_users and "campaigns" in adm


def test_an_empty_shop() -> None:
    res = build_profiles(data([], Campaigns()), catalog(0), interactions([], []), None, SETTINGS)
    check(res, 0)


@pytest.mark.parametrize("with_model", [False, True])
def test_a_handful_of_events_and_an_unseen_campaign(with_model: bool) -> None:
    campaigns = Campaigns()
    campaigns.add("c1", brand="x", category="a", item_ids=["i0"], bid=1.0, active=True)
    campaigns.add("c2", brand="zzz", active=True)  # no history, brand unknown to the catalog
    shoppers = ["u0", "u1", "u2"]
    inter = interactions(
        [(0, 0, "view", 3600), (0, 0, "purchase", 3000), (1, 2, "view", 86400 * 20)], shoppers
    )
    model = None
    if with_model:
        model = build_model("popular")
        model.fit(sparse.csr_matrix(np.ones((3, 3), np.float32)))
    res = build_profiles(
        data([*shoppers, "no-events"], campaigns), catalog(3), inter, model, SETTINGS
    )
    check(res, 4)
    assert res.segments.tolist()[3] == "unengaged"
    assert res.spend_model.kind == "mean" and res.churn_model.kind == "base_rate"
    assert bool(res.low_confidence.all())
    _, _, audiences, stats = ad_payloads(res)
    assert stats["active_campaigns"] == 2 and set(audiences) == {"c1", "c2"}
