"""Step 4: offline ranking metrics on a temporal holdout.

recall@k is hits / min(k, |held-out items|) (as implicit.evaluation computes it, so a user
with more held-out items than k can still reach 1.0); NDCG@k uses binary relevance; MAP@k is
the mean of precision at each hit, over min(k, |held-out items|).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse


@dataclass
class Split:
    train: sparse.csr_matrix
    test: sparse.csr_matrix


def ranking_metrics(
    model: Any, split: Split, k: int = 10, users: np.ndarray | None = None
) -> dict[str, float]:
    """recall@k, ndcg@k, map@k and catalog coverage over users with held-out items."""
    test = split.test.tocsr()
    if users is None:
        users = np.flatnonzero(np.diff(test.indptr) > 0)
    if not len(users):
        return {
            f"recall@{k}": 0.0,
            f"ndcg@{k}": 0.0,
            f"map@{k}": 0.0,
            "coverage": 0.0,
            "users_evaluated": 0,
        }
    ids, _ = model.recommend(users, split.train, k, filter_seen=True)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    recall = ndcg = ap = 0.0
    for row, user in enumerate(users):
        truth = test.indices[test.indptr[user] : test.indptr[user + 1]]
        hits = np.isin(ids[row][:k], truth)
        denom = min(k, len(truth))
        recall += hits.sum() / denom
        ideal = discounts[:denom].sum()
        ndcg += (discounts[: len(hits)][hits]).sum() / ideal
        if hits.any():
            precision_at_hits = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
            ap += precision_at_hits.sum() / denom
    recommended = np.unique(ids[ids >= 0])
    count = len(users)
    return {
        f"recall@{k}": round(recall / count, 5),
        f"ndcg@{k}": round(ndcg / count, 5),
        f"map@{k}": round(ap / count, 5),
        "coverage": round(len(recommended) / split.train.shape[1], 5),
        "users_evaluated": count,
    }
