"""Step 3c: each user's published list, filtered and explained, built with array operations."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from app.config import Settings
from app.training.candidates import cold_user_lists
from app.training.dataset import TYPE_CODE, Catalog, Interactions
from app.training.models import Recommender

if TYPE_CHECKING:
    from app.training.build import BuildOutput

MIN_ITEMS_FOR_CF = 3  # users with fewer distinct items get cold-start lists
HISTORY = 5  # recent items that may explain a pick
NEIGHBOURS = 20  # of each recent item's similar list
VERB_RANK = {TYPE_CODE["purchase"]: 2, TYPE_CODE["add_to_cart"]: 1}
VERBS = ("viewed", "added to cart", "bought")


def recent_history(inter: Interactions, n_items: int) -> dict[int, list[tuple[int, str]]]:
    """Each user's HISTORY most recent distinct items, newest first, with their strongest verb."""
    if not len(inter):
        return {}
    pair = inter.user.astype(np.int64) * n_items + inter.item
    rank = np.zeros(len(inter), np.int8)
    for code, value in VERB_RANK.items():
        rank[inter.etype == code] = value
    order = np.argsort(pair, kind="stable")
    pairs, starts = np.unique(pair[order], return_index=True)
    last_seen = np.maximum.reduceat(inter.ts[order], starts)
    strongest = np.maximum.reduceat(rank[order], starts)
    users, items = pairs // n_items, pairs % n_items
    newest_first = np.lexsort((-last_seen, users))
    users, items, strongest = users[newest_first], items[newest_first], strongest[newest_first]
    first = np.r_[0, np.flatnonzero(np.diff(users)) + 1]
    position = np.arange(len(users)) - np.repeat(first, np.diff(np.r_[first, len(users)]))
    keep = position < HISTORY
    history: dict[int, list[tuple[int, str]]] = {}
    for user, item, verb in zip(
        users[keep].tolist(), items[keep].tolist(), strongest[keep].tolist(), strict=True
    ):
        history.setdefault(user, []).append((item, VERBS[verb]))
    return history


def user_lists(
    model: Recommender | None,
    matrix: sparse.csr_matrix,
    excluded: sparse.csr_matrix,
    inter: Interactions,
    catalog: Catalog,
    out: BuildOutput,
    settings: Settings,
) -> dict[int, tuple[str, list[list[object]]]]:
    """Top-N per user with a reason per item: CF for warm users, category-popular for cold."""
    n = settings.recommendations_top_n
    n_items = matrix.shape[1]
    items_per_user = np.diff(matrix.indptr)
    warm = np.flatnonzero(items_per_user >= MIN_ITEMS_FOR_CF)
    cold = np.flatnonzero((items_per_user > 0) & (items_per_user < MIN_ITEMS_FOR_CF))
    history = recent_history(inter, n_items)
    lists: dict[int, tuple[str, list[list[object]]]] = {}
    excluded = excluded.tocoo()
    banned_pairs = np.sort(excluded.row.astype(np.int64) * n_items + excluded.col)
    if model is not None and len(warm):
        filter_all = settings.exclude_interacted == "all"
        extra = min(int(np.bincount(excluded.row).max(initial=0)), 50) + 10
        for start in range(0, len(warm), 2048):
            chunk = warm[start : start + 2048]
            ids, scores = model.recommend(chunk, matrix, n + extra, filter_seen=filter_all)
            ids = np.asarray(ids, dtype=np.int64)
            # One vectorised pass: drop padding, bought items and unavailable items.
            keys = chunk[:, None].astype(np.int64) * n_items + np.maximum(ids, 0)
            valid = (ids >= 0) & ~np.isin(keys, banned_pairs)
            valid &= catalog.available[np.maximum(ids, 0)]
            for row, user in enumerate(chunk.tolist()):
                picked_ids = ids[row][valid[row]][:n].tolist()
                picked_scores = np.round(scores[row][valid[row]][:n], 5).tolist()
                lists[user] = (
                    "personalised",
                    explain(picked_ids, picked_scores, history.get(user, []), out, catalog),
                )
    for user, (picked, category) in cold_user_lists(
        inter, cold, catalog, out.popular["30d"], n
    ).items():
        reason = f"popular in {category}" if category else "popular now"
        lists[user] = (
            "cold-start",
            [[catalog.item_ids[i], round(s, 5), reason] for i, s in picked],
        )
    return lists


def explain(
    items: list[int],
    scores: list[float],
    history: list[tuple[int, str]],
    out: BuildOutput,
    catalog: Catalog,
) -> list[list[object]]:
    """'similar to X you bought' when a recent item lists the pick among its neighbours."""
    because: dict[int, str] = {}
    for item, verb in history:
        text = f"similar to {catalog.item_ids[item]} you {verb}"  # built once per source
        for neighbour, _ in out.similar.get(item, [])[:NEIGHBOURS]:
            because.setdefault(neighbour, text)
    interest = _interest_reasons(catalog)
    ids = catalog.item_ids
    # Rows are already in the published form: [item_id, score, reason].
    return [
        [ids[item], score, because.get(item) or interest[item]]
        for item, score in zip(items, scores, strict=True)
    ]


def _interest_reasons(catalog: Catalog) -> list[str]:
    """One shared reason string per item's category (cached on the catalog object)."""
    cached = getattr(catalog, "_interest_reasons", None)
    if cached is None or len(cached) != len(catalog):
        texts = {c: f"matches your interest in {c}" for c in set(catalog.category) if c}
        cached = [
            texts.get(c, "picked for you") if c else "picked for you" for c in catalog.category
        ]
        catalog._interest_reasons = cached  # type: ignore[attr-defined]
    return cached
