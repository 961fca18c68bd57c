"""Step 3c: each user's published list, filtered and explained, built with array operations."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from app.config import Settings
from app.training.candidates import cold_user_lists
from app.training.dataset import TYPE_CODE, Catalog, Interactions
from app.training.evaluate import in_sorted
from app.training.models import Recommender
from app.training.topn import first_valid

if TYPE_CHECKING:
    from app.training.build import BuildOutput

MIN_ITEMS_FOR_CF = 3  # users with fewer distinct items get cold-start lists
HISTORY = 5  # recent items that may explain a pick
NEIGHBOURS = 20  # of each recent item's similar list
VERB_RANK = {TYPE_CODE["purchase"]: 2, TYPE_CODE["add_to_cart"]: 1}
VERBS = ("viewed", "added to cart", "bought")


@dataclass
class History:
    """Each user's HISTORY most recent distinct items, newest first (-1 pads), with the code
    of their strongest verb (an index into VERBS)."""

    items: np.ndarray  # (n_users, HISTORY) int64
    verbs: np.ndarray  # (n_users, HISTORY) int8


def recent_history(inter: Interactions, n_items: int, n_users: int) -> History:
    """Each user's recent distinct items and strongest verbs, computed with array operations."""
    history = History(
        np.full((n_users, HISTORY), -1, np.int64), np.zeros((n_users, HISTORY), np.int8)
    )
    if not len(inter):
        return history
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
    history.items[users[keep], position[keep]] = items[keep]
    history.verbs[users[keep], position[keep]] = strongest[keep]
    return history


def user_lists(
    model: Recommender | None,
    matrix: sparse.csr_matrix,
    excluded: sparse.csr_matrix,
    inter: Interactions,
    catalog: Catalog,
    out: BuildOutput,
    settings: Settings,
) -> dict[int, tuple[str, Sequence[Sequence[object]]]]:
    """Top-N per user with a reason per item: CF for warm users, category-popular for cold."""
    n = settings.recommendations_top_n
    n_items = matrix.shape[1]
    items_per_user = np.diff(matrix.indptr)
    warm = np.flatnonzero(items_per_user >= MIN_ITEMS_FOR_CF)
    cold = np.flatnonzero((items_per_user > 0) & (items_per_user < MIN_ITEMS_FOR_CF))
    lists: dict[int, tuple[str, Sequence[Sequence[object]]]] = {}
    excluded = excluded.tocsr()
    if model is not None and len(warm):
        explainer = BatchExplainer(recent_history(inter, n_items, matrix.shape[0]), out, catalog)
        filter_all = settings.exclude_interacted == "all"
        extra = min(int(np.diff(excluded.indptr).max(initial=0)), 50) + 10
        for start in range(0, len(warm), 2048):
            chunk = warm[start : start + 2048]
            ids, scores = model.recommend(chunk, matrix, n + extra, filter_seen=filter_all)
            ids = np.asarray(ids, dtype=np.int64)
            known = np.maximum(ids, 0)
            # One vectorised pass: drop padding, bought items and unavailable items (the
            # chunk's excluded rows as a dense mask: a gather, not a search).
            banned = dense_mask(excluded[chunk])
            valid = (ids >= 0) & ~np.take_along_axis(banned, known, axis=1)
            valid &= catalog.available[known]
            picks, picked_scores, counts = first_valid(ids, np.asarray(scores), valid, n)
            rows = explainer.rows(chunk, picks, picked_scores, counts)
            for user, items in zip(chunk.tolist(), rows, strict=True):
                lists[user] = ("personalised", items)
    for user, (picked, category) in cold_user_lists(
        inter, cold, catalog, out.popular["30d"], n
    ).items():
        reason = f"popular in {category}" if category else "popular now"
        lists[user] = (
            "cold-start",
            [[catalog.item_ids[i], round(s, 5), reason] for i, s in picked],
        )
    return lists


def dense_mask(rows: sparse.csr_matrix) -> np.ndarray:
    """A CSR block's stored entries as a dense boolean array (toarray() would go via float64)."""
    mask = np.zeros(rows.shape, bool)
    mask[np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr)), rows.indices] = True
    return mask


