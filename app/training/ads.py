"""Ad click and conversion propensity: smoothed campaign CTR, models, evaluation.

- Impressions are labelled by app/training/ad_attribution.py.
- Campaign CTR is smoothed towards a prior from similar campaigns: the pooled CTR of the
  other campaigns of the same brand, else of the same category, else all campaigns (each
  needs MIN_PRIOR_IMPRESSIONS), with PRIOR_STRENGTH pseudo-impressions. A campaign with no
  history gets exactly that prior.
- Click model: logistic regression on ad_features.AD_FEATURES. Conversion given a click:
  the same on clicked impressions, or the smoothed campaign conversion rate when
  conversions are few. p_convert = p_click x P(conversion | click).
- Evaluation: train on impressions before the last `holdout_days`, features as of that
  cutoff; ROC AUC, log loss and Brier on the later impressions, against each campaign's
  plain training-window CTR.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from app.training.ad_attribution import Impressions, attribute
from app.training.ad_features import (
    AD_FEATURES,
    CHUNK_USERS,
    CampaignSide,
    CFScorer,
    FixedCF,
    UserSide,
    grid_features,
    pair_features,
    user_side,
)
from app.training.dataset import Catalog
from app.training.linear import FittedModel, _classification_metrics, _round
from app.training.profile_data import AdLog, Campaigns
from app.training.profiles import Activity, FeatureTable

DAY = 86_400.0
PRIOR_STRENGTH = 200.0
CONVERT_PRIOR_STRENGTH = 20.0
MIN_PRIOR_IMPRESSIONS = 100
DEFAULT_CTR = 0.01  # before any ad traffic at all
DEFAULT_CVR = 0.1
MIN_CLASS = 10  # each class needs this many rows before a model is fitted


def _group_codes(values: list[str | None]) -> np.ndarray:
    index: dict[str, int] = {}
    return np.array([index.setdefault(v, len(index)) if v else -1 for v in values], np.int64)


def smooth_ctr(
    imps: np.ndarray, clicks: np.ndarray, campaigns: Campaigns, strength: float = PRIOR_STRENGTH
) -> tuple[np.ndarray, np.ndarray, float]:
    """(smoothed CTR, prior, global CTR) per campaign; see the module docstring."""
    glob = float((clicks.sum() + DEFAULT_CTR * strength) / (imps.sum() + strength))
    prior = np.full(len(imps), glob)
    # Category first, then brand: the closer kind of similarity wins where it has data.
    for values in (campaigns.category, campaigns.brand):
        codes = _group_codes(values)
        valid = codes >= 0
        if not valid.any():
            continue
        size = codes.max() + 1
        group_imps = np.bincount(codes[valid], weights=imps[valid], minlength=size)
        group_clicks = np.bincount(codes[valid], weights=clicks[valid], minlength=size)
        safe = np.maximum(codes, 0)
        other_imps = group_imps[safe] - imps
        other_clicks = group_clicks[safe] - clicks
        ok = valid & (other_imps >= MIN_PRIOR_IMPRESSIONS)
        prior[ok] = (other_clicks[ok] + glob * strength) / (other_imps[ok] + strength)
    return (clicks + strength * prior) / (imps + strength), prior, glob


def _click_pipeline() -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))


def _fit(target: str, X: np.ndarray, y: np.ndarray) -> FittedModel | None:
    if y.sum() < MIN_CLASS or (~y).sum() < MIN_CLASS:
        return None
    pipe = _click_pipeline().fit(X, y)
    metrics = {"rows": len(y), "positives": int(y.sum())}
    return FittedModel(
        target, "logistic_regression", list(AD_FEATURES), pipe, pipe, True, metrics=metrics
    )


def _counts(imps: Impressions, mask: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    c = imps.campaign[mask]
    return (
        np.bincount(c, minlength=n).astype(np.float64),
        np.bincount(c, weights=imps.clicked[mask], minlength=n),
        np.bincount(c, weights=imps.converted[mask], minlength=n),
    )


def conversion_value(imps: Impressions, campaigns: Campaigns, catalog: Catalog) -> np.ndarray:
    """Expected revenue of a conversion per campaign: its mean conversion amount, smoothed
    towards the mean price of its items (or of all conversions, or of the catalog)."""
    n = len(campaigns)
    price = {i: p for i, p in zip(catalog.item_ids, catalog.price.tolist(), strict=False) if p == p}
    done = imps.converted & (imps.amount > 0)
    overall = (
        float(imps.amount[done].mean())
        if done.any()
        else float(np.mean(list(price.values())))
        if price
        else 1.0
    )
    base = np.array(
        [
            np.mean([price[i] for i in items if i in price])
            if any(i in price for i in items)
            else overall
            for items in campaigns.items
        ]
    )
    total = np.bincount(imps.campaign[done], weights=imps.amount[done], minlength=n)
    count = np.bincount(imps.campaign[done], minlength=n)
    return (total + 5.0 * base) / (count + 5.0)


@dataclass
class AdModel:
    click: FittedModel | None
    convert: FittedModel | None
    ctr: np.ndarray
    cvr: np.ndarray
    value: np.ndarray
    user: UserSide
    camp: CampaignSide
    cf: CFScorer | FixedCF | None
    metrics: dict[str, Any] = field(default_factory=dict)

    def predict(self, X: np.ndarray, camps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p_click, p_convert) for feature rows of the given campaigns."""
        p_click = self.click.predict(X) if self.click else self.ctr[camps]
        given = self.convert.predict(X) if self.convert else self.cvr[camps]
        return p_click, p_click * given

    def score(self, users: np.ndarray, camps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p_click, p_convert) shaped (len(users), len(camps)), computed in user chunks."""
        pc = np.zeros((len(users), len(camps)), np.float32)
        pv = np.zeros((len(users), len(camps)), np.float32)
        for start in range(0, len(users), CHUNK_USERS):
            chunk = users[start : start + CHUNK_USERS]
            X = grid_features(self.user, self.camp, self.cf, chunk, camps)
            a, b = self.predict(X, np.tile(camps, len(chunk)))
            pc[start : start + len(chunk)] = a.reshape(len(chunk), len(camps))
            pv[start : start + len(chunk)] = b.reshape(len(chunk), len(camps))
        return pc, pv

    def score_cold(self, camps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p_click, p_convert) per campaign for a shopper with no history: the campaign's
        smoothed rates (what the average shopper does), not the model far outside its data."""
        return self.ctr[camps], self.ctr[camps] * self.cvr[camps]


