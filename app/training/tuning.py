"""Hyper-parameter search and model selection on a temporal split.

`tune` does coordinate descent over a small grid: it starts from the kind's defaults (snapped
to the grid), tries every value of one parameter at a time while holding the others at the
best point so far, and repeats passes until a pass improves nothing or the time budget is
spent. Far fewer fits than the full grid, and on these grids it reaches the same optimum in
practice. Tune on a validation split carved from the training window, not on the window used
to report figures, or the figures are optimistic.
"""

from __future__ import annotations

import time
from typing import Any

from app.training.evaluate import Split, ranking_metrics
from app.training.models import DEFAULTS, EASE_MAX_ITEMS, build_model

DEFAULT_GRIDS: dict[str, dict[str, list[Any]]] = {
    "als": {
        "factors": [16, 32, 64, 128],
        "regularization": [0.01, 0.1, 1.0, 5.0, 10.0, 20.0, 50.0],
        "alpha": [0.5, 1.0, 2.0, 5.0, 10.0],
    },
    "bpr": {
        "factors": [32, 64, 128],
        "learning_rate": [0.005, 0.01, 0.05],
        "regularization": [0.001, 0.01, 0.1],
    },
    "itemknn": {
        "similarity": ["bm25", "cosine"],
        "K": [20, 50, 100, 200],
        "K1": [0.6, 1.2, 2.0],
        "B": [0.25, 0.5, 0.75, 1.0],
    },
    "ease": {"lambda_": [50.0, 100.0, 200.0, 300.0, 500.0, 1000.0, 2000.0]},
    "popular": {},
}


def _snap(value: Any, choices: list[Any]) -> Any:
    """The grid value equal to `value`, else the nearest numeric one, else the first."""
    if value in choices:
        return value
    numeric = [c for c in choices if isinstance(c, int | float) and not isinstance(c, bool)]
    if isinstance(value, int | float) and numeric:
        return min(numeric, key=lambda c: abs(c - value))
    return choices[0]


def _trial(model: Any, split: Split, k: int) -> dict[str, Any]:
    """Fit on split.train, score on split.test."""
    started = time.perf_counter()
    model.fit(split.train)
    fit_seconds = time.perf_counter() - started
    metrics: dict[str, Any] = dict(ranking_metrics(model, split, k=k))
    metrics["fit_seconds"] = round(fit_seconds, 3)
    return metrics


def tune(
    kind: str,
    split: Split,
    grid: dict[str, list[Any]] | None = None,
    budget_seconds: float = 60,
    *,
    k: int = 10,
    use_gpu: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Best params within `grid` (default: DEFAULT_GRIDS[kind]) by ndcg@k on `split`, and their
    metrics (plus fit_seconds and trials). The first trial always runs, whatever the budget."""
    grid = {key: list(values) for key, values in (grid or DEFAULT_GRIDS[kind]).items() if values}
    target = f"ndcg@{k}"
    started = time.perf_counter()
    current = {key: _snap(DEFAULTS[kind].get(key), values) for key, values in grid.items()}
    tried: set[str] = set()
    best: tuple[dict[str, Any], dict[str, Any]] | None = None
    slowest = 0.0

    def run(point: dict[str, Any]) -> bool:
        """Evaluate `point` unless done before or out of time; True when it is the new best."""
        nonlocal best, slowest
        model = build_model(kind, point, use_gpu=use_gpu)
        # Keyed by the model's own params: e.g. cosine item-kNN ignores BM25's K1 and B.
        key = repr(sorted(model.params.items()))
        if key in tried:
            return False
        if tried and time.perf_counter() - started + slowest > budget_seconds:
            raise TimeoutError
        tried.add(key)
        tick = time.perf_counter()
        metrics = _trial(model, split, k)
        slowest = max(slowest, time.perf_counter() - tick)
        if best is None or metrics[target] > best[1][target] + 1e-12:
            best = (dict(model.params), metrics)
            return True
        return False

    try:
        run(current)
        improved = True
        while improved:
            improved = False
            for name, values in grid.items():
                for value in values:
                    point = {**current, name: value}
                    if run(point):
                        current, improved = point, True
    except TimeoutError:
        pass  # budget spent: keep the best point found so far
    assert best is not None
    params, metrics = best
    return params, {**metrics, "trials": len(tried)}


def select_model(
    split: Split,
    kinds: tuple[str, ...] = ("als", "itemknn", "ease"),
    budget_seconds: float = 180,
    *,
    k: int = 10,
    use_gpu: bool = False,
) -> list[dict[str, Any]]:
    """Tune each kind within a share of the budget; results best-first by ndcg@k:
    [{kind, params, metrics, fit_seconds}]. EASE is skipped above EASE_MAX_ITEMS items."""
    eligible = [kind for kind in kinds if kind != "ease" or split.train.shape[1] <= EASE_MAX_ITEMS]
    started = time.perf_counter()
    results = []
    for position, kind in enumerate(eligible):
        left = budget_seconds - (time.perf_counter() - started)
        share = max(left, 0.0) / (len(eligible) - position)  # unspent time rolls over
        params, metrics = tune(kind, split, budget_seconds=share, k=k, use_gpu=use_gpu)
        results.append(
            {
                "kind": kind,
                "params": params,
                "metrics": metrics,
                "fit_seconds": metrics["fit_seconds"],
            }
        )
    results.sort(key=lambda r: -r["metrics"][f"ndcg@{k}"])
    return results
