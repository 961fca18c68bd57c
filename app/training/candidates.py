"""Step 3b: the non-CF lists: popularity, trending, content similarity, cold-user lists."""

from __future__ import annotations

from collections import Counter

import numpy as np
from scipy import sparse
from sklearn.preprocessing import normalize

from app.training.dataset import Catalog, Interactions

DAY = 86_400.0
POPULAR_WINDOWS = {"1d": 1.0, "7d": 7.0, "30d": 30.0, "all": None}
ALL = "*"


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest positive scores, best first."""
    positive = np.flatnonzero(scores > 0)
    if len(positive) > k:
        positive = positive[np.argpartition(-scores[positive], k - 1)[:k]]
    return positive[np.argsort(-scores[positive], kind="stable")]


def popularity(
    inter: Interactions, weights: np.ndarray, catalog: Catalog, now: float, k: int
) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Top-k items per window and per category ('*' = all), by summed event weight."""
    n_items = len(catalog)
    categories = np.array([c or "" for c in catalog.category], dtype=object)
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for window, days in POPULAR_WINDOWS.items():
        mask = np.ones(len(inter), bool) if days is None else inter.ts >= now - days * DAY
        scores = np.bincount(inter.item[mask], weights=weights[mask], minlength=n_items)
        scores = scores * catalog.available  # unavailable items are never "popular"
        lists = {ALL: [(int(i), float(scores[i])) for i in top_k(scores, k)]}
        for category in {c for c in catalog.category if c}:
            in_cat = np.where(categories == category, scores, 0.0)
            lists[category] = [(int(i), float(in_cat[i])) for i in top_k(in_cat, k)]
        out[window] = lists
    return out


def content_features(catalog: Catalog) -> sparse.csr_matrix:
    """L2-normalised item features: category, brand and tags (category weighs most)."""
    vocab: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for i in range(len(catalog)):
        feats = []
        if catalog.category[i]:
            feats.append((f"c:{catalog.category[i]}", 2.0))
        if catalog.brand[i]:
            feats.append((f"b:{catalog.brand[i]}", 1.5))
        feats.extend((f"t:{t}", 1.0) for t in catalog.tags[i])
        for name, weight in feats:
            rows.append(i)
            cols.append(vocab.setdefault(name, len(vocab)))
            vals.append(weight)
    matrix = sparse.csr_matrix(
        (np.array(vals, np.float32), (rows, cols)), shape=(len(catalog), max(len(vocab), 1))
    )
    return normalize(matrix)


def content_similar(
    catalog: Catalog, items: np.ndarray, k: int, popularity_score: np.ndarray
) -> dict[int, list[tuple[int, float]]]:
    """Content neighbours of `items` (e.g. cold items); popularity breaks ties."""
    features = content_features(catalog)
    # A tiny popularity term orders equally similar items by how well they sell.
    tie_break = 1e-3 * popularity_score / (popularity_score.max() or 1.0)
    out: dict[int, list[tuple[int, float]]] = {}
    for start in range(0, len(items), 256):
        chunk = items[start : start + 256]
        sims = (features[chunk] @ features.T).toarray() + tie_break
        for row, item in enumerate(chunk):
            sims[row, item] = 0.0
            sims[row] *= catalog.available
            out[int(item)] = [(int(j), float(sims[row, j])) for j in top_k(sims[row], k)]
    return out


def cold_user_lists(
    inter: Interactions,
    users: np.ndarray,
    catalog: Catalog,
    popular_by_category: dict[str, list[tuple[int, float]]],
    k: int,
) -> dict[int, tuple[list[tuple[int, float]], str]]:
    """Lists for users with too little history: popular items of the categories they touched."""
    out: dict[int, tuple[list[tuple[int, float]], str]] = {}
    by_user = _events_by_user(inter, users)
    for user in users:
        touched: Counter[str] = Counter(
            str(catalog.category[i]) for i in by_user.get(int(user), []) if catalog.category[i]
        )
        picked: list[tuple[int, float]] = []
        seen: set[int] = set()
        total = sum(touched.values()) or 1
        for category, count in touched.most_common(3):
            share = max(1, round(k * count / total))
            for item, score in popular_by_category.get(category, [])[:share]:
                if item not in seen:
                    seen.add(item)
                    picked.append((item, score * count / total))
        label = touched.most_common(1)[0][0] if touched else None
        out[int(user)] = (picked, label or "")
    return out


def _events_by_user(inter: Interactions, users: np.ndarray) -> dict[int, list[int]]:
    wanted = np.isin(inter.user, users)
    grouped: dict[int, list[int]] = {}
    for user, item in zip(inter.user[wanted].tolist(), inter.item[wanted].tolist(), strict=True):
        grouped.setdefault(user, []).append(item)
    return grouped
