"""Step 3: recommender models behind one small interface.

Kinds: "als" and "bpr" (implicit matrix factorisation), "itemknn" (implicit's BM25 item-kNN),
"ease" (closed-form linear item-item model, Steck 2019) and "popular" (the baseline).
All take a users x items confidence matrix (CSR, float32).
"""

from __future__ import annotations

import warnings
from typing import Any, Protocol

import numpy as np
from scipy import sparse

# implicit's BM25 converts its own intermediate COO matrix and warns about it; not ours.
warnings.filterwarnings("ignore", message="Method expects CSR input")

EASE_MAX_ITEMS = 20_000  # the Gram matrix is dense: n_items^2 floats


class Recommender(Protocol):
    kind: str
    params: dict[str, Any]

    def fit(self, X: sparse.csr_matrix) -> None: ...

    def recommend(
        self, users: np.ndarray, X: sparse.csr_matrix, n: int, filter_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]: ...

    def user_vector_scores(self, user_items_row: sparse.csr_matrix) -> np.ndarray: ...


def _top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top-n of a dense score block; -inf scores come back as id -1."""
    n = min(n, scores.shape[1])
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    ids = np.take_along_axis(part, order, axis=1)
    top = np.take_along_axis(part_scores, order, axis=1)
    ids = np.where(np.isfinite(top), ids, -1)
    return ids, np.where(np.isfinite(top), top, 0.0).astype(np.float32)


def _mask_seen(scores: np.ndarray, rows: sparse.csr_matrix) -> None:
    coo = rows.tocoo()
    scores[coo.row, coo.col] = -np.inf


class _ScoreBlockModel:
    """Shared recommend/similar logic for models that can score a block of users densely."""

    kind = "base"
    params: dict[str, Any]

    def _scores(self, rows: sparse.csr_matrix, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def recommend(
        self, users: np.ndarray, X: sparse.csr_matrix, n: int, filter_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        ids_out, scores_out = [], []
        for start in range(0, len(users), 1024):  # bounded memory: 1024 x n_items floats
            chunk = np.asarray(users[start : start + 1024])
            rows = X[chunk]
            scores = np.asarray(self._scores(rows, chunk), dtype=np.float32)
            if filter_seen:
                _mask_seen(scores, rows)
            ids, top = _top_n(scores, n)
            ids_out.append(ids)
            scores_out.append(top)
        if not ids_out:
            return np.empty((0, n), np.int64), np.empty((0, n), np.float32)
        return np.vstack(ids_out), np.vstack(scores_out)

    def user_vector_scores(self, user_items_row: sparse.csr_matrix) -> np.ndarray:
        return np.asarray(self._scores(user_items_row, np.array([-1])), dtype=np.float32)[0]


class PopularModel(_ScoreBlockModel):
    """Everyone gets the items the most users interacted with."""

    kind = "popular"

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.counts = np.zeros(0, np.float32)

    def fit(self, X: sparse.csr_matrix) -> None:
        self.counts = np.bincount(X.indices, minlength=X.shape[1]).astype(np.float32)

    def _scores(self, rows: sparse.csr_matrix, users: np.ndarray) -> np.ndarray:
        return np.tile(self.counts, (rows.shape[0], 1))

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        scores = np.tile(self.counts, (len(items), 1))
        scores[np.arange(len(items)), items] = -np.inf
        return _top_n(scores, n)


class EaseModel(_ScoreBlockModel):
    """EASE: B = I - P / diag(P) with P = (X^T X + lambda I)^-1, zero diagonal."""

    kind = "ease"

    def __init__(self, lambda_: float = 300.0) -> None:
        self.params = {"lambda_": float(lambda_)}
        self.B = np.zeros((0, 0), np.float32)

    def fit(self, X: sparse.csr_matrix) -> None:
        if X.shape[1] > EASE_MAX_ITEMS:
            raise ValueError(f"EASE needs n_items <= {EASE_MAX_ITEMS}, got {X.shape[1]}")
        gram = (X.T @ X).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.params["lambda_"]
        P = np.linalg.inv(gram)
        B = -P / np.diag(P)
        B[np.diag_indices_from(B)] = 0.0
        self.B = B.astype(np.float32)

    def _scores(self, rows: sparse.csr_matrix, users: np.ndarray) -> np.ndarray:
        return np.asarray(rows @ self.B)

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        scores = self.B[items].copy()
        scores[np.arange(len(items)), items] = -np.inf
        scores[scores <= 0] = -np.inf
        return _top_n(scores, n)


class ImplicitModel:
    """Adapter over an `implicit` model (ALS, BPR, BM25 item-kNN)."""

    def __init__(self, kind: str, params: dict[str, Any], use_gpu: bool = False) -> None:
        self.kind = kind
        self.params = dict(params)
        self.model = _make_implicit(kind, self.params, use_gpu)

    def fit(self, X: sparse.csr_matrix) -> None:
        self.model.fit(X, show_progress=False)

    def recommend(
        self, users: np.ndarray, X: sparse.csr_matrix, n: int, filter_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        users = np.asarray(users)
        if not len(users):
            return np.empty((0, n), np.int64), np.empty((0, n), np.float32)
        n = min(n, X.shape[1])
        ids, scores = self.model.recommend(
            users, X[users], N=n, filter_already_liked_items=filter_seen
        )
        return np.asarray(ids), np.asarray(scores, dtype=np.float32)

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        ids, scores = self.model.similar_items(np.asarray(items), N=n + 1)
        ids, scores = np.asarray(ids), np.asarray(scores, dtype=np.float32)
        out_ids = np.full((len(items), n), -1, dtype=np.int64)
        out_scores = np.zeros((len(items), n), dtype=np.float32)
        for row, item in enumerate(items):  # drop the item itself, wherever it ranks
            keep = ids[row] != item
            kept_ids, kept_scores = ids[row][keep][:n], scores[row][keep][:n]
            out_ids[row, : len(kept_ids)] = kept_ids
            out_scores[row, : len(kept_scores)] = kept_scores
        return out_ids, out_scores

    def user_vector_scores(self, user_items_row: sparse.csr_matrix) -> np.ndarray:
        """Scores for one (new or changed) interaction row without refitting."""
        row = sparse.csr_matrix(user_items_row, dtype=np.float32)
        if self.kind == "als":
            # ALS: solve the user's least-squares problem against the fixed item factors.
            factors = self.model.recalculate_user(0, row)
            return np.asarray(self.model.item_factors @ np.ravel(factors), dtype=np.float32)
        if self.kind == "bpr":
            # BPR has no closed form: the user is the confidence-weighted mean of their items.
            weights = row.toarray().ravel()
            if weights.sum() <= 0:
                return np.zeros(row.shape[1], np.float32)
            user = (weights[:, None] * self.model.item_factors).sum(0) / weights.sum()
            return np.asarray(self.model.item_factors @ user, dtype=np.float32)
        return np.asarray((row @ self.model.similarity).toarray()).ravel().astype(np.float32)


def _make_implicit(kind: str, params: dict[str, Any], use_gpu: bool) -> Any:
    if kind == "als":
        from implicit.als import AlternatingLeastSquares

        defaults = {"factors": 64, "regularization": 0.05, "alpha": 2.0, "iterations": 15}
        params.update({k: v for k, v in defaults.items() if k not in params})
        return AlternatingLeastSquares(**params, random_state=42, use_gpu=use_gpu)
    if kind == "bpr":
        from implicit.bpr import BayesianPersonalizedRanking

        defaults = {"factors": 64, "learning_rate": 0.05, "regularization": 0.01, "iterations": 100}
        params.update({k: v for k, v in defaults.items() if k not in params})
        return BayesianPersonalizedRanking(**params, random_state=42, use_gpu=use_gpu)
    if kind == "itemknn":
        from implicit.nearest_neighbours import BM25Recommender

        defaults = {"K": 100, "K1": 1.2, "B": 0.75}
        params.update({k: v for k, v in defaults.items() if k not in params})
        return BM25Recommender(K=params["K"], K1=params["K1"], B=params["B"])
    raise ValueError(f"unknown model kind: {kind}")


def build_model(
    kind: str, params: dict[str, Any] | None = None, *, use_gpu: bool = False
) -> Recommender:
    """A fresh, unfitted model of `kind`."""
    params = dict(params or {})
    if kind == "popular":
        return PopularModel()
    if kind == "ease":
        return EaseModel(**params)
    return ImplicitModel(kind, params, use_gpu=use_gpu)
