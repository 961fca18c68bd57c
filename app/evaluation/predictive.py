"""Temporal holdout evaluation of the profile models (spend, churn) and the ad CTR model.

Uses the profile and ad-targeting training code (app/training/profiles.py, linear.py, ads.py)
when it is installed; each section says "not available" with the reason otherwise.

- Spend and churn: features as of T1 = end - 2h, labels from [T1, T1 + h] train the model
  the worker trains; it is then scored on features as of T2 = end - h with labels from
  [T2, end], i.e. on a later window it never saw (h = the spend horizon or churn window).
  Baselines: the training mean (spend) and the training churn rate.
- Ad CTR: impressions before the last HOLDOUT_DAYS train the click model, later ones test it,
  against each campaign's plain training CTR.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    brier_score_loss,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
    roc_curve,
)

from app.context import AppContext
from app.training.dataset import Catalog, Interactions

DAY = 86_400.0
SECTIONS = {
    "spend": "Spend regression (predicted_spend_30d)",
    "churn": "Churn classifier (churn_probability)",
    "ad_ctr": "Ad click propensity (p_click)",
}
MAX_CURVE_POINTS = 200
MAX_SCATTER = 600
Step = Callable[[str], None]


def _unavailable(name: str, reason: str) -> dict[str, Any]:
    return {"title": SECTIONS[name], "status": "not available", "reason": reason, "rows": []}


def _thin(xs: np.ndarray, ys: np.ndarray) -> tuple[list[float], list[float]]:
    if len(xs) > MAX_CURVE_POINTS:
        keep = np.unique(np.linspace(0, len(xs) - 1, MAX_CURVE_POINTS).astype(int))
        xs, ys = xs[keep], ys[keep]
    return [round(float(x), 4) for x in xs], [round(float(y), 4) for y in ys]


def classification_rows(
    y: np.ndarray, scored: list[tuple[str, np.ndarray]]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """ROC AUC, Brier and log loss per scorer, plus ROC and calibration curves."""
    rows, roc, calib = [], [], []
    both = 0 < y.sum() < len(y)
    for name, p in scored:
        p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
        rows.append(
            {
                "model": name,
                "roc_auc": round(float(roc_auc_score(y, p)), 4) if both else None,
                "brier": round(float(brier_score_loss(y, p)), 5),
                "log_loss": round(float(log_loss(y, p, labels=[0, 1])), 5),
            }
        )
        if both:
            fpr, tpr, _ = roc_curve(y, p)
            roc.append((name, *_thin(fpr, tpr)))
            if len(np.unique(p)) > 1:
                observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
                calib.append((name, *_thin(predicted, observed)))
    return rows, {"roc": roc, "calibration": calib}


def regression_rows(
    y: np.ndarray, scored: list[tuple[str, np.ndarray]]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows = []
    for name, pred in scored:
        rows.append(
            {
                "model": name,
                "mse": round(float(mean_squared_error(y, pred)), 3),
                "mae": round(float(mean_absolute_error(y, pred)), 3),
                "r2": round(float(r2_score(y, pred)), 4) if np.var(y) > 0 else None,
            }
        )
    model_pred = scored[0][1]
    pick = np.arange(len(y))
    if len(y) > MAX_SCATTER:
        pick = np.random.default_rng(0).choice(len(y), MAX_SCATTER, replace=False)
    scatter = ([float(v) for v in y[pick]], [float(v) for v in model_pred[pick]])
    return rows, {"scatter": scatter}


def _profile_sections(data: Any, catalog: Catalog, inter: Interactions, settings: Any) -> dict:
    from app.training.attributes import AttributeEncoder
    from app.training.linear import train_churn, train_spend
    from app.training.preprocess import PreprocessConfig, clean
    from app.training.profiles import ProfileConfig, activity, features_at

    cfg = ProfileConfig()
    pre = PreprocessConfig(settings.event_weights, settings.decay_half_life_days)
    cleaned, _ = clean(inter, catalog, pre)
    act = activity(cleaned, catalog, data.users, settings.event_weights)
    n = act.n_users
    encoder = AttributeEncoder().fit(data.users.attributes)
    attrs = encoder.transform(data.users.attributes)
    pad = np.zeros(max(0, n - len(data.dwell_sum)))
    dwell = (np.concatenate([data.dwell_sum, pad]), np.concatenate([data.dwell_count, pad]))
    end = float(act.ts.max()) if len(act.ts) else 0.0

    def labelled(horizon: float, shift: int) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
        table = features_at(act, end - shift * horizon * DAY, attrs, encoder.names, dwell)
        window = (act.ts >= table.ref) & (act.ts <= table.ref + horizon * DAY)
        spend = np.bincount(act.user[window], weights=act.amount[window], minlength=n)
        active = np.bincount(act.user[window], minlength=n) > 0
        return table, table.events > 0, spend, active

    out: dict[str, Any] = {}
    h = cfg.spend_horizon_days
    (t1, r1, y1, _), (t2, r2, y2, _) = labelled(h, 2), labelled(h, 1)
    if r1.sum() < 30 or r2.sum() < 30:
        out["spend"] = _unavailable("spend", "fewer than 30 users with history in a window")
    else:
        model = train_spend(t1.X[r1], y1[r1], t1.names)
        pred = model.predict(t2.X[r2])
        rows, curves = regression_rows(
            y2[r2], [(model.kind, pred), ("mean (baseline)", np.full(r2.sum(), y1[r1].mean()))]
        )
        out["spend"] = {"title": SECTIONS["spend"], "status": "ok", "rows": rows,
                        "curves": curves, "test_users": int(r2.sum())}  # fmt: skip
    h = cfg.churn_window_days
    (t1, r1, _, a1), (t2, r2, _, a2) = labelled(h, 2), labelled(h, 1)
    y_train, y_test = (~a1[r1]).astype(int), (~a2[r2]).astype(int)
    if min(y_train.sum(), len(y_train) - y_train.sum()) < 5 or not 0 < y_test.sum() < len(y_test):
        out["churn"] = _unavailable("churn", "both churned and active users are needed")
    else:
        model = train_churn(t1.X[r1], y_train, t1.names)
        rows, curves = classification_rows(
            y_test,
            [(model.kind, model.predict(t2.X[r2])),
             ("base rate (baseline)", np.full(len(y_test), y_train.mean()))],
        )  # fmt: skip
        out["churn"] = {"title": SECTIONS["churn"], "status": "ok", "rows": rows,
                        "curves": curves, "test_users": len(y_test), "window_days": h}  # fmt: skip
    try:
        out["ad_ctr"] = _ad_section(data, act, attrs, encoder.names, dwell, settings)
    except ImportError as exc:
        out["ad_ctr"] = _unavailable("ad_ctr", f"not installed in this version ({exc.name})")
    except Exception as exc:
        out["ad_ctr"] = _unavailable("ad_ctr", _failed(exc))
    return out


def _failed(exc: Exception) -> str:
    return f"evaluation failed: {type(exc).__name__}: {exc}"[:300]


def _ad_section(data: Any, act: Any, attrs: Any, names: Any, dwell: Any, settings: Any) -> dict:
    from app.training import ads
    from app.training.ad_features import CampaignSide, pair_features, user_side
    from app.training.profiles import ProfileConfig, features_at

    imps = ads.attribute(data.ads, len(data.campaigns))
    if not len(imps):
        return _unavailable("ad_ctr", "no ad impressions")
    cutoff = float(imps.ts.max()) - settings.holdout_days * DAY
    train = imps.ts < cutoff
    y_tr, y_te = imps.clicked[train], imps.clicked[~train]
    if min(y_tr.sum(), (~y_tr).sum()) < 10 or not 0 < y_te.sum() < len(y_te):
        return _unavailable("ad_ctr", "too few clicks before or after the holdout cutoff")
    shown, clicks, _ = ads._counts(imps, train, len(data.campaigns))
    ctr, _, _ = ads.smooth_ctr(shown, clicks, data.campaigns)
    half_life = ProfileConfig().affinity_half_life_days
    user = user_side(act, features_at(act, cutoff, attrs, names, dwell), half_life)
    camp = CampaignSide.build(act, data.campaigns, ctr)
    x_tr = pair_features(user, camp, None, imps.user[train], imps.campaign[train])
    x_te = pair_features(user, camp, None, imps.user[~train], imps.campaign[~train])
    p = ads._click_pipeline().fit(x_tr, y_tr).predict_proba(x_te)[:, 1]
    plain = np.where(shown > 0, clicks / np.maximum(shown, 1), clicks.sum() / max(shown.sum(), 1))
    rows, curves = classification_rows(
        y_te.astype(int),
        [("logistic regression", p), ("campaign CTR (baseline)", plain[imps.campaign[~train]])],
    )
    return {"title": SECTIONS["ad_ctr"], "status": "ok", "rows": rows, "curves": curves,
            "test_impressions": int((~train).sum())}  # fmt: skip


async def evaluate_all(
    ctx: AppContext, catalog: Catalog, inter: Interactions, step: Step
) -> dict[str, Any]:
    """Every predictive section, or why it is not available."""
    step("evaluating spend, churn and ad CTR models")
    try:
        from app.training.profile_data import load_profile_data
    except ImportError:
        reason = "the profile and ad-targeting models are not installed in this version"
        out = {name: _unavailable(name, reason) for name in SECTIONS}
    else:
        try:
            data = await load_profile_data(ctx.engine)
            out = await asyncio.to_thread(_profile_sections, data, catalog, inter, ctx.settings)
        except ImportError as exc:
            reason = f"not installed in this version ({exc.name or exc})"
            out = {name: _unavailable(name, reason) for name in SECTIONS}
        except Exception as exc:  # a section must never sink the whole report
            out = {name: _unavailable(name, _failed(exc)) for name in SECTIONS}
    for _ in range(len(SECTIONS) - 1):
        step("profile and ad models evaluated")
    return out
