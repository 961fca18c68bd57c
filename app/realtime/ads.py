"""Rescoring shoppers' ads in real time against the last rebuild's ad model.

The click and conversion models, campaign side and population averages stay fixed; the user
side (affinities, activity) is rebuilt from the batch's latest events with the rebuild's own
feature code, and the CF score comes from the fresh recommender scores of the list update.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from app.config import Settings
from app.training.ad_features import CFScorer, FixedCF, user_side
from app.training.ads import AdModel
from app.training.dataset import Catalog, Interactions
from app.training.profile_build import ProfileOutput
from app.training.profile_data import Users
from app.training.profiles import ItemAttributes, activity, features_at, item_attributes
from app.training.publish_profiles import active_campaigns


@dataclass
class LiveAds:
    """The rebuild's ad model without its per-user state, and what scoring a batch needs."""

    model: AdModel  # user side: no rows, only the population averages; cf: detached
    cf: CFScorer | None
    active: np.ndarray  # campaign codes, in the published adm column order
    items: ItemAttributes

    @property
    def cf_items(self) -> np.ndarray:
        """Catalog codes whose recommender scores make up the CF feature."""
        return self.cf.items if self.cf is not None else np.empty(0, np.int64)


def live_ads(res: ProfileOutput, catalog: Catalog) -> LiveAds:
    """Keep what real time needs from a rebuild's profile stage (per-user arrays dropped)."""
    ads = res.ad_model
    cf = ads.cf.detached() if isinstance(ads.cf, CFScorer) else None
    slim = replace(ads, user=ads.user.rows(np.empty(0, np.int64)), cf=None, metrics={})
    return LiveAds(slim, cf, active_campaigns(res.ads_campaigns), item_attributes(catalog))


def ad_rows(
    live: LiveAds,
    catalog: Catalog,
    cleaned: Interactions,
    item_scores: np.ndarray,
    settings: Settings,
    now: float,
) -> dict[str, bytes]:
    """float16 [p_click..., p_convert...] rows for the batch's shoppers with item events.

    cleaned: the batch's events after clean(), user codes indexing cleaned.user_ids;
    item_scores: (shoppers, len(live.cf_items)), each shopper's recommender scores of the
    campaign items as the list update computed them (zeros where it had none)."""
    users = cleaned.user_ids
    if not len(live.active) or not users:
        return {}
    index = Users(ids=list(users), attributes=[{}] * len(users))
    index.index = {u: k for k, u in enumerate(users)}
    act = activity(cleaned, catalog, index, settings.event_weights, live.items)
    n = len(users)
    # Ad features read only activity columns: no attributes or dwell times needed here.
    table = features_at(act, now, np.zeros((n, 0)), [], (np.zeros(n), np.zeros(n)))
    base = live.model.user
    user = user_side(act, table, base.half_life_days, (base.brand_mean, base.category_mean))
    cf = FixedCF(live.cf.from_item_scores(item_scores)) if live.cf is not None else None
    pc, pv = replace(live.model, user=user, cf=cf).score(np.arange(n), live.active)
    return {
        users[u]: np.stack([pc[u], pv[u]]).astype(np.float16).tobytes()
        for u in np.flatnonzero(table.events > 0).tolist()
    }
