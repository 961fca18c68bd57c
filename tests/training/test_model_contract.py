"""Contract details: shapes, padding, guards, and ALS's real-time path agreeing with its fit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from app.training.models import EASE_MAX_ITEMS, ModelTooLargeError, build_model
from tests.training.world import Planted


async def test_ease_refuses_a_catalogue_over_its_limit() -> None:
    X = sparse.csr_matrix(
        (np.ones(3, np.float32), ([0, 1, 2], [0, 5, EASE_MAX_ITEMS])),
        shape=(3, EASE_MAX_ITEMS + 1),
    )
    model = build_model("ease")
    with pytest.raises(ModelTooLargeError, match=str(EASE_MAX_ITEMS)):
        model.fit(X)
    assert issubclass(ModelTooLargeError, ValueError)


async def test_unknown_kind_and_similarity_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown model kind"):
        build_model("svd")
    with pytest.raises(ValueError, match="similarity"):
        build_model("itemknn", {"similarity": "jaccard"})


async def test_defaults_are_filled_and_overrides_kept() -> None:
    model = build_model("als", {"factors": 8})
    assert model.params["factors"] == 8
    assert {"regularization", "alpha", "iterations"} <= set(model.params)
    assert build_model("itemknn", {"similarity": "cosine", "K": 7}).params == {
        "similarity": "cosine",
        "K": 7,
    }


@pytest.mark.parametrize("kind", ["als", "itemknn", "ease", "popular"])
async def test_short_lists_are_padded_with_minus_one(kind, world: Planted) -> None:
    X = world.matrix()
    model = build_model(kind, {"factors": 8} if kind == "als" else None)
    model.fit(X)
    users = np.array([0, 1])
    ids, scores = model.recommend(users, X, world.n_items + 5)
    assert ids.shape == scores.shape == (2, world.n_items + 5)
    for row, user in enumerate(users):
        seen = set(X[user].indices)
        got = ids[row][ids[row] >= 0]
        assert len(got) == len(set(got))  # no repeats
        assert not seen & set(got)
        assert len(got) <= world.n_items - len(seen)
        assert (ids[row][len(got) :] == -1).all()  # padding only at the end
        assert (scores[row][len(got) :] == 0).all()
    empty_ids, empty_scores = model.recommend(np.array([], int), X, 10)
    assert empty_ids.shape == empty_scores.shape == (0, 10)


async def test_als_user_vector_matches_the_fitted_user(fitted, world: Planted) -> None:
    model = fitted["als"]
    X = world.matrix()
    factors = model.model
    for user in (0, 150):
        fresh = model.user_vector_scores(X[user])
        fitted_scores = factors.item_factors @ factors.user_factors[user]
        # The closed form against the final item factors ~ the fitted user factors.
        assert np.corrcoef(fresh, fitted_scores)[0, 1] > 0.98


async def test_popular_ranks_by_user_count(world: Planted, fitted) -> None:
    X = world.matrix()
    counts = np.diff((X > 0).tocsc().indptr)
    ids, scores = fitted["popular"].recommend(np.array([0]), X, 5, filter_seen=False)
    assert (counts[ids[0]] == np.sort(counts)[::-1][:5]).all()
    assert np.allclose(scores[0], counts[ids[0]])
    similar, _ = fitted["popular"].similar_items(np.array([ids[0][0]]), 3)
    assert ids[0][0] not in similar[0]
