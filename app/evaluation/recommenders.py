"""Temporal holdout evaluation of every recommender family, as the worker's own code does it.

Same steps as a rebuild (app/training/build.py): clean, weight and decay the events, train on
everything before the last HOLDOUT_DAYS, test on the items each user touched afterwards that
were new to them, metrics from app/training/evaluate.py. Each family is fitted with its
default parameters on the training window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from app.config import Settings
from app.training.build import AUTO_EASE_MAX_ITEMS, MIN_TEST_USERS, holdout_split
from app.training.build import preprocess_config as make_preprocess_config
from app.training.dataset import Catalog, Interactions
from app.training.evaluate import Split, per_user_metrics, ranking_metrics
from app.training.models import DEFAULTS, build_model
from app.training.preprocess import clean, event_weights

DAY = 86_400.0
K = 10
CURVE_K = 20
FAMILIES = (
    ("popular", "Popularity (baseline)"),
    ("itemknn", "Item-kNN (BM25)"),
    ("als", "ALS (implicit)"),
    ("bpr", "BPR (implicit)"),
    ("ease", "EASE"),
)
Step = Callable[[str], None]


def families(n_items: int) -> list[tuple[str, str]]:
    """Families evaluated on this catalogue (EASE's dense Gram matrix only where it is cheap)."""
    return [(k, label) for k, label in FAMILIES if k != "ease" or n_items <= AUTO_EASE_MAX_ITEMS]


def prepare(
    catalog: Catalog, inter: Interactions, settings: Settings, now: float | None = None
) -> tuple[Split | None, dict[str, Any]]:
    """The holdout split and a description of the data; no split when there is no data."""
    cfg = make_preprocess_config(settings)
    inter, stats = clean(inter, catalog, cfg)
    info: dict[str, Any] = {
        "events": len(inter),
        "users": inter.n_users,
        "items": len(catalog),
        "duplicates_dropped": stats.duplicates_dropped,
        "bot_events_dropped": stats.bot_events_dropped,
        "holdout_days": settings.holdout_days,
    }
    if not len(inter):
        return None, info
    now = now or float(inter.ts.max())
    weights = event_weights(inter, cfg, now)
    shape = (inter.n_users, len(catalog))
    cutoff = float(inter.ts.max()) - settings.holdout_days * DAY
    split = holdout_split(inter, weights, shape, cutoff)
    info.update(
        {
            "data_start": float(inter.ts.min()),
            "data_end": float(inter.ts.max()),
            "cutoff": cutoff,
            "train_interactions": int(split.train.nnz),
            "holdout_users": int((np.diff(split.test.indptr) > 0).sum()),
            "holdout_pairs": int(split.test.nnz),
        }
    )
    return split, info


def recall_curve(model: Any, split: Split, k: int = CURVE_K) -> list[float]:
    """recall@1..k (hits in the top j / min(j, |T|), averaged over holdout users)."""
    per = per_user_metrics(model, split, k)
    users, ids = per["users"], per["ids"]
    if not len(users):
        return [0.0] * k
    sub = split.test.tocsr()[users]
    rows = np.arange(len(users))
    hits = np.zeros(ids.shape, dtype=bool)
    for j in range(ids.shape[1]):
        col = ids[:, j]
        found = np.asarray(sub[rows, np.clip(col, 0, None)]).ravel() > 0
        hits[:, j] = found & (col >= 0)
    sizes = np.diff(sub.indptr)
    cumulative = np.cumsum(hits, axis=1)
    return [float((cumulative[:, j - 1] / np.minimum(j, sizes)).mean()) for j in range(1, k + 1)]


def evaluate_recommenders(
    catalog: Catalog, inter: Interactions, settings: Settings, step: Step | None = None
) -> dict[str, Any]:
    """Metrics per family on the temporal holdout, or the reason there are none."""
    split, info = prepare(catalog, inter, settings)
    out: dict[str, Any] = {"data": info, "models": [], "note": None}
    kinds = families(len(catalog))
    if split is None or info["holdout_users"] < MIN_TEST_USERS:
        out["note"] = (
            f"not enough data: {info.get('holdout_users', 0)} users have held-out items in the "
            f"last {settings.holdout_days:g} days (at least {MIN_TEST_USERS} are needed)"
        )
        for _ in kinds:
            if step:
                step("recommenders: skipped")
        return out
    for kind, label in kinds:
        if step:
            step(f"fitting {label}")
        started = time.perf_counter()
        model = build_model(kind, DEFAULTS.get(kind, {}), use_gpu=settings.use_gpu)
        model.fit(split.train)
        fit_seconds = time.perf_counter() - started
        metrics = ranking_metrics(model, split, k=K)
        out["models"].append(
            {
                "kind": kind,
                "label": label,
                "params": model.params,
                "metrics": metrics,
                "recall_curve": recall_curve(model, split),
                "fit_seconds": round(fit_seconds, 3),
            }
        )
    baseline = next(m for m in out["models"] if m["kind"] == "popular")["metrics"][f"ndcg@{K}"]
    for m in out["models"]:
        value = m["metrics"][f"ndcg@{K}"]
        m["ndcg_vs_popular"] = round(value / baseline, 3) if baseline > 0 else None
    best = max(out["models"], key=lambda m: m["metrics"][f"ndcg@{K}"])
    out["best"] = best["kind"]
    return out
