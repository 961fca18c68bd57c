"""Steps 2-4 in one CPU-bound function: preprocess, evaluate candidates, train, make lists.

Runs in a worker thread; it touches neither the database nor the cache, so it is easy to test
and to benchmark on its own.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from app.config import Settings
from app.training.candidates import ALL, content_similar, popularity, top_k
from app.training.dataset import TYPE_CODE, Catalog, Interactions
from app.training.evaluate import Split, holdout_users, ranking_metrics, stable_sample
from app.training.lists import user_lists
from app.training.models import DEFAULTS, Recommender, build_model
from app.training.preprocess import (
    CleanStats,
    PreprocessConfig,
    clean,
    confidence_matrix,
    event_weights,
    interacted_matrix,
)
from app.training.topn import first_valid

DAY = 86_400.0
MIN_TEST_USERS = 10  # smaller holdouts are not a basis for choosing or rejecting a model
DEFAULT_PARAMS = DEFAULTS  # per-kind defaults live with the models
AUTO_CANDIDATES = ("als", "itemknn", "ease")
# Auto mode tries EASE only on catalogues where its dense inverse stays a few seconds; the
# model itself accepts up to models.EASE_MAX_ITEMS when configured explicitly.
AUTO_EASE_MAX_ITEMS = 8000


@dataclass
class BuildOutput:
    kind: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    stats: CleanStats
    model: Recommender | None
    # code-level results; publish.py turns them into payloads
    # user code -> (strategy, [[item_id, score, reason], ...]) ready to publish
    # Rows [item_id, score, reason] (lists or tuples: they are only ever serialised).
    user_lists: dict[int, tuple[str, Sequence[Sequence[Any]]]] = field(default_factory=dict)
    similar: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    # explain()'s memo of the first similar codes per item (real time explains every update)
    neighbour_codes: dict[int, list[int]] = field(default_factory=dict)
    popular: dict[str, dict[str, list[tuple[int, float]]]] = field(default_factory=dict)
    purchased: dict[int, list[int]] = field(default_factory=dict)
    data_start: float | None = None
    data_end: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # The holdout split and the chosen kind fitted on its train part (for promotion boosts,
    # app/training/promotions.py); the pipeline drops it once used.
    holdout: tuple[Split, Recommender] | None = None


def preprocess_config(settings: Settings) -> PreprocessConfig:
    return PreprocessConfig(
        event_weights=settings.event_weights, half_life_days=settings.decay_half_life_days
    )


def _candidate_kinds(settings: Settings, n_items: int, incumbent: str | None) -> list[str]:
    """What to evaluate: the configured kind, or in auto mode every candidate unless a recent
    selection already picked one (re-selecting on every rebuild would triple its cost)."""
    if settings.model_kind != "auto":
        return [settings.model_kind]
    if incumbent:
        return [incumbent]
    return [k for k in AUTO_CANDIDATES if k != "ease" or n_items <= AUTO_EASE_MAX_ITEMS]


def _params(kind: str, tuned: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    return dict((tuned or {}).get(kind) or DEFAULT_PARAMS.get(kind, {}))


def evaluate_candidates(
    split: Split,
    kinds: list[str],
    tuned: dict[str, dict[str, Any]] | None,
    use_gpu: bool,
    fitted: dict[str, Recommender] | None = None,
    users: np.ndarray | None = None,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Fit each candidate on the train window, score it on the holdout (`users` of it when
    given); plus the baseline (the best fitted candidate goes into `fitted` by kind)."""
    baseline = build_model("popular")
    baseline.fit(split.train)
    results: list[dict[str, Any]] = []
    for kind in kinds:
        started = time.perf_counter()
        model = build_model(kind, _params(kind, tuned), use_gpu=use_gpu)
        model.fit(split.train)
        metrics = ranking_metrics(model, split, k=10, users=users)
        metrics["fit_seconds"] = round(time.perf_counter() - started, 3)
        # Only the best so far is kept: several fitted candidates at once would multiply the
        # peak memory (EASE alone is a dense items x items matrix).
        if fitted is not None and (
            not results or metrics["ndcg@10"] > max(r["metrics"]["ndcg@10"] for r in results)
        ):
            fitted.clear()
            fitted[kind] = model
        results.append({"kind": kind, "params": model.params, "metrics": metrics})
    results.sort(key=lambda r: -float(r["metrics"]["ndcg@10"]))
    return results, ranking_metrics(baseline, split, k=10, users=users)


