"""Spend regression and churn classifier on profile features, with a time split and CV.

Training rows are users with events before a cutoff; features come from before it, labels
from the window after it (spend in the next `spend_horizon_days`; churn = no item event in
the next `churn_window_days`). Each candidate is scored by K-fold cross-validation on those
rows against a mean (or base-rate) predictor. Linear/logistic regression is the baseline; a
challenger (ridge, gradient-boosted trees) is used only when CV says it is clearly better
(R^2 higher by CHALLENGER_MARGIN, or log loss lower by it). The linear model is always
fitted and reported by feature name, so GET /v1/models/{version} can show its coefficients.
Cross-validating every candidate costs more than the rest of the profile stage, so the worker
keeps each target's choice (selection()) and later rebuilds refit that kind alone until
RESELECT_HOURS have passed, as the recommender's auto-selection does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression, RidgeCV
from sklearn.metrics import (
    brier_score_loss,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

MIN_ROWS = 30  # fewer training users: no model, a documented fallback instead
MIN_CLASS = 5  # each churn class needs this many users for stratified CV
MAX_CV_ROWS = 10_000  # CV on a sample of this size; the final fit uses every row
CHALLENGER_MARGIN = 0.005


def _round(value: float) -> float | None:
    return round(float(value), 6) if np.isfinite(value) else None


@dataclass
class FittedModel:
    """One prediction target: the chosen estimator plus the linear model for explanations."""

    target: str
    kind: str
    names: list[str]
    estimator: Any | None = None
    linear: Pipeline | None = None
    classifier: bool = False
    constant: float = 0.0  # the fallback prediction when there is no estimator
    metrics: dict[str, Any] = field(default_factory=dict)

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.estimator is None:
            return np.full(len(X), self.constant)
        if self.classifier:
            return np.asarray(self.estimator.predict_proba(X)[:, 1], dtype=np.float64)
        return np.clip(np.asarray(self.estimator.predict(X), dtype=np.float64), 0.0, None)

    def contributions(self, X: np.ndarray) -> np.ndarray | None:
        """Per-feature push of the linear model away from the average user (target units for
        regression, log-odds for classification)."""
        if self.linear is None:
            return None
        scaler, model = self.linear[0], self.linear[-1]
        coef = np.ravel(model.coef_)
        return np.asarray(scaler.transform(X) * coef)

    def describe(self) -> dict[str, Any]:
        """Kind, metrics and the linear model's coefficients by feature name."""
        out: dict[str, Any] = {"target": self.target, "kind": self.kind, **self.metrics}
        if self.linear is not None:
            scaler, model = self.linear[0], self.linear[-1]
            std = np.ravel(model.coef_)
            raw = std / scaler.scale_
            intercept = float(np.ravel(model.intercept_)[0]) - float(raw @ scaler.mean_)
            out["linear"] = {
                "model": type(model).__name__,
                "intercept": _round(intercept),
                "coefficients": {n: _round(c) for n, c in zip(self.names, raw, strict=True)},
                # Per standard deviation of the feature: comparable across features.
                "standardized_coefficients": {
                    n: _round(c) for n, c in zip(self.names, std, strict=True)
                },
            }
        return out


