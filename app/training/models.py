"""Step 3: recommender models behind one small interface.

Kinds: "als" and "bpr" (implicit matrix factorisation), "itemknn" (implicit's BM25 or cosine
item-kNN), "ease" (closed-form linear item-item model, Steck 2019) and "popular" (baseline).
All fit a users x items confidence matrix (CSR, float32) and return item row indices; -1 (with
score 0) pads a list when fewer than n items can be recommended.
"""

from __future__ import annotations

import warnings
from typing import Any, Protocol

import numpy as np
from scipy import sparse
from scipy.linalg import lapack

from app.training.evaluate import in_sorted
from app.training.topn import block_top_n, first_valid

# implicit's BM25 converts its own intermediate COO matrix and warns about it; not ours.
warnings.filterwarnings("ignore", message="Method expects CSR input")

EASE_MAX_ITEMS = 20_000  # the Gram matrix is dense: n_items^2 doubles (3.2 GB at the limit)
KINDS = ("als", "bpr", "itemknn", "ease", "popular")
# Chosen on validation windows carved from MovieLens-100K's training window (bench/accuracy.py,
# bench/RESULTS.md) and checked on bench/world.py's generated shop: strong ALS regularisation
# and weak BM25 length normalisation won on both; weak ALS regularisation overfits sparse users.
DEFAULTS: dict[str, dict[str, Any]] = {
    "als": {"factors": 64, "regularization": 10.0, "alpha": 1.0, "iterations": 15},
    "bpr": {"factors": 64, "learning_rate": 0.01, "regularization": 0.01, "iterations": 100},
    "itemknn": {"similarity": "bm25", "K": 100, "K1": 1.2, "B": 0.25},
    "ease": {"lambda_": 300.0},
    "popular": {},
}


class ModelTooLargeError(ValueError):
    """The model cannot be built for this catalogue size (EASE's dense Gram matrix)."""


class Recommender(Protocol):
    kind: str
    params: dict[str, Any]

    def fit(self, X: sparse.csr_matrix) -> None: ...

    def recommend(
        self, users: np.ndarray, X: sparse.csr_matrix, n: int, filter_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]: ...

    def user_vector_scores(self, user_items_row: sparse.csr_matrix) -> np.ndarray: ...

    def users_vector_scores(self, rows: sparse.csr_matrix) -> np.ndarray: ...


def _mask_seen(scores: np.ndarray, rows: sparse.csr_matrix) -> None:
    coo = rows.tocoo()
    scores[coo.row, coo.col] = -np.inf


def _as_row(user_items_row: sparse.spmatrix | np.ndarray) -> sparse.csr_matrix:
    row = sparse.csr_matrix(user_items_row, dtype=np.float32)
    if row.shape[0] != 1:
        raise ValueError(f"expected one interaction row, got {row.shape[0]}")
    return row


