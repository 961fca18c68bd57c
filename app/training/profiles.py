"""Profile features per shopper: RFM, activity, category/brand affinity, price sensitivity, dwell.

Everything is computed "as of" a reference time from events before it, so the same code
makes training rows at a past cutoff (labels come from the window after it) and serving rows
now. All users of the users table get a row; users without events get zeros and their
attributes, and are flagged as such (`has_events`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from app.training.dataset import ITEM_EVENT_TYPES, TYPE_CODE, Catalog, Interactions
from app.training.profile_data import Users

DAY = 86_400.0
RECENCY_CAP_DAYS = 365.0  # "never" and "a year ago" look alike to the models
PURCHASE = TYPE_CODE["purchase"]
CART = TYPE_CODE["add_to_cart"]


@dataclass
class ProfileConfig:
    """Horizons and sizes (documented defaults)."""

    spend_horizon_days: float = 30.0  # predicted_spend_30d looks this far ahead
    churn_window_days: float = 14.0  # churn = no item event in the next window of this length
    new_user_days: float = 14.0  # first seen this recently: segment "new"
    affinity_half_life_days: float = 60.0  # older events count less towards affinities
    top_n: int = 5  # top categories / brands shown in a profile
    min_events_confident: int = 3  # fewer events than this: predictions are low-confidence


@dataclass
class Activity:
    """Item events in users-table codes, sorted by (user, time), with item attributes."""

    n_users: int
    user: np.ndarray
    ts: np.ndarray
    etype: np.ndarray
    amount: np.ndarray  # purchase amounts (0 elsewhere or when unknown)
    weight: np.ndarray  # event type weight (>= 0)
    category: np.ndarray  # code into `categories`, -1 when the item has none
    brand: np.ndarray  # code into `brands`, -1 when none
    rel_price: np.ndarray  # log(price / category median price), NaN when unknown
    categories: list[str] = field(default_factory=list)
    brands: list[str] = field(default_factory=list)


def _codes(values: list[str | None]) -> tuple[np.ndarray, list[str]]:
    labels = sorted({v for v in values if v})
    index = {v: k for k, v in enumerate(labels)}
    return np.array([index.get(v, -1) if v else -1 for v in values], dtype=np.int64), labels


@dataclass
class ItemAttributes:
    """Per catalog item: category and brand codes, log price relative to its category."""

    category: np.ndarray
    brand: np.ndarray
    rel_price: np.ndarray
    categories: list[str]
    brands: list[str]


def item_attributes(catalog: Catalog) -> ItemAttributes:
    """Resolve the catalog's attributes once (real time reuses them for every batch)."""
    item_cat, categories = _codes(catalog.category)
    item_brand, brands = _codes(catalog.brand)
    price = np.asarray(catalog.price, dtype=np.float64)
    log_price = np.log(np.where(price > 0, price, np.nan))
    median = np.full(len(categories), np.nan)
    for c in range(len(categories)):
        prices = log_price[(item_cat == c) & np.isfinite(log_price)]
        if len(prices):
            median[c] = np.median(prices)
    rel = log_price - np.where(item_cat >= 0, median[np.maximum(item_cat, 0)], np.nan)
    return ItemAttributes(item_cat, item_brand, rel, categories, brands)


def activity(
    inter: Interactions,
    catalog: Catalog,
    users: Users,
    weights: dict[str, float],
    items: ItemAttributes | None = None,
) -> Activity:
    """Map a cleaned event log onto the users table and resolve item attributes once."""
    to_user = np.fromiter((users.code(u) for u in inter.user_ids), np.int64, len(inter.user_ids))
    user = to_user[inter.user] if len(inter) else np.empty(0, np.int64)
    order = np.lexsort((inter.ts, user))
    item = inter.item[order]
    attrs = items or item_attributes(catalog)
    item_cat, item_brand, rel = attrs.category, attrs.brand, attrs.rel_price
    categories, brands = attrs.categories, attrs.brands
    etype = inter.etype[order]
    table = np.array([max(weights.get(t, 0.0), 0.0) for t in ITEM_EVENT_TYPES], np.float64)
    amount = np.nan_to_num(inter.amount[order].astype(np.float64), nan=0.0)
    return Activity(
        n_users=len(users),
        user=user[order],
        ts=inter.ts[order],
        etype=etype,
        amount=np.where(etype == PURCHASE, np.clip(amount, 0, None), 0.0),
        weight=table[etype] if len(etype) else np.empty(0),
        category=item_cat[item] if len(item) else np.empty(0, np.int64),
        brand=item_brand[item] if len(item) else np.empty(0, np.int64),
        rel_price=rel[item] if len(item) else np.empty(0),
        categories=categories,
        brands=brands,
    )


