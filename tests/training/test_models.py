"""Every model kind recovers planted structure, filters, and scores new users without refits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from tests.training.conftest import CF_KINDS
from tests.training.world import Planted

pytestmark = pytest.mark.parametrize("kind", list(CF_KINDS))


async def test_recommendations_come_from_the_users_cluster(kind, fitted, world: Planted) -> None:
    model = fitted[kind]
    X = world.matrix()
    for group in (0, 1):
        users = np.flatnonzero(world.user_group == group)
        ids, scores = model.recommend(users, X, 10)
        assert ids.shape == scores.shape == (len(users), 10)
        assert (ids >= 0).all()
        clusters = world.item_cluster[ids]
        # Every user's top 3, and nearly all of the top 10, are from their group's cluster.
        assert (clusters[:, :3] == group).all()
        assert (clusters == group).mean() >= 0.95
        assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first


async def test_filter_seen(kind, fitted, world: Planted) -> None:
    model = fitted[kind]
    X = world.matrix()
    users = np.arange(world.n_users)
    ids, _ = model.recommend(users, X, 20, filter_seen=True)
    seen = X[users[:, None], np.maximum(ids, 0)].toarray() > 0
    assert not (seen & (ids >= 0)).any()
    # Without the filter the user's own (strongly scored) items come back.
    ids, _ = model.recommend(users, X, 20, filter_seen=False)
    seen = X[users[:, None], np.maximum(ids, 0)].toarray() > 0
    assert seen.any(axis=1).mean() > 0.9


async def test_similar_items_exclude_the_item_and_stay_in_cluster(
    kind, fitted, world: Planted
) -> None:
    items = np.arange(world.n_items)
    ids, scores = fitted[kind].similar_items(items, 5)
    assert ids.shape == scores.shape == (world.n_items, 5)
    assert not (ids == items[:, None]).any()
    valid = ids >= 0
    assert valid[:, 0].all()
    same = (
        world.item_cluster[ids[valid]]
        == np.broadcast_to(world.item_cluster[:, None], ids.shape)[valid]
    )
    assert same.mean() >= 0.9


async def test_user_vector_scores_for_a_new_user(kind, fitted, world: Planted) -> None:
    cluster_a = np.flatnonzero(world.item_cluster == 0)[:3]
    row = sparse.csr_matrix(
        (np.ones(3, np.float32), (np.zeros(3, int), cluster_a)), shape=(1, world.n_items)
    )
    scores = fitted[kind].user_vector_scores(row)
    assert scores.shape == (world.n_items,)
    scores[cluster_a] = -np.inf  # the items the user already has
    top = np.argsort(-scores)[:10]
    assert (world.item_cluster[top] == 0).all()


async def test_a_batch_of_rows_scores_as_each_row_alone(kind, fitted, world: Planted) -> None:
    # Real time scores a batch of shoppers in one call; batching must not change anyone's scores.
    model = fitted[kind]
    rows = world.matrix()[np.arange(0, world.n_users, max(1, world.n_users // 12))]
    empty = sparse.csr_matrix((1, world.n_items), dtype=np.float32)
    rows = sparse.vstack([rows, empty]).tocsr()  # a shopper with no positive row
    batch = model.users_vector_scores(rows)
    assert batch.shape == (rows.shape[0], world.n_items)
    for r in range(rows.shape[0]):
        np.testing.assert_allclose(
            batch[r], model.user_vector_scores(rows[r]), rtol=1e-4, atol=1e-5
        )
    assert np.abs(batch[:-1]).sum(axis=1).min() > 0
