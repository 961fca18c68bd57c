"""The CPU part of the profile stage: features, linear models, segments, ad scores.

Runs in a worker thread beside the recommender build; touches neither the database nor
the cache (publish_profiles.py does the I/O around it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.config import Settings
from app.training.ad_features import CFScorer
from app.training.ads import AdModel, train_ads
from app.training.attributes import AttributeEncoder
from app.training.build import preprocess_config
from app.training.dataset import Catalog, Interactions
from app.training.linear import (
    FittedModel,
    selection,
    top_factors,
    train_churn,
    train_spend,
)
from app.training.preprocess import clean, confidence_matrix, event_weights
from app.training.profile_data import Campaigns, ProfileData, Users
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
    ads_campaigns: Campaigns
    # The ad stage (the one that needs the recommender) fills these last; on_profiles hooks
    # see the output before it.
    ads: AdModel | None = None
    warm: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # scored users
    metrics: dict[str, Any] = field(default_factory=dict)
    # Each linear target's chosen kind and CV figures (linear.selection()), for the next run.
    selections: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ad_model(self) -> AdModel:
        """The trained ad model; only a finished output has one."""
        if self.ads is None:
            raise RuntimeError("the profile stage has not reached its ad step")
        return self.ads


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


@dataclass
class ProfileCore:
    """The profile stage up to the ad step: the profiles, plus what the ad step reads."""

    res: ProfileOutput  # everything but the ad model and the scored users
    cleaned: Interactions  # the rows the profiles were built from
    users: Users  # with the users known only from events appended
    act: Activity
    attrs: np.ndarray
    names: list[str]
    dwell: tuple[np.ndarray, np.ndarray]
    timings: dict[str, float]
    spend_cutoff: float
    churn_cutoff: float

    def table_at(self, ref: float) -> FeatureTable:
        return features_at(self.act, ref, self.attrs, self.names, self.dwell)


def build_profiles(
    data: ProfileData,
    catalog: Catalog,
    inter: Interactions,
    recommender: Any,
    settings: Settings,
    *,
    now: float | None = None,
    cfg: ProfileConfig | None = None,
    selections: dict[str, dict[str, Any]] | None = None,
) -> ProfileOutput:
    """Everything the profile and ad endpoints serve, for every known user."""
    core = profile_core(data, catalog, inter, settings, now=now, cfg=cfg, selections=selections)
    return add_ads(core, data, catalog, recommender, settings, cfg=cfg)


def profile_core(
    data: ProfileData,
    catalog: Catalog,
    inter: Interactions,
    settings: Settings,
    *,
    now: float | None = None,
    cfg: ProfileConfig | None = None,
    selections: dict[str, dict[str, Any]] | None = None,
) -> ProfileCore:
    """Features, spend and churn models, segments and affinities: all but the ad step, which
    is the one step that needs the recommender (so this can run while it trains)."""
    cfg = cfg or ProfileConfig()
    now = now or time.time()
    timings: dict[str, float] = {}
    tick = time.perf_counter()
    cleaned, _ = clean(inter, catalog, preprocess_config(settings))
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
    chosen = selections or {}
    spend_model = train_spend(
        spend_table.X[rows], spend_y[rows], table.names, previous=chosen.get("spend_30d")
    )
    churn_table = table_at(data_end - cfg.churn_window_days * DAY)
    rows = churn_table.events > 0
    _, active = _labels(act, churn_table.ref, cfg.churn_window_days)
    churn_model = train_churn(
        churn_table.X[rows],
        (~active[rows]).astype(int),
        table.names,
        previous=chosen.get("churn"),
    )
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
    res = ProfileOutput(
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
        ads_campaigns=data.campaigns,
        selections={
            m.target: sel for m in (spend_model, churn_model) if (sel := selection(m)) is not None
        },
    )
    timings["segments"] = time.perf_counter() - tick
    return ProfileCore(
        res=res,
        cleaned=cleaned,
        users=users,
        act=act,
        attrs=attrs,
        names=encoder.names,
        dwell=dwell,
        timings=timings,
        spend_cutoff=spend_table.ref,
        churn_cutoff=churn_table.ref,
    )


def add_ads(
    core: ProfileCore,
    data: ProfileData,
    catalog: Catalog,
    recommender: Any,
    settings: Settings,
    *,
    cfg: ProfileConfig | None = None,
) -> ProfileOutput:
    """The ad step: click and conversion models with the recommender's CF scores as a
    feature; completes core.res."""
    cfg = cfg or ProfileConfig()
    res, users, act, timings = core.res, core.users, core.act, core.timings
    cleaned, n, now, table = core.cleaned, len(users), res.now, res.table
    tick = time.perf_counter()
    to_model = np.full(n, -1, dtype=np.int64)
    to_model[[users.index[u] for u in cleaned.user_ids]] = np.arange(len(cleaned.user_ids))
    matrix = None
    if recommender is not None and hasattr(recommender, "weights") and len(cleaned):
        shape = (cleaned.n_users, len(catalog))
        weights = event_weights(cleaned, preprocess_config(settings), now)
        matrix = confidence_matrix(cleaned.user, cleaned.item, weights, shape)
    cf = CFScorer(recommender, matrix, to_model, catalog, data.campaigns)
    res.ads = train_ads(
        data.ads,
        act,
        data.campaigns,
        catalog,
        cf,
        core.table_at,
        now,
        settings.holdout_days,
        cfg.affinity_half_life_days,
    )
    warm_mask = table.events > 0
    warm_mask[data.ads.user] = True
    res.warm = np.flatnonzero(warm_mask)
    timings["ads"] = time.perf_counter() - tick
    res.metrics = {
        "users": n,
        "users_with_events": int((table.events > 0).sum()),
        "features": table.names,
        "spend_cutoff": core.spend_cutoff,
        "churn_cutoff": core.churn_cutoff,
        "segments": res.summary,
        "cold_user_predictions": res.cold,
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    return res