def empty_activity(n_users: int) -> Activity:
    """No events at all (e.g. the features of a shopper nobody has seen yet)."""
    empty = np.empty(0)
    codes = np.empty(0, np.int64)
    return Activity(n_users, codes, empty, np.empty(0, np.int8), empty, empty, codes, codes, empty)


ACTIVITY_FEATURES = (
    "has_events",
    "recency_days_log",
    "tenure_days_log",
    "events_7d_log",
    "events_30d_log",
    "active_days_log",
    "purchases_log",
    "monetary_log",
    "spend_30d_log",
    "avg_order_value_log",
    "carts_30d_log",
    "recency_over_gap_log",
    "price_sensitivity",
    "avg_dwell_log",
)


@dataclass
class FeatureTable:
    """Model inputs (X, by name) and the raw figures a profile shows, for every user."""

    ref: float
    names: list[str]
    X: np.ndarray
    events: np.ndarray  # item events before ref
    recency_days: np.ndarray  # NaN: no events
    first_seen_days: np.ndarray  # days since the first event, NaN: none
    frequency: np.ndarray  # purchases
    monetary: np.ndarray  # purchase amount
    price_sensitivity: np.ndarray  # NaN: not enough evidence
    avg_dwell: np.ndarray  # NaN: no dwell time recorded

    def column(self, name: str) -> np.ndarray:
        return self.X[:, self.names.index(name)]


