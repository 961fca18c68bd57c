"""The CPU part of the profile stage: features, linear models, segments, ad scores.

Runs in a worker thread beside the recommender build; touches neither the database nor
the cache (publish_profiles.py does the I/O around it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.config import Settings
from app.training.ad_features import CFScorer
from app.training.ads import AdModel, train_ads
from app.training.attributes import AttributeEncoder
from app.training.dataset import Catalog, Interactions
from app.training.linear import FittedModel, top_factors, train_churn, train_spend
from app.training.preprocess import PreprocessConfig, clean, confidence_matrix, event_weights
from app.training.profile_data import Campaigns, ProfileData
from app.training.profiles import (
    DAY,
    Activity,
    FeatureTable,
    ProfileConfig,
    activity,
    affinity,
    empty_activity,
    features_at,
    row_top,
)
from app.training.segments import assign, summarise


@dataclass
class ProfileOutput:
    now: float
    users: list[str]
    attributes: list[dict[str, Any]]
    table: FeatureTable
    segments: np.ndarray
    spend: np.ndarray
    churn: np.ndarray
    low_confidence: np.ndarray
    factors: dict[str, list[list[Any]]]
    top_categories: list[list[tuple[str, float]]]
    top_brands: list[list[tuple[str, float]]]
    summary: list[dict[str, object]]
    cold: dict[str, float]
    spend_model: FittedModel
    churn_model: FittedModel
    ads: AdModel
    ads_campaigns: Campaigns
    warm: np.ndarray  # user codes with item or ad events (they get published ad scores)
    metrics: dict[str, Any] = field(default_factory=dict)


def _pad(values: np.ndarray, n: int) -> np.ndarray:
    return np.concatenate([values, np.zeros(n - len(values))]) if len(values) < n else values


def _labels(act: Activity, cutoff: float, days: float) -> tuple[np.ndarray, np.ndarray]:
    """Spend and "any event" in [cutoff, cutoff + days] per user."""
    window = (act.ts >= cutoff) & (act.ts <= cutoff + days * DAY)
    spend = np.bincount(act.user[window], weights=act.amount[window], minlength=act.n_users)
    active = np.bincount(act.user[window], minlength=act.n_users) > 0
    return spend, active


def _named_top(matrix: Any, labels: list[str], k: int) -> list[list[tuple[str, float]]]:
    cols, vals = row_top(matrix, k)
    return [
        [(labels[c], round(float(v), 4)) for c, v in zip(cr, vr, strict=True) if c >= 0 and v > 0]
        for cr, vr in zip(cols.tolist(), vals.tolist(), strict=True)
    ]


def build_profiles(
    data: ProfileData,
    catalog: Catalog,
    inter: Interactions,
    recommender: Any,
    settings: Settings,
    *,
    now: float | None = None,
    cfg: ProfileConfig | None = None,
    recommender_when_ready: Callable[[], Any] | None = None,
) -> ProfileOutput:
    """Everything the profile and ad endpoints serve, for every known user.

    With `recommender_when_ready`, the recommender is asked for only at the ad stage (the one
    step that needs it), so the rest can run while the recommender is still being trained.
    """
    cfg = cfg or ProfileConfig()
    now = now or time.time()
    timings: dict[str, float] = {}
    tick = time.perf_counter()
    pre = PreprocessConfig(
        event_weights=settings.event_weights, half_life_days=settings.decay_half_life_days
    )
    cleaned, _ = clean(inter, catalog, pre)
    users = data.users
    act = activity(cleaned, catalog, users, settings.event_weights)
    n = len(users)  # final: activity() appended users known only from events
    encoder = AttributeEncoder().fit(users.attributes)
    attrs = encoder.transform(users.attributes)
    dwell = (_pad(data.dwell_sum, n), _pad(data.dwell_count, n))

    def table_at(ref: float) -> FeatureTable:
        return features_at(act, ref, attrs, encoder.names, dwell)

    table = table_at(now)
    timings["features"] = time.perf_counter() - tick

    tick = time.perf_counter()
    data_end = float(act.ts.max()) if len(act.ts) else now
    spend_table = table_at(data_end - cfg.spend_horizon_days * DAY)
    rows = spend_table.events > 0
    spend_y, _ = _labels(act, spend_table.ref, cfg.spend_horizon_days)
    spend_model = train_spend(spend_table.X[rows], spend_y[rows], table.names)
    churn_table = table_at(data_end - cfg.churn_window_days * DAY)
    rows = churn_table.events > 0
    _, active = _labels(act, churn_table.ref, cfg.churn_window_days)
    churn_model = train_churn(churn_table.X[rows], (~active[rows]).astype(int), table.names)
    spend, churn = spend_model.predict(table.X), churn_model.predict(table.X)
    timings["linear_models"] = time.perf_counter() - tick

    tick = time.perf_counter()
    segments = assign(table, cfg)
    fallback = spend_model.estimator is None or churn_model.estimator is None
    low = (table.events < cfg.min_events_confident) | fallback
    summary = summarise(
        segments,
        {
            "recency_days": table.recency_days,
            "frequency": table.frequency,
            "monetary": table.monetary,
            "predicted_spend_30d": spend,
            "churn_probability": churn,
        },
    )
    # A shopper created after this rebuild: the predictions for one with no events and the
    # median numeric attributes.
    blank = features_at(
        empty_activity(1), now, encoder.transform([{}]), encoder.names, (np.zeros(1), np.zeros(1))
    ).X
    cold = {
        "predicted_spend_30d": round(float(spend_model.predict(blank)[0]), 2),
        "churn_probability": round(float(churn_model.predict(blank)[0]), 4),
    }
    factors = {
        "predicted_spend_30d": top_factors(spend_model.contributions(table.X), table.names, n),
        "churn_probability": top_factors(churn_model.contributions(table.X), table.names, n),
    }
    half_life = cfg.affinity_half_life_days
    top_categories = _named_top(
        affinity(act, now, half_life, "category"), act.categories, cfg.top_n
    )
    top_brands = _named_top(affinity(act, now, half_life, "brand"), act.brands, cfg.top_n)
    timings["segments"] = time.perf_counter() - tick

    if recommender_when_ready is not None:
        tick = time.perf_counter()
        recommender = recommender_when_ready()
        timings["wait_for_recommender"] = time.perf_counter() - tick
    tick = time.perf_counter()
    to_model = np.full(n, -1, dtype=np.int64)
    to_model[[users.index[u] for u in cleaned.user_ids]] = np.arange(len(cleaned.user_ids))
    matrix = None
    if recommender is not None and hasattr(recommender, "weights") and len(cleaned):
        shape = (cleaned.n_users, len(catalog))
        weights = event_weights(cleaned, pre, now)
        matrix = confidence_matrix(cleaned.user, cleaned.item, weights, shape)
    cf = CFScorer(recommender, matrix, to_model, catalog, data.campaigns)
    ads = train_ads(
        data.ads, act, data.campaigns, catalog, cf, table_at, now, settings.holdout_days, half_life
    )
    warm_mask = table.events > 0
    warm_mask[data.ads.user] = True
    timings["ads"] = time.perf_counter() - tick
    metrics = {
        "users": n,
        "users_with_events": int((table.events > 0).sum()),
        "features": table.names,
        "spend_cutoff": spend_table.ref,
        "churn_cutoff": churn_table.ref,
        "segments": summary,
        "cold_user_predictions": cold,
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    return ProfileOutput(
        now=now,
        users=users.ids,
        attributes=users.attributes,
        table=table,
        segments=segments,
        spend=spend,
        churn=churn,
        low_confidence=low,
        factors=factors,
        top_categories=top_categories,
        top_brands=top_brands,
        summary=summary,
        cold=cold,
        spend_model=spend_model,
        churn_model=churn_model,
        ads=ads,
        ads_campaigns=data.campaigns,
        warm=np.flatnonzero(warm_mask),
        metrics=metrics,
    )