def _folds(n: int, y: np.ndarray | None, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    splits = max(2, min(5, n // 10))
    if y is not None:
        splits = max(2, min(splits, int(np.bincount(y.astype(int)).min())))
        return list(StratifiedKFold(splits, shuffle=True, random_state=seed).split(np.zeros(n), y))
    return list(KFold(splits, shuffle=True, random_state=seed).split(np.zeros(n)))


def _sample(n: int, seed: int) -> np.ndarray:
    if n <= MAX_CV_ROWS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, MAX_CV_ROWS, replace=False))


def _regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {
        "mse": float(mean_squared_error(y, pred)),
        "mae": float(mean_absolute_error(y, pred)),
        "r2": float(r2_score(y, pred)) if np.var(y) > 0 else 0.0,
    }


def _classification_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return {
        "roc_auc": float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else 0.5,
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
    }


def _cross_validate(
    make: Any, X: np.ndarray, y: np.ndarray, folds: list[Any], classifier: bool
) -> dict[str, Any]:
    """Mean and spread of each metric over the folds."""
    per_fold: list[dict[str, float]] = []
    for train, test in folds:
        model = make()
        if classifier:
            model.fit(X[train], y[train])
            per_fold.append(_classification_metrics(y[test], model.predict_proba(X[test])[:, 1]))
        else:
            model.fit(X[train], y[train])
            per_fold.append(_regression_metrics(y[test], np.clip(model.predict(X[test]), 0, None)))
    out: dict[str, Any] = {}
    for name in per_fold[0]:
        values = np.array([f[name] for f in per_fold])
        out[name] = _round(values.mean())
        out[f"{name}_std"] = _round(values.std())
    return out


def _mean_baseline(y: np.ndarray, folds: list[Any], classifier: bool) -> dict[str, Any]:
    per_fold = []
    for train, test in folds:
        pred = np.full(len(test), y[train].mean())
        per_fold.append(
            _classification_metrics(y[test], pred)
            if classifier
            else _regression_metrics(y[test], pred)
        )
    return {name: _round(float(np.mean([f[name] for f in per_fold]))) for name in per_fold[0]}


SPEND_CANDIDATES: dict[str, Any] = {
    "linear_regression": lambda: make_pipeline(StandardScaler(), LinearRegression()),
    "ridge": lambda: make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 11))),
    "hist_gradient_boosting": lambda: HistGradientBoostingRegressor(
        max_iter=40, learning_rate=0.15, max_leaf_nodes=8, random_state=0
    ),
}
CHURN_CANDIDATES: dict[str, Any] = {
    "logistic_regression": lambda: make_pipeline(
        StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)
    ),
    "hist_gradient_boosting": lambda: HistGradientBoostingClassifier(
        max_iter=40, learning_rate=0.15, max_leaf_nodes=8, random_state=0
    ),
}


def _fit(
    target: str,
    X: np.ndarray,
    y: np.ndarray,
    names: list[str],
    classifier: bool,
    seed: int,
    previous: dict[str, Any] | None,
) -> FittedModel:
    # One OpenMP thread: the boosted trees' thread pool spins against the other work on a
    # small machine and runs several times slower than on one core (measured).
    with threadpool_limits(limits=1, user_api="openmp"):
        candidates = CHURN_CANDIDATES if classifier else SPEND_CANDIDATES
        if previous and previous.get("kind") in candidates:
            return _refit(target, X, y, names, classifier, previous)
        return _fit_all(target, X, y, names, classifier, seed)


def _final_fit(kind: str, X: np.ndarray, y: np.ndarray, classifier: bool) -> tuple[Any, Pipeline]:
    """`kind` fitted on every row, and the linear model its explanations come from: itself
    when it is linear, else the baseline (the first candidate)."""
    candidates = CHURN_CANDIDATES if classifier else SPEND_CANDIDATES
    chosen = candidates[kind]().fit(X, y)
    if isinstance(chosen, Pipeline):
        return chosen, chosen
    return chosen, candidates[next(iter(candidates))]().fit(X, y)


def _refit(
    target: str,
    X: np.ndarray,
    y: np.ndarray,
    names: list[str],
    classifier: bool,
    previous: dict[str, Any],
) -> FittedModel:
    """The kind an earlier cross-validation chose, refitted on today's rows; its CV figures
    are carried over with the time they were measured."""
    kind = str(previous["kind"])
    chosen, linear = _final_fit(kind, X, y, classifier)
    metrics = {
        **{k: v for k, v in previous.items() if k != "kind"},
        "rows": len(y),
        "label_mean": _round(y.mean()),
    }
    return FittedModel(target, kind, names, chosen, linear, classifier, metrics=metrics)


