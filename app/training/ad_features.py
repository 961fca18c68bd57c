"""Features of a (shopper, campaign) pair for the click and conversion models.

User side (as of a reference time): the shopper's weighted, decayed events on the campaign's
brand and category, as a share of all their events, as a lift over the average shopper's
share, as a log count (brand), whether the brand/category is among their top ones, whether
they bought the brand, their activity and recency. Campaign side: the smoothed CTR. Pair: the
CF model's score of the shopper for the campaign's items (mean over the items, divided by
the spread of such scores so every model kind lands on one scale).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
from scipy import sparse

from app.training.dataset import Catalog
from app.training.profile_data import Campaigns
from app.training.profiles import (
    PURCHASE,
    Activity,
    FeatureTable,
    affinity,
    top_mask,
)

AD_FEATURES = [
    "brand_lift_log",
    "category_lift_log",
    "brand_events_log",
    "brand_share",
    "brand_top",
    "category_share",
    "category_top",
    "brand_buyer",
    "cf_score",
    "campaign_ctr_logit",
    "user_events_log",
    "user_recency_log",
]
TOP_BRANDS, TOP_CATEGORIES = 3, 2
CHUNK_USERS = 20_000


@dataclass
class UserSide:
    brand_lift: sparse.csr_matrix
    category_lift: sparse.csr_matrix
    brand_events: sparse.csr_matrix
    brand_share: sparse.csr_matrix
    brand_top: sparse.csr_matrix
    category_share: sparse.csr_matrix
    category_top: sparse.csr_matrix
    brand_buyer: sparse.csr_matrix
    events_log: np.ndarray
    recency_log: np.ndarray
    # The average shopper's brand / category shares: the lifts' denominators, kept so a
    # subset of shoppers (real time) is scored against the whole population's averages.
    brand_mean: np.ndarray
    category_mean: np.ndarray
    half_life_days: float

    def rows(self, users: np.ndarray) -> UserSide:
        """The same features for a subset of users (the population averages stay)."""
        per_user = {
            f.name: getattr(self, f.name)[users]
            for f in fields(self)
            if f.name not in ("brand_mean", "category_mean", "half_life_days")
        }
        return replace(self, **per_user)


def user_side(
    act: Activity,
    table: FeatureTable,
    half_life_days: float,
    means: tuple[np.ndarray, np.ndarray] | None = None,
) -> UserSide:
    """Everything user-dependent, from the events before `table.ref`."""
    # `means` (brand, category): a subset's lifts divide by the whole population's averages.
    ref = table.ref
    brands = affinity(act, ref, half_life_days, "brand")
    categories = affinity(act, ref, half_life_days, "category")
    bought = (act.ts < ref) & (act.etype == PURCHASE) & (act.brand >= 0)
    buyer = sparse.csr_matrix(
        (np.ones(int(bought.sum())), (act.user[bought], act.brand[bought])), shape=brands.shape
    )
    buyer.data[:] = 1.0
    raw = affinity(act, ref, half_life_days, "brand", shares=False)
    brand_mean, category_mean = means or (_mean_share(brands), _mean_share(categories))
    return UserSide(
        brand_lift=_lift(brands, brand_mean),
        category_lift=_lift(categories, category_mean),
        brand_events=sparse.csr_matrix(raw.log1p()),
        brand_share=brands,
        brand_top=top_mask(brands, TOP_BRANDS),
        category_share=categories,
        category_top=top_mask(categories, TOP_CATEGORIES),
        brand_buyer=sparse.csr_matrix(buyer > 0, dtype=np.float64),
        events_log=np.log1p(table.events),
        recency_log=table.column("recency_days_log"),
        brand_mean=brand_mean,
        category_mean=category_mean,
        half_life_days=half_life_days,
    )


def _mean_share(shares: sparse.csr_matrix) -> np.ndarray:
    """Each label's average share over the users with any events."""
    users = max(int((np.diff(shares.indptr) > 0).sum()), 1)
    return np.asarray(shares.sum(axis=0)).ravel() / users


def _lift(shares: sparse.csr_matrix, mean: np.ndarray) -> sparse.csr_matrix:
    """log1p(a user's share of a label / the average share of that label)."""
    out = sparse.csr_matrix(shares, copy=True)
    out.data = np.log1p(out.data / np.maximum(mean[out.indices], 1e-9))
    return out


@dataclass
class CampaignSide:
    brand: np.ndarray  # code into the activity's brands, -1 when unknown
    category: np.ndarray
    ctr: np.ndarray  # smoothed CTR

    @classmethod
    def build(cls, act: Activity, campaigns: Campaigns, ctr: np.ndarray) -> CampaignSide:
        brand_ix = {b: k for k, b in enumerate(act.brands)}
        cat_ix = {c: k for k, c in enumerate(act.categories)}
        return cls(
            brand=np.array([brand_ix.get(b or "", -1) for b in campaigns.brand], np.int64),
            category=np.array([cat_ix.get(c or "", -1) for c in campaigns.category], np.int64),
            ctr=ctr,
        )


