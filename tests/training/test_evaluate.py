"""Temporal split and ranking metrics: hand-checked figures and agreement with implicit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from implicit.evaluation import ranking_metrics_at_k
from scipy import sparse

from app.training.evaluate import Split, ranking_metrics, temporal_split
from app.training.models import build_model


def _csr(rows: dict[int, list[int]], shape: tuple[int, int]) -> sparse.csr_matrix:
    pairs = [(u, i) for u, items in rows.items() for i in items]
    users, items = zip(*pairs, strict=True)
    return sparse.csr_matrix(
        (np.ones(len(pairs), np.float32), (users, items)), shape=shape, dtype=np.float32
    )


async def test_temporal_split_rules() -> None:
    # (user, item, weight, time); cutoff = 10
    events = [
        (0, 0, 1.0, 1), (0, 0, 2.0, 2),  # summed in train
        (0, 1, 1.0, 11), (0, 1, 1.0, 12),  # new to user 0: one test positive
        (0, 0, 1.0, 13),  # seen in train: not a target
        (1, 2, 1.0, 14),  # user 1 has no train events: not evaluated
        (2, 3, -1.0, 3), (2, 3, 1.0, 4),  # nets to zero: no train signal ...
        (2, 4, 1.0, 5),
        (2, 3, 1.0, 15),  # ... but still seen before the cutoff: not a target
        (2, 5, 1.0, 10),  # at the cutoff: test
    ]  # fmt: skip
    u, i, w, t = (np.array(col) for col in zip(*events, strict=True))
    split = temporal_split(u, i, w, t, 3, 6, cutoff=10)
    assert split.train.shape == split.test.shape == (3, 6)
    assert split.train.dtype == np.float32
    assert split.train.toarray().tolist() == [
        [3, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1, 0],
    ]
    assert split.test.toarray().tolist() == [
        [0, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 1],
    ]


async def test_metrics_by_hand() -> None:
    # Popularity after fitting: item 0 (5 users) > 1 (4) > 2 (2) > 3 (1) > 4 (0).
    train = _csr({0: [0], 1: [1], 2: [0, 1, 2, 3], 3: [0, 1, 2], 4: [0, 1], 5: [0]}, (6, 5))
    test = _csr({0: [2, 4], 1: [0, 3, 4]}, (6, 5))
    model = build_model("popular")
    model.fit(train)
    m = ranking_metrics(model, Split(train, test), k=3)
    # user 0 gets [1, 2, 3]: one hit at rank 2 of min(3, 2) = 2 possible
    # user 1 gets [0, 2, 3]: hits at ranks 1 and 3 of min(3, 3) = 3 possible
    d2, d3 = 1 / math.log2(3), 1 / math.log2(4)
    assert m["users_evaluated"] == 2
    assert m["recall@3"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m["pooled_recall@3"] == pytest.approx(3 / 5)
    assert m["ndcg@3"] == pytest.approx((d2 / (1 + d2) + (1 + d3) / (1 + d2 + d3)) / 2)
    assert m["map@3"] == pytest.approx(((1 / 2) / 2 + (1 + 2 / 3) / 3) / 2)
    assert m["coverage"] == pytest.approx(4 / 5)
    only = ranking_metrics(model, Split(train, test), k=3, users=np.array([1, 2, 5]))
    assert only["users_evaluated"] == 1  # 2 and 5 hold nothing out
    assert only["recall@3"] == pytest.approx(2 / 3)
    empty = ranking_metrics(model, Split(train, test), k=3, users=np.array([4]))
    assert empty["users_evaluated"] == 0 and empty["ndcg@3"] == 0.0


def _random_split(seed: int = 0) -> Split:
    """300 x 120 with two taste groups, 20% of each user's items held out at random."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 300, 120
    prefs = np.where(
        (np.arange(n_users)[:, None] % 2) == (np.arange(n_items)[None, :] % 2), 0.15, 0.01
    )
    dense = (rng.random((n_users, n_items)) < prefs).astype(np.float32)
    held = (rng.random(dense.shape) < 0.2) & (dense > 0)
    train = sparse.csr_matrix(np.where(held, 0, dense), dtype=np.float32)
    return Split(train=train, test=sparse.csr_matrix(held.astype(np.float32)))


class _RowsOnly:
    """implicit's evaluation API (batch ids + their own rows) over a row-scored model."""

    def __init__(self, model) -> None:
        self.model = model

    def recommend(self, userid, user_items, N=10, filter_already_liked_items=True, **_):
        users = np.arange(user_items.shape[0])
        ids, scores = self.model.recommend(
            users, user_items, N, filter_seen=filter_already_liked_items
        )
        return ids.astype(np.int32), scores  # implicit's evaluation reads C ints


@pytest.mark.parametrize("k", [5, 10])
@pytest.mark.parametrize("kind", ["als", "ease"])
async def test_metrics_match_implicit(kind: str, k: int) -> None:
    split = _random_split()
    model = build_model(kind, {"factors": 8} if kind == "als" else {"lambda_": 20.0})
    model.fit(split.train)
    ours = ranking_metrics(model, split, k=k)
    target = model.model if kind == "als" else _RowsOnly(model)
    theirs = ranking_metrics_at_k(target, split.train, split.test, K=k, show_progress=False)
    assert ours["users_evaluated"] > 200
    assert ours[f"ndcg@{k}"] == pytest.approx(theirs["ndcg"], abs=1e-9)
    assert ours[f"map@{k}"] == pytest.approx(theirs["map"], abs=1e-9)
    assert ours[f"pooled_recall@{k}"] == pytest.approx(theirs["precision"], abs=1e-9)
    assert ours[f"pooled_recall@{k}"] > 0.05  # there are hits to agree on: not vacuous
