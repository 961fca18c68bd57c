"""Step 4: offline ranking metrics on a temporal holdout.

Definitions (K = k, T = a user's held-out items, hits = recommended top-K items in T):
- recall@k = hits / min(K, |T|), averaged over users. This is the denominator implicit's
  `ranking_metrics_at_k` uses, so a user with more than K held-out items can still reach 1.0;
  implicit pools it (sum of hits / sum of min(K, |T|)) and calls it "precision": that pooled
  figure is reported here as `pooled_recall@k`.
- ndcg@k: binary relevance, DCG / ideal DCG of min(K, |T|) hits, averaged over users.
- map@k: sum of precision at each hit rank / min(K, |T|), averaged over users.
- coverage: distinct items recommended to the evaluated users / n_items.
All match implicit.evaluation.ranking_metrics_at_k on the same recommendations.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

_EVAL_CHUNK = 4096  # users per recommend call


@dataclass
class Split:
    train: sparse.csr_matrix
    test: sparse.csr_matrix  # same shape as train; 1.0 marks a held-out positive


def in_sorted(values: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Elementwise: is each of `values` (any shape) in the sorted 1-d `sorted_keys`?"""
    if not len(sorted_keys):
        return np.zeros(values.shape, bool)
    pos = np.minimum(np.searchsorted(sorted_keys, values), len(sorted_keys) - 1)
    return sorted_keys[pos] == values


def temporal_split(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    weights: np.ndarray,
    timestamps: np.ndarray,
    n_users: int,
    n_items: int,
    *,
    cutoff: float,
) -> Split:
    """Train = events before `cutoff` (weights summed per user-item, positive sums kept);
    test = items a train user first touched at/after `cutoff` and never before it."""
    user_idx = np.asarray(user_idx, dtype=np.int64)
    item_idx = np.asarray(item_idx, dtype=np.int64)
    before = np.asarray(timestamps) < cutoff
    shape = (n_users, n_items)
    train = sparse.csr_matrix(
        (np.asarray(weights, dtype=np.float32)[before], (user_idx[before], item_idx[before])),
        shape=shape,
        dtype=np.float32,
    )
    train.sum_duplicates()
    train.data[train.data < 0] = 0.0  # net-negative pairs (e.g. removed from cart) are no signal
    train.eliminate_zeros()

    # Exclusion uses any earlier event, even one whose weights summed to zero.
    seen = _indicator(user_idx[before], item_idx[before], shape)
    after = ~before
    test = _indicator(user_idx[after], item_idx[after], shape)
    test = test - test.multiply(seen)
    in_train = (np.diff(train.indptr) > 0).astype(np.float32)
    test = sparse.diags(in_train) @ test  # only users the model has seen
    test.eliminate_zeros()
    return Split(train=train.tocsr(), test=sparse.csr_matrix(test, dtype=np.float32))


def _indicator(users: np.ndarray, items: np.ndarray, shape: tuple[int, int]) -> sparse.csr_matrix:
    matrix = sparse.csr_matrix(
        (np.ones(len(users), np.float32), (users, items)), shape=shape, dtype=np.float32
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def stable_sample(users: np.ndarray, user_ids: Sequence[str], limit: int) -> np.ndarray:
    """At most `limit` of `users` (codes into `user_ids`), chosen by a hash of the id: the same
    shoppers stay in the sample from one rebuild to the next (0: all of them)."""
    if not limit or len(users) <= limit:
        return users
    rank = np.fromiter((zlib.crc32(user_ids[u].encode()) for u in users.tolist()), np.int64)
    return np.sort(users[np.argsort(rank, kind="stable")[:limit]])


def holdout_users(split: Split) -> np.ndarray:
    """Users with at least one held-out item."""
    return np.flatnonzero(np.diff(split.test.tocsr().indptr) > 0)


def per_user_metrics(
    model: Any, split: Split, k: int = 10, users: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Per-user recall@k, ndcg@k, ap@k, hits and min(k, |T|) for users with held-out items,
    plus the top-k item ids recommended to them (`ids`)."""
    test = split.test.tocsr()
    candidates = holdout_users(split)
    users = candidates if users is None else np.intersect1d(np.asarray(users), candidates)
    n_items = test.shape[1]
    ids = np.empty((0, k), np.int64)
    if len(users):
        chunks = [
            model.recommend(users[s : s + _EVAL_CHUNK], split.train, k, filter_seen=True)[0]
            for s in range(0, len(users), _EVAL_CHUNK)
        ]
        ids = np.vstack([np.asarray(c, dtype=np.int64)[:, :k] for c in chunks])

    # A hit is a (user, item) pair present in test: look the pairs up as sorted int64 keys.
    sub = test[users]
    sub.sort_indices()
    truth_keys = np.repeat(np.arange(len(users), dtype=np.int64), np.diff(sub.indptr)) * n_items
    truth_keys += sub.indices
    rec_keys = np.arange(len(users), dtype=np.int64)[:, None] * n_items + ids
    hits = (ids >= 0) & in_sorted(rec_keys, truth_keys)

    denom = np.minimum(k, np.diff(sub.indptr)).astype(np.float64)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)[np.maximum(denom.astype(np.int64), 1) - 1]
    ranks = np.arange(1, k + 1)
    precision_at_hits = np.cumsum(hits, axis=1) / ranks * hits
    n_hits = hits.sum(axis=1).astype(np.float64)
    return {
        "users": users,
        "ids": ids,
        "hits": n_hits,
        "denom": denom,
        "recall": n_hits / denom,
        "ndcg": (hits * discounts).sum(axis=1) / ideal,
        "ap": precision_at_hits.sum(axis=1) / denom,
    }


def ranking_metrics(
    model: Any, split: Split, k: int = 10, users: np.ndarray | None = None
) -> dict[str, float]:
    """recall@k, pooled_recall@k, ndcg@k, map@k, coverage and users_evaluated (see module doc);
    only users with held-out items count (`users` narrows them further)."""
    per = per_user_metrics(model, split, k, users)
    count = len(per["users"])
    if not count:
        zeros = ("recall", "pooled_recall", "ndcg", "map")
        return {**{f"{m}@{k}": 0.0 for m in zeros}, "coverage": 0.0, "users_evaluated": 0}
    recommended = np.unique(per["ids"][per["ids"] >= 0])
    return {
        f"recall@{k}": float(per["recall"].mean()),
        f"pooled_recall@{k}": float(per["hits"].sum() / per["denom"].sum()),
        f"ndcg@{k}": float(per["ndcg"].mean()),
        f"map@{k}": float(per["ap"].mean()),
        "coverage": float(len(recommended) / split.train.shape[1]),
        "users_evaluated": count,
    }