def evaluate(
    imps: Impressions,
    act: Activity,
    campaigns: Campaigns,
    cf: CFScorer | None,
    table_at: Callable[[float], FeatureTable],
    holdout_days: float,
    half_life_days: float,
) -> dict[str, Any]:
    """Temporal holdout: the model vs each campaign's plain CTR on later impressions."""
    if not len(imps):
        return {"status": "no ad impressions"}
    cutoff = float(imps.ts.max()) - holdout_days * DAY
    train = imps.ts < cutoff
    y_tr, y_te = imps.clicked[train], imps.clicked[~train]
    sizes = {
        "train_impressions": int(train.sum()),
        "test_impressions": int((~train).sum()),
        "test_clicks": int(y_te.sum()),
    }
    if min(y_tr.sum(), (~y_tr).sum()) < MIN_CLASS or min(y_te.sum(), (~y_te).sum()) < 1:
        return {"status": "insufficient data for a temporal holdout", **sizes}
    n = len(campaigns)
    shown, clicks, _ = _counts(imps, train, n)
    ctr, _, glob = smooth_ctr(shown, clicks, campaigns)
    user = user_side(act, table_at(cutoff), half_life_days)
    camp = CampaignSide.build(act, campaigns, ctr)
    X_tr = pair_features(user, camp, cf, imps.user[train], imps.campaign[train])
    X_te = pair_features(user, camp, cf, imps.user[~train], imps.campaign[~train])
    p = _click_pipeline().fit(X_tr, y_tr).predict_proba(X_te)[:, 1]
    plain = np.where(shown > 0, clicks / np.maximum(shown, 1), clicks.sum() / max(shown.sum(), 1))
    return {
        "cutoff": cutoff,
        **sizes,
        "model": {k: _round(v) for k, v in _classification_metrics(y_te, p).items()},
        "campaign_ctr_baseline": {
            k: _round(v)
            for k, v in _classification_metrics(y_te, plain[imps.campaign[~train]]).items()
        },
        "global_ctr_train": _round(glob),
    }


def train_ads(
    log: AdLog,
    act: Activity,
    campaigns: Campaigns,
    catalog: Catalog,
    cf: CFScorer | None,
    table_at: Callable[[float], FeatureTable],
    now: float,
    holdout_days: float,
    half_life_days: float,
) -> AdModel:
    """Fit the click and conversion models on every impression, features as of now."""
    n = len(campaigns)
    imps = attribute(log, n)
    every = np.ones(len(imps), bool)
    shown, clicks, conversions = _counts(imps, every, n)
    ctr, prior, _ = smooth_ctr(shown, clicks, campaigns)
    glob_cvr = (conversions.sum() + DEFAULT_CVR * CONVERT_PRIOR_STRENGTH) / (
        clicks.sum() + CONVERT_PRIOR_STRENGTH
    )
    cvr = (conversions + CONVERT_PRIOR_STRENGTH * glob_cvr) / (clicks + CONVERT_PRIOR_STRENGTH)
    user = user_side(act, table_at(now), half_life_days)
    camp = CampaignSide.build(act, campaigns, ctr)
    click = convert = None
    if len(imps):
        X = pair_features(user, camp, cf, imps.user, imps.campaign)
        click = _fit("ad_click", X, imps.clicked)
        convert = _fit("ad_convert", X[imps.clicked], imps.converted[imps.clicked])
    evaluation = evaluate(imps, act, campaigns, cf, table_at, holdout_days, half_life_days)
    metrics = {
        **imps.stats,
        "click_model": click.describe() if click else {"kind": "smoothed_campaign_ctr"},
        "convert_model": convert.describe() if convert else {"kind": "smoothed_campaign_cvr"},
        "holdout": evaluation,
        "cf_scale": _round(cf.scale) if cf else None,
        "campaigns": {
            cid: {
                "impressions": int(shown[k]),
                "clicks": int(clicks[k]),
                "ctr": _round(ctr[k]),
                "prior": _round(prior[k]),
            }
            for k, cid in enumerate(campaigns.ids)
        },
    }
    value = conversion_value(imps, campaigns, catalog)
    return AdModel(click, convert, ctr, cvr, value, user, camp, cf, metrics)