def build(
    catalog: Catalog,
    inter: Interactions,
    settings: Settings,
    *,
    now: float | None = None,
    tuned: dict[str, dict[str, Any]] | None = None,
    incumbent: str | None = None,
) -> BuildOutput:
    """Everything between loading and publishing."""
    timings: dict[str, float] = {}
    tick = time.perf_counter()
    # Decay and popularity windows count back from the newest event, not the wall clock:
    # relative weights are what matter, and old data sets must not underflow to zero.
    now = now or (float(inter.ts.max()) if len(inter) else time.time())
    cfg = preprocess_config(settings)
    inter, stats = clean(inter, catalog, cfg)
    weights = event_weights(inter, cfg, now)
    shape = (inter.n_users, len(catalog))
    matrix = confidence_matrix(inter.user, inter.item, weights, shape)
    timings["preprocess"] = time.perf_counter() - tick

    tick = time.perf_counter()
    kinds = _candidate_kinds(settings, len(catalog), incumbent)
    metrics: dict[str, Any] = {"events": len(inter), "users": shape[0], "items": shape[1]}
    kind, params = kinds[0], _params(kinds[0], tuned)
    holdout: tuple[Split, Recommender] | None = None
    if len(inter):
        cutoff = float(inter.ts.max()) - settings.holdout_days * DAY
        split = holdout_split(inter, weights, shape, cutoff)
        test_users = holdout_users(split)
        metrics["holdout_users"] = len(test_users)
        if len(test_users) >= MIN_TEST_USERS:
            fitted: dict[str, Recommender] = {}
            scored = stable_sample(test_users, inter.user_ids, settings.eval_max_users)
            candidates, baseline = evaluate_candidates(
                split, kinds, tuned, settings.use_gpu, fitted, scored
            )
            best = candidates[0]
            kind, params = best["kind"], best["params"]
            holdout = (split, fitted[kind])
            metrics.update({k: v for k, v in best["metrics"].items()})
            metrics["baseline_popular"] = baseline
            metrics["candidates"] = candidates
    timings["evaluate"] = time.perf_counter() - tick

    tick = time.perf_counter()
    model: Recommender | None = None
    if matrix.nnz:
        model = build_model(kind, params, use_gpu=settings.use_gpu)
        model.fit(matrix)
    timings["fit"] = time.perf_counter() - tick

    tick = time.perf_counter()
    out = BuildOutput(kind=kind, params=params, metrics=metrics, stats=stats, model=model)
    out.holdout = holdout
    out.popular = popularity(inter, weights, catalog, now, k=200)
    item_popularity = np.bincount(inter.item, weights=weights, minlength=len(catalog))
    out.similar = _similar_lists(model, matrix, catalog, item_popularity, settings.similar_top_n)
    only_purchases = settings.exclude_interacted != "all"
    excluded = interacted_matrix(inter, shape, only_purchases=only_purchases)
    out.purchased = never_again_by_recency(inter, only_purchases)
    out.user_lists = user_lists(model, matrix, excluded, inter, catalog, out, settings)
    timings["lists"] = time.perf_counter() - tick
    if len(inter):
        out.data_start, out.data_end = float(inter.ts.min()), float(inter.ts.max())
    out.timings = {k: round(v, 3) for k, v in timings.items()}
    return out


def never_again_by_recency(inter: Interactions, only_purchases: bool) -> dict[int, list[int]]:
    """Items each user must not see again, oldest first (serving reads the newest from the end)."""
    mask = inter.etype == TYPE_CODE["purchase"] if only_purchases else np.ones(len(inter), bool)
    order = np.argsort(inter.ts[mask], kind="stable")
    out: dict[int, dict[int, None]] = {}
    for user, item in zip(
        inter.user[mask][order].tolist(), inter.item[mask][order].tolist(), strict=True
    ):
        items = out.setdefault(user, {})
        items.pop(item, None)  # a repeat purchase moves the item to the newest end
        items[item] = None
    return {user: list(items) for user, items in out.items()}


def holdout_split(
    inter: Interactions, weights: np.ndarray, shape: tuple[int, int], cutoff: float
) -> Split:
    """Train on events before `cutoff`; test = new items users touched after it."""
    before = inter.ts < cutoff
    train = confidence_matrix(inter.user[before], inter.item[before], weights[before], shape)
    after = ~before
    test = sparse.csr_matrix(
        (np.ones(int(after.sum()), np.float32), (inter.user[after], inter.item[after])),
        shape=shape,
    )
    test.data[:] = 1.0
    test = test - test.multiply(train > 0)  # only items new to the user
    test.eliminate_zeros()
    in_train = np.diff(train.indptr) > 0
    test = sparse.diags(in_train.astype(np.float32)) @ test  # only users seen in train
    test.eliminate_zeros()
    return Split(train=train.tocsr(), test=test.tocsr())


def _similar_lists(
    model: Recommender | None,
    matrix: sparse.csr_matrix,
    catalog: Catalog,
    item_popularity: np.ndarray,
    k: int,
) -> dict[int, list[tuple[int, float]]]:
    """CF neighbours for items with enough users; content neighbours for the rest."""
    users_per_item = np.diff(matrix.tocsc().indptr)
    warm = np.flatnonzero(users_per_item >= 2)
    out: dict[int, list[tuple[int, float]]] = {}
    if model is not None and len(warm):
        for start in range(0, len(warm), 2048):
            chunk = warm[start : start + 2048]
            ids, scores = model.similar_items(chunk, k + 1)
            ids = np.asarray(ids, dtype=np.int64)
            scores = np.asarray(scores)
            valid = (ids >= 0) & (ids != chunk[:, None]) & (scores > 0)
            valid &= catalog.available[np.maximum(ids, 0)]
            kept, kept_scores, counts = first_valid(ids, scores, valid, k)
            kept_ids = kept.tolist()
            kept_sc = kept_scores.astype(np.float64).tolist()
            for row, (item, n) in enumerate(zip(chunk.tolist(), counts.tolist(), strict=True)):
                out[item] = list(zip(kept_ids[row][:n], kept_sc[row][:n], strict=True))
    cold = np.array([i for i in range(len(catalog)) if not out.get(i)], dtype=np.int64)
    if len(cold):
        out.update(content_similar(catalog, cold, k, item_popularity))
    return out


__all__ = ["ALL", "BuildOutput", "build", "holdout_split", "top_k"]