class _BlockModel:
    """Models that score a block of users densely from their interaction rows alone."""

    kind = "base"
    params: dict[str, Any]
    floor = -np.inf  # scores at or below it are not recommendations

    def _scores(self, rows: sparse.csr_matrix) -> np.ndarray:
        """Dense (len(rows), n_items) scores; at or below `floor` the model cannot reach."""
        raise NotImplementedError

    def recommend(
        self, users: np.ndarray, X: sparse.csr_matrix, n: int, filter_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        def score(chunk: np.ndarray) -> np.ndarray:
            rows = X[chunk]
            scores = self._scores(rows)
            if filter_seen:
                _mask_seen(scores, rows)
            return scores

        return block_top_n(users, n, X.shape[1], score, self.floor)

    def user_vector_scores(self, user_items_row: sparse.csr_matrix) -> np.ndarray:
        """Scores over all items for one (possibly new) interaction row, without refitting."""
        return self.users_vector_scores(_as_row(user_items_row))[0]

    def users_vector_scores(self, rows: sparse.csr_matrix) -> np.ndarray:
        """(len(rows), n_items) scores for interaction rows, without refitting; 0 where the
        model has no evidence."""
        scores = self._scores(sparse.csr_matrix(rows, dtype=np.float32))
        return np.where(scores > self.floor, scores, 0.0).astype(np.float32)


class PopularModel(_BlockModel):
    """Everyone gets the items the most users interacted with."""

    kind = "popular"

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.counts = np.zeros(0, np.float32)

    def fit(self, X: sparse.csr_matrix) -> None:
        self.counts = np.bincount(X.indices, minlength=X.shape[1]).astype(np.float32)

    def _scores(self, rows: sparse.csr_matrix) -> np.ndarray:
        return np.tile(self.counts, (rows.shape[0], 1))

    def recommend(
        self, users: np.ndarray, X: sparse.csr_matrix, n: int, filter_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """The global ranking's head minus each user's seen items: no dense score block (this
        is the baseline every holdout evaluation scores)."""
        users = np.asarray(users, dtype=np.int64)
        n_items = len(self.counts)
        order = np.argsort(-self.counts, kind="stable")
        ids_out = np.full((len(users), n), -1, dtype=np.int64)
        scores_out = np.zeros((len(users), n), dtype=np.float32)
        for start in range(0, len(users), 2048):
            rows = X[users[start : start + 2048]]
            seen = np.diff(rows.indptr) if filter_seen else np.zeros(rows.shape[0], np.int64)
            head = order[: min(n_items, n + int(seen.max(initial=0)))]
            valid = np.ones((rows.shape[0], len(head)), bool)
            if filter_seen and rows.nnz:
                row_of = np.repeat(np.arange(rows.shape[0], dtype=np.int64), seen)
                seen_keys = np.sort(row_of * n_items + rows.indices)
                keys = np.arange(rows.shape[0], dtype=np.int64)[:, None] * n_items + head
                valid = ~in_sorted(keys, seen_keys)
            ids, top, _ = first_valid(
                np.broadcast_to(head, valid.shape),
                np.broadcast_to(self.counts[head], valid.shape),
                valid,
                n,
            )
            block = slice(start, start + rows.shape[0])
            ids_out[block, : ids.shape[1]] = ids
            scores_out[block, : ids.shape[1]] = top
        return ids_out, scores_out

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        def score(chunk: np.ndarray) -> np.ndarray:
            scores = np.tile(self.counts, (len(chunk), 1))
            scores[np.arange(len(chunk)), chunk] = -np.inf
            return scores

        return block_top_n(items, n, len(self.counts), score)


class _ItemItemModel(_BlockModel):
    """Score = interaction row @ item-item weights (EASE's B or item-kNN's similarity)."""

    weights: Any  # (n_items, n_items), dense ndarray or CSR
    floor = 0.0  # no positive evidence: not a recommendation

    def _scores(self, rows: sparse.csr_matrix) -> np.ndarray:
        product = rows.astype(np.float32) @ self.weights
        scores = product.toarray() if sparse.issparse(product) else np.asarray(product)
        return scores.astype(np.float32, copy=False)

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        def score(chunk: np.ndarray) -> np.ndarray:
            block = self.weights[chunk]
            scores = block.toarray() if sparse.issparse(block) else np.array(block)
            scores = scores.astype(np.float32, copy=False)
            scores[np.arange(len(chunk)), chunk] = -np.inf
            return scores

        return block_top_n(items, n, self.weights.shape[1], score, self.floor)


class EaseModel(_ItemItemModel):
    """EASE: B = I - P / diag(P) with P = (X^T X + lambda I)^-1 and a zero diagonal."""

    kind = "ease"

    def __init__(self, lambda_: float = DEFAULTS["ease"]["lambda_"]) -> None:
        self.params = {"lambda_": float(lambda_)}
        self.weights = np.zeros((0, 0), np.float32)

    def fit(self, X: sparse.csr_matrix) -> None:
        n_items = X.shape[1]
        if n_items > EASE_MAX_ITEMS:
            raise ModelTooLargeError(
                f"EASE needs a dense {n_items} x {n_items} matrix; it is limited to "
                f"{EASE_MAX_ITEMS} items: use 'als' or 'itemknn' for this catalogue"
            )
        gram = (X.T @ X).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.params["lambda_"]
        # The Gram matrix is symmetric positive definite: Cholesky inversion, in place.
        chol, info = lapack.dpotrf(gram, lower=True, overwrite_a=True)
        if info != 0:
            raise np.linalg.LinAlgError(f"EASE Gram matrix is not positive definite ({info})")
        inv, info = lapack.dpotri(chol, lower=True, overwrite_c=True)
        if info != 0:
            raise np.linalg.LinAlgError(f"EASE inversion failed ({info})")
        P = np.tril(inv) + np.tril(inv, -1).T
        B = P / -np.diag(P)
        B[np.diag_indices_from(B)] = 0.0
        self.weights = B.astype(np.float32)


class ItemKNNModel(_ItemItemModel):
    """implicit's item-kNN (BM25-weighted or cosine), scored here in dense user blocks."""

    kind = "itemknn"

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = {**DEFAULTS["itemknn"], **params}
        similarity = self.params["similarity"]
        if similarity == "bm25":
            from implicit.nearest_neighbours import BM25Recommender

            self.model = BM25Recommender(
                K=int(self.params["K"]), K1=float(self.params["K1"]), B=float(self.params["B"])
            )
        elif similarity == "cosine":
            from implicit.nearest_neighbours import CosineRecommender

            self.model = CosineRecommender(K=int(self.params["K"]))
            self.params = {"similarity": "cosine", "K": self.params["K"]}
        else:
            raise ValueError(f"itemknn similarity must be 'bm25' or 'cosine', not {similarity!r}")
        self.weights = sparse.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, X: sparse.csr_matrix) -> None:
        self.model.fit(sparse.csr_matrix(X, dtype=np.float32), show_progress=False)
        self.weights = self.model.similarity.astype(np.float32).tocsr()


class FactorModel:
    """Adapter over implicit's ALS or BPR (CPU unless use_gpu)."""

    def __init__(self, kind: str, params: dict[str, Any], use_gpu: bool = False) -> None:
        self.kind = kind
        self.params = {**DEFAULTS[kind], **params}
        extra = {"random_state": self.params.get("random_state", 42), "use_gpu": use_gpu}
        args = {k: v for k, v in self.params.items() if k != "random_state"}
        if kind == "als":
            from implicit.als import AlternatingLeastSquares

            self.model = AlternatingLeastSquares(**args, **extra)
        else:
            from implicit.bpr import BayesianPersonalizedRanking

            self.model = BayesianPersonalizedRanking(**args, **extra)

    def fit(self, X: sparse.csr_matrix) -> None:
        self.model.fit(sparse.csr_matrix(X, dtype=np.float32), show_progress=False)
        if hasattr(self.model, "to_cpu"):  # a GPU model serves from host memory
            self.model = self.model.to_cpu()

    def recommend(
        self, users: np.ndarray, X: sparse.csr_matrix, n: int, filter_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        users = np.asarray(users, dtype=np.int64)
        ids_out = np.full((len(users), n), -1, dtype=np.int64)
        scores_out = np.zeros((len(users), n), dtype=np.float32)
        m = min(n, X.shape[1])
        if not len(users) or m == 0:
            return ids_out, scores_out
        rows = sparse.csr_matrix(X[users], dtype=np.float32)
        ids, scores = self.model.recommend(users, rows, N=m, filter_already_liked_items=filter_seen)
        ids, scores = np.asarray(ids), np.asarray(scores, dtype=np.float32)
        # implicit fills lists it cannot complete with filtered items scored -FLT_MAX.
        valid = (ids >= 0) & (scores > np.finfo(np.float32).min / 2)
        ids_out[:, :m] = np.where(valid, ids, -1)
        scores_out[:, :m] = np.where(valid, scores, 0.0)
        return ids_out, scores_out

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        factors = self.model.item_factors
        if self.kind == "bpr":
            factors = factors[:, :-1]  # the last column is the item bias, not taste
        # Cosine between item factors, as implicit does; the item itself is masked out.
        norms = np.linalg.norm(factors, axis=1)
        norms[norms == 0] = 1.0
        unit = (factors / norms[:, None]).astype(np.float32)

        def score(chunk: np.ndarray) -> np.ndarray:
            scores = unit[chunk] @ unit.T
            scores[np.arange(len(chunk)), chunk] = -np.inf
            return scores

        return block_top_n(items, n, len(unit), score)

    def user_vector_scores(self, user_items_row: sparse.csr_matrix) -> np.ndarray:
        """Scores over all items for one (possibly new) interaction row, without refitting."""
        return self.users_vector_scores(_as_row(user_items_row))[0]

    def users_vector_scores(self, rows: sparse.csr_matrix) -> np.ndarray:
        """(len(rows), n_items) scores for interaction rows, without refitting."""
        rows = sparse.csr_matrix(rows, dtype=np.float32)
        items = self.model.item_factors
        if self.kind == "als":
            # ALS: each user's exact least-squares solution against the fixed item factors.
            # A real-time batch is small: starting the OpenMP pool costs more than the solves.
            threads, self.model.num_threads = self.model.num_threads, 1
            try:
                users = self.model.recalculate_user(np.arange(rows.shape[0]), rows)
            finally:
                self.model.num_threads = threads
        else:
            # BPR has no closed form: the confidence-weighted mean of each user's item
            # factors, with the bias column set to 1 as in BPR's own user factors.
            totals = np.asarray(rows.sum(axis=1)).ravel()
            users = np.asarray(rows @ items) / np.where(totals > 0, totals, 1.0)[:, None]
            users[:, -1] = np.where(totals > 0, 1.0, 0.0)
        return np.asarray(np.asarray(users) @ items.T, dtype=np.float32)


def build_model(
    kind: str, params: dict[str, Any] | None = None, *, use_gpu: bool = False
) -> Recommender:
    """A fresh, unfitted model of `kind` (see KINDS); missing params take DEFAULTS."""
    params = dict(params or {})
    if kind == "popular":
        return PopularModel()
    if kind == "ease":
        return EaseModel(**params)
    if kind == "itemknn":
        return ItemKNNModel(params)
    if kind in ("als", "bpr"):
        return FactorModel(kind, params, use_gpu=use_gpu)
    raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(KINDS)}")
