"""The batch top-n behind every recommend: exact against a full sort, whatever the ties."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from app.training import topn
from app.training.lists import PairSet, dense_mask
from app.training.models import PopularModel


def brute_top_n(scores: np.ndarray, n: int, floor: float) -> list[list[int]]:
    """Reference: every row fully sorted, ids whose score clears the floor."""
    out = []
    for row in scores:
        order = np.argsort(-row, kind="stable")
        out.append([int(j) for j in order[:n] if row[j] > floor])
    return out


@pytest.mark.parametrize("floor", [0.0, -np.inf])
@pytest.mark.parametrize("n", [1, 10, 160])
def test_top_n_matches_a_full_sort_on_sparse_scores(floor: float, n: int) -> None:
    rng = np.random.default_rng(3)
    scores = rng.random((300, 500), dtype=np.float32)
    scores[scores < 0.8] = 0.0  # long runs of equal zeros, as a sparse model leaves them
    scores[:5] = 0.0  # rows with nothing to recommend
    scores[5:10, :] = -np.inf  # rows with everything masked
    ids, top = topn.top_n(scores, n, floor)
    expected = brute_top_n(scores, n, floor)
    for r, want in enumerate(expected):
        got = [int(j) for j in ids[r] if j >= 0]
        # The same scores in the same order (ties may swap ids with equal scores).
        assert np.allclose(scores[r, got], scores[r, want])
        assert (ids[r, len(got) :] == -1).all() and (top[r, len(got) :] == 0).all()
        assert np.allclose(top[r, : len(got)], scores[r, got])
    if floor == 0.0:
        assert (ids[:10] == -1).all()  # zeros are not recommendations


def test_blocks_on_threads_give_the_single_block_answer(monkeypatch) -> None:
    rng = np.random.default_rng(5)
    scores = rng.random((2000, 300), dtype=np.float32)
    one_ids, one_top = topn.top_n(scores, 20)
    monkeypatch.setattr(topn, "BLOCK_FLOATS", 300 * 64)  # 64-row blocks on the pool
    ids, top = topn.block_top_n(np.arange(2000), 20, 300, lambda rows: scores[rows])
    assert np.array_equal(ids, one_ids) and np.array_equal(top, one_top)


def test_popular_recommend_skips_seen_items_in_ranking_order() -> None:
    rng = np.random.default_rng(7)
    X = sparse.random(200, 60, density=0.2, format="csr", random_state=8, dtype=np.float32)
    model = PopularModel()
    model.fit(X)
    ids, scores = model.recommend(np.arange(200), X, 15, filter_seen=True)
    order = np.argsort(-model.counts, kind="stable")
    for user in rng.choice(200, 40, replace=False):
        seen = set(X[user].indices.tolist())
        want = [int(i) for i in order if int(i) not in seen][:15]
        assert ids[user].tolist() == want
        assert np.array_equal(scores[user], model.counts[want])
    unfiltered, _ = model.recommend(np.arange(3), X, 5, filter_seen=False)
    assert (unfiltered == order[:5]).all()


@pytest.mark.parametrize("dense", [True, False])
def test_pair_set_membership_is_the_same_both_ways(monkeypatch, dense: bool) -> None:
    if not dense:
        monkeypatch.setattr(PairSet, "DENSE_MAX", 0)
    rng = np.random.default_rng(9)
    items, neighbours = rng.integers(0, 40, 300), rng.integers(0, 40, 300)
    pairs = PairSet(items, neighbours, 40)
    assert (pairs.table is not None) is dense
    a, b = rng.integers(0, 40, (50, 1)), rng.integers(0, 40, (50, 7))
    truth = set(zip(items.tolist(), neighbours.tolist(), strict=True))
    want = np.array(
        [[(int(x), int(y)) in truth for y in row] for x, row in zip(a[:, 0], b, strict=True)]
    )
    assert np.array_equal(pairs.contains(a, b), want)


def test_dense_mask_marks_exactly_the_stored_entries() -> None:
    X = sparse.random(30, 20, density=0.3, format="csr", random_state=2)
    assert np.array_equal(dense_mask(X), X.toarray() != 0)