def _runs(user: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last index of each user's run in a user-sorted array."""
    if not len(user):
        return np.empty(0, np.int64), np.empty(0, np.int64)
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
    return starts, np.r_[starts[1:], len(user)] - 1


def features_at(
    act: Activity,
    ref: float,
    attributes: np.ndarray,
    attribute_names: list[str],
    dwell: tuple[np.ndarray, np.ndarray],
) -> FeatureTable:
    """Every user's features from the events before `ref`."""
    n = act.n_users
    keep = act.ts < ref
    user, ts, etype = act.user[keep], act.ts[keep], act.etype[keep]
    amount, rel = act.amount[keep], act.rel_price[keep]

    def count(mask: np.ndarray | None = None, values: np.ndarray | None = None) -> np.ndarray:
        sel = user if mask is None else user[mask]
        w = None if values is None else (values if mask is None else values[mask])
        return np.bincount(sel, weights=w, minlength=n).astype(np.float64)[:n]

    events = count()
    starts, ends = _runs(user)
    recency = np.full(n, np.nan)
    first_seen = np.full(n, np.nan)
    recency[user[starts]] = (ref - ts[ends]) / DAY
    first_seen[user[starts]] = (ref - ts[starts]) / DAY
    day = np.floor(ts / DAY).astype(np.int64)
    new_day = (
        np.r_[True, (user[1:] != user[:-1]) | (day[1:] != day[:-1])] if len(user) else keep[:0]
    )
    active_days = count(new_day)
    bought = etype == PURCHASE
    purchases, monetary = count(bought), count(bought, amount)
    recent30, recent7 = ts >= ref - 30 * DAY, ts >= ref - 7 * DAY
    spend_30d = count(bought & recent30, amount)
    # Price sensitivity: how much cheaper (relative to the category median) a shopper buys
    # than they browse; shrunk towards 0 for shoppers with few purchases.
    priced = np.isfinite(rel)
    browse = count(~bought & priced)
    buy_n = count(bought & priced)
    with np.errstate(invalid="ignore", divide="ignore"):
        browse_mean = count(~bought & priced, np.nan_to_num(rel)) / browse
        buy_mean = count(bought & priced, np.nan_to_num(rel)) / buy_n
        sensitivity = (browse_mean - buy_mean) * buy_n / (buy_n + 2.0)
        gap = np.where(active_days > 0, first_seen / np.maximum(active_days, 1), np.nan)
        over_gap = np.clip(recency / np.maximum(gap, 1.0), 0, 50)
        aov = np.where(purchases > 0, monetary / np.maximum(purchases, 1), 0.0)
        dwell_sum, dwell_n = dwell
        avg_dwell = np.where(dwell_n > 0, dwell_sum / np.maximum(dwell_n, 1), np.nan)
    has = events > 0
    columns = {
        "has_events": has.astype(np.float64),
        "recency_days_log": np.log1p(
            np.nan_to_num(np.minimum(recency, RECENCY_CAP_DAYS), nan=RECENCY_CAP_DAYS)
        ),
        "tenure_days_log": np.log1p(np.nan_to_num(first_seen)),
        "events_7d_log": np.log1p(count(recent7)),
        "events_30d_log": np.log1p(count(recent30)),
        "active_days_log": np.log1p(active_days),
        "purchases_log": np.log1p(purchases),
        "monetary_log": np.log1p(monetary),
        "spend_30d_log": np.log1p(spend_30d),
        "avg_order_value_log": np.log1p(aov),
        "carts_30d_log": np.log1p(count((etype == CART) & recent30)),
        "recency_over_gap_log": np.log1p(np.nan_to_num(over_gap, nan=50.0)),
        "price_sensitivity": np.nan_to_num(sensitivity),
        "avg_dwell_log": np.log1p(np.nan_to_num(avg_dwell)),
    }
    X = np.column_stack([columns[name] for name in ACTIVITY_FEATURES] + [attributes])
    return FeatureTable(
        ref=ref,
        names=[*ACTIVITY_FEATURES, *attribute_names],
        X=X,
        events=events,
        recency_days=recency,
        first_seen_days=first_seen,
        frequency=purchases,
        monetary=monetary,
        price_sensitivity=np.where(buy_n > 0, sensitivity, np.nan),
        avg_dwell=avg_dwell,
    )


def affinity(
    act: Activity, ref: float, half_life_days: float, kind: str, *, shares: bool = True
) -> sparse.csr_matrix:
    """Users x categories (or brands): each user's share of decayed, type-weighted events
    (or, with shares=False, the weighted event counts themselves)."""
    labels = act.categories if kind == "category" else act.brands
    codes = act.category if kind == "category" else act.brand
    keep = (act.ts < ref) & (codes >= 0)
    age_days = np.clip(ref - act.ts[keep], 0, None) / DAY
    w = act.weight[keep] * np.power(0.5, age_days / half_life_days)
    matrix = sparse.csr_matrix(
        (w, (act.user[keep], codes[keep])), shape=(act.n_users, max(len(labels), 1))
    )
    matrix.sum_duplicates()
    if not shares:
        return matrix
    totals = np.asarray(matrix.sum(axis=1)).ravel()
    scale = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)
    return sparse.csr_matrix(sparse.diags(scale) @ matrix)


def row_top(matrix: sparse.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's top-k columns and values, (rows, k), -1 / 0 padded."""
    rows = matrix.shape[0]
    cols = np.full((rows, k), -1, dtype=np.int64)
    vals = np.zeros((rows, k), dtype=np.float64)
    if not matrix.nnz:
        return cols, vals
    row_of = np.repeat(np.arange(rows), np.diff(matrix.indptr))
    order = np.lexsort((-matrix.data, row_of))
    rank = np.arange(len(order)) - matrix.indptr[row_of[order]]
    take = rank < k
    picked = order[take]
    cols[row_of[picked], rank[take]] = matrix.indices[picked]
    vals[row_of[picked], rank[take]] = matrix.data[picked]
    return cols, vals


def top_mask(matrix: sparse.csr_matrix, k: int) -> sparse.csr_matrix:
    """1 where a column is among its row's top k (with a positive share)."""
    cols, vals = row_top(matrix, k)
    rows, slots = np.nonzero((cols >= 0) & (vals > 0))
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols[rows, slots])), shape=matrix.shape)