class PairSet:
    """(item, neighbour) pairs with vectorised membership: a dense bitmap while the catalogue
    is small enough (a gather), sorted int64 keys beyond (a binary search, ~4x slower)."""

    DENSE_MAX = 64 * 1024 * 1024  # cells: a 64 MiB bitmap, catalogues up to 8,192 items

    def __init__(self, items: np.ndarray, neighbours: np.ndarray, n_items: int) -> None:
        self.n_items = n_items
        self.table: np.ndarray | None = None
        self.keys = np.empty(0, np.int64)
        if n_items * n_items <= self.DENSE_MAX:
            self.table = np.zeros((n_items, n_items), bool)
            self.table[items, neighbours] = True
        else:
            self.keys = np.unique(items * n_items + neighbours)

    def contains(self, items: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
        """Elementwise (broadcasting) membership; both arrays hold valid item codes."""
        if self.table is not None:
            return self.table[items, neighbours]
        return in_sorted(items * self.n_items + neighbours, self.keys)


class BatchExplainer:
    """explain() for a block of users at once: the same reasons, built with array operations
    (the per-item Python loop cost more than the whole model at a million events)."""

    def __init__(self, history: History, out: BuildOutput, catalog: Catalog) -> None:
        self.history = history
        self.n_items = len(catalog)
        sources, neighbours = [], []
        for item, similar in out.similar.items():
            for neighbour, _ in similar[:NEIGHBOURS]:
                sources.append(item)
                neighbours.append(neighbour)
        self.pairs = PairSet(
            np.asarray(sources, np.int64), np.asarray(neighbours, np.int64), self.n_items
        )
        self.item_ids = np.asarray([*catalog.item_ids, ""], dtype=object)  # -1 -> ""
        self.interest = np.asarray([*_interest_reasons(catalog), ""], dtype=object)

    def rows(
        self, users: np.ndarray, picks: np.ndarray, scores: np.ndarray, counts: np.ndarray
    ) -> list[list[tuple[object, ...]]]:
        """Published rows [item_id, score, reason] per user; picks -1-padded after counts."""
        reasons = self.interest[picks]
        unresolved = picks >= 0
        for j in range(HISTORY):
            source = self.history.items[users, j]
            hit = unresolved & (source >= 0)[:, None]
            hit &= self.pairs.contains(np.maximum(source, 0)[:, None], np.maximum(picks, 0))
            if not hit.any():
                continue
            row, col = np.nonzero(hit)
            code = source[row] * len(VERBS) + self.history.verbs[users[row], j]
            unique, inverse = np.unique(code, return_inverse=True)
            texts = np.asarray(
                [
                    f"similar to {self.item_ids[c // len(VERBS)]} you {VERBS[c % len(VERBS)]}"
                    for c in unique.tolist()
                ],
                dtype=object,
            )
            reasons[row, col] = texts[inverse]
            unresolved &= ~hit
        ids = self.item_ids[picks].tolist()
        rounded = np.round(scores.astype(np.float64), 5).tolist()
        reason_lists = reasons.tolist()
        # Tuples straight from zip (no list per row): orjson writes them as JSON arrays.
        return [
            list(zip(ids[r][:k], rounded[r][:k], reason_lists[r][:k], strict=True))
            for r, k in enumerate(counts.tolist())
        ]


def explain(
    items: list[int],
    scores: list[float],
    history: list[tuple[int, str]],
    out: BuildOutput,
    catalog: Catalog,
) -> list[tuple[str, float, str]]:
    """'similar to X you bought' when a recent item lists the pick among its neighbours."""
    because: dict[int, str] = {}
    # Oldest first, so a neighbour of several recent items gets the most recent one's text.
    for item, verb in reversed(history):
        text = f"similar to {catalog.item_ids[item]} you {verb}"  # built once per source
        because.update(dict.fromkeys(_neighbour_codes(out, item), text))
    if not items:
        return []
    pick = itemgetter(*items) if len(items) > 1 else lambda seq: (seq[items[0]],)
    # Rows in the published form, [item_id, score, reason] (orjson writes tuples as arrays);
    # map and itemgetter keep the per-item work in C: real time explains every update.
    reasons: Iterator[str] = map(because.get, items, pick(_interest_reasons(catalog)))
    return list(zip(pick(catalog.item_ids), scores, reasons, strict=True))


def _neighbour_codes(out: BuildOutput, item: int) -> list[int]:
    """The first NEIGHBOURS similar items of `item` (memoised on the build output)."""
    codes = out.neighbour_codes.get(item)
    if codes is None:
        codes = out.neighbour_codes[item] = [n for n, _ in out.similar.get(item, [])[:NEIGHBOURS]]
    return codes


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