class CFScorer:
    """Mean CF score of shoppers for each campaign's items, from the live recommender.

    Factor models score from their user factors, item-item models from the user's confidence
    row; a shopper the model has not seen (or a model kind it cannot read) scores 0.
    """

    def __init__(
        self,
        model: Any,
        matrix: Any,
        to_model_user: np.ndarray,
        catalog: Catalog,
        campaigns: Campaigns,
    ) -> None:
        self.model, self.matrix, self.to_model_user = model, matrix, to_model_user
        items, owners = [], []
        for c, (item_ids, brand) in enumerate(zip(campaigns.items, campaigns.brand, strict=True)):
            codes = [catalog.index[i] for i in item_ids if i in catalog.index]
            if not codes and brand:  # no items listed: the brand's first few catalog items
                codes = [k for k, b in enumerate(catalog.brand) if b == brand][:20]
            items += codes
            owners += [c] * len(codes)
        self.items = np.asarray(items, dtype=np.int64)
        counts = np.bincount(np.asarray(owners, np.int64), minlength=len(campaigns))
        weights = 1.0 / np.maximum(counts[owners], 1) if owners else np.empty(0)
        self.mean = sparse.csr_matrix(
            (weights, (np.arange(len(owners)), owners)), shape=(len(owners), len(campaigns))
        )
        # Dense (items x campaigns): a BLAS product beats a sparse one for score blocks.
        self.mean_dense = self.mean.toarray()
        self.scale = 1.0
        sample = self._raw(np.flatnonzero(to_model_user >= 0)[:5000])
        spread = float(np.std(sample)) if sample.size else 0.0
        self.scale = spread if spread > 1e-9 else 1.0

    def _item_scores(self, rows: np.ndarray) -> np.ndarray | None:
        model = self.model
        inner = getattr(model, "model", None)
        if inner is not None and hasattr(inner, "user_factors"):
            users = np.asarray(inner.user_factors)[rows]
            return np.asarray(users @ np.asarray(inner.item_factors)[self.items].T)
        if hasattr(model, "weights") and self.matrix is not None:
            block = self.matrix[rows] @ model.weights[:, self.items]
            return np.asarray(block.toarray() if sparse.issparse(block) else block)
        if hasattr(model, "counts"):
            return np.tile(np.asarray(model.counts)[self.items], (len(rows), 1))
        return None

    def _raw(self, users: np.ndarray) -> np.ndarray:
        out = np.zeros((len(users), self.mean.shape[1]), dtype=np.float64)
        if self.model is None or not len(self.items):
            return out
        rows = self.to_model_user[users]
        seen = rows >= 0
        if seen.any():
            scores = self._item_scores(rows[seen])
            if scores is not None:
                out[seen] = scores @ self.mean_dense
        return out

    def block(self, users: np.ndarray) -> np.ndarray:
        """(len(users), campaigns) scores on the common scale."""
        return self._raw(users) / self.scale

    def from_item_scores(self, scores: np.ndarray) -> np.ndarray:
        """Like `block`, from shoppers' scores of `self.items` computed elsewhere (real time)."""
        return np.asarray(scores, np.float64) @ self.mean_dense / self.scale

    def detached(self) -> CFScorer:
        """A copy for `from_item_scores` only, without the rebuild's users."""
        out = copy.copy(self)  # the users' confidence matrix can be large: not kept
        out.matrix, out.to_model_user = None, np.empty(0, np.int64)
        return out


class FixedCF:
    """CF scores computed beforehand for a block of shoppers, in user-code order."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def block(self, users: np.ndarray) -> np.ndarray:
        return self.values[users]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _gather(matrix: sparse.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    out = np.zeros(len(rows))
    ok = cols >= 0
    if ok.any():
        out[ok] = np.asarray(matrix[rows[ok], cols[ok]]).ravel()
    return out


def pair_features(
    user: UserSide, camp: CampaignSide, cf: CFScorer | None, users: np.ndarray, camps: np.ndarray
) -> np.ndarray:
    """AD_FEATURES for aligned arrays of (user code, campaign code)."""
    brand, category = camp.brand[camps], camp.category[camps]
    cf_col = np.zeros(len(users))
    if cf is not None:
        for start in range(0, len(users), CHUNK_USERS * 4):
            part = slice(start, start + CHUNK_USERS * 4)
            uniq, inverse = np.unique(users[part], return_inverse=True)
            cf_col[part] = cf.block(uniq)[inverse, camps[part]]
    return np.column_stack(
        [
            _gather(user.brand_lift, users, brand),
            _gather(user.category_lift, users, category),
            _gather(user.brand_events, users, brand),
            _gather(user.brand_share, users, brand),
            _gather(user.brand_top, users, brand),
            _gather(user.category_share, users, category),
            _gather(user.category_top, users, category),
            _gather(user.brand_buyer, users, brand),
            cf_col,
            _logit(camp.ctr[camps]),
            user.events_log[users],
            user.recency_log[users],
        ]
    )


def _block(matrix: sparse.csr_matrix, users: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """matrix[users, cols] as a dense (users, cols) block; columns coded -1 are zero."""
    out = np.asarray(matrix[users][:, np.maximum(cols, 0)].toarray(), dtype=np.float64)
    out[:, cols < 0] = 0.0
    return out


def grid_features(
    user: UserSide,
    camp: CampaignSide,
    cf: CFScorer | FixedCF | None,
    users: np.ndarray,
    camps: np.ndarray,
) -> np.ndarray:
    """AD_FEATURES for every user x campaign, shaped (len(users) * len(camps), features) in
    user-major order; the same values as pair_features, sliced by blocks (much faster)."""
    brand, category = camp.brand[camps], camp.category[camps]
    shape = (len(users), len(camps))
    cf_block = cf.block(users)[:, camps] if cf is not None else np.zeros(shape)
    blocks = [
        _block(user.brand_lift, users, brand),
        _block(user.category_lift, users, category),
        _block(user.brand_events, users, brand),
        _block(user.brand_share, users, brand),
        _block(user.brand_top, users, brand),
        _block(user.category_share, users, category),
        _block(user.category_top, users, category),
        _block(user.brand_buyer, users, brand),
        cf_block,
        np.broadcast_to(_logit(camp.ctr[camps]), shape),
        np.broadcast_to(user.events_log[users][:, None], shape),
        np.broadcast_to(user.recency_log[users][:, None], shape),
    ]
    return np.stack([b.reshape(-1) for b in blocks], axis=1)