def selection(model: FittedModel) -> dict[str, Any] | None:
    """What a later rebuild needs to refit `model`'s kind without cross-validating again."""
    if model.estimator is None or "cv" not in model.metrics:
        return None
    keep = ("cv_rows", "cv_folds", "cv", "mean_predictor_cv", "candidates", "selected_at")
    return {"kind": model.kind, **{k: model.metrics[k] for k in keep if k in model.metrics}}


def _fit_all(
    target: str, X: np.ndarray, y: np.ndarray, names: list[str], classifier: bool, seed: int
) -> FittedModel:
    candidates = CHURN_CANDIDATES if classifier else SPEND_CANDIDATES
    baseline_kind = next(iter(candidates))
    sample = _sample(len(y), seed)
    Xs, ys = X[sample], y[sample]
    folds = _folds(len(ys), ys if classifier else None, seed)
    scores = {
        kind: _cross_validate(make, Xs, ys, folds, classifier) for kind, make in candidates.items()
    }
    key, sign = ("log_loss", -1.0) if classifier else ("r2", 1.0)

    def score(kind: str) -> float:
        return sign * float(scores[kind][key] or 0.0)

    best = baseline_kind
    for kind in candidates:
        if score(kind) > score(best) + CHALLENGER_MARGIN:
            best = kind
    chosen, linear = _final_fit(best, X, y, classifier)
    metrics = {
        "rows": len(y),
        "cv_rows": len(ys),
        "cv_folds": len(folds),
        "cv": scores[best],
        "mean_predictor_cv": _mean_baseline(ys, folds, classifier),
        "candidates": scores,
        "label_mean": _round(y.mean()),
        "selected_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return FittedModel(target, best, names, chosen, linear, classifier, metrics=metrics)


def train_spend(
    X: np.ndarray,
    y: np.ndarray,
    names: list[str],
    seed: int = 0,
    previous: dict[str, Any] | None = None,
) -> FittedModel:
    """Regression of next-horizon spend; too few rows: predict the mean (or 0). With
    `previous` (see selection()), its kind is refitted without cross-validation."""
    if len(y) < MIN_ROWS:
        return FittedModel(
            "spend_30d",
            "mean",
            names,
            constant=float(y.mean()) if len(y) else 0.0,
            metrics={"rows": len(y), "status": "insufficient data: predicting the mean"},
        )
    return _fit("spend_30d", X, y, names, classifier=False, seed=seed, previous=previous)


def train_churn(
    X: np.ndarray,
    y: np.ndarray,
    names: list[str],
    seed: int = 0,
    previous: dict[str, Any] | None = None,
) -> FittedModel:
    """Logistic regression of churn; one class too rare: predict the base rate. With
    `previous` (see selection()), its kind is refitted without cross-validation."""
    counts = np.bincount(y.astype(int), minlength=2)
    if len(y) < MIN_ROWS or counts.min() < MIN_CLASS:
        return FittedModel(
            "churn",
            "base_rate",
            names,
            classifier=True,
            constant=float(y.mean()) if len(y) else 0.5,
            metrics={"rows": len(y), "status": "insufficient data: predicting the base rate"},
        )
    return _fit("churn", X, y.astype(int), names, classifier=True, seed=seed, previous=previous)


def top_factors(
    contrib: np.ndarray | None, names: list[str], rows: int, k: int = 3
) -> list[list[Any]]:
    """Each of `rows` rows' k strongest contributions as [[feature, contribution], ...]
    (empty lists when there is no linear model)."""
    if contrib is None or not contrib.size:
        return [[] for _ in range(rows)]
    k = min(k, contrib.shape[1])
    idx = np.argsort(-np.abs(contrib), axis=1)[:, :k]
    vals = np.round(np.take_along_axis(contrib, idx, axis=1), 4)
    labels = np.asarray(names, dtype=object)[idx].tolist()
    return [
        [[n, v] for n, v in zip(ns, vs, strict=True) if v != 0.0]
        for ns, vs in zip(labels, vals.tolist(), strict=True)
    ]
