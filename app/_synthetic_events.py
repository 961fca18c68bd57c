"""The vectorised machinery behind app.synthetic: shoppers, sessions, funnels, ad traffic.

Each step returns events as numpy columns (app._synthetic_columns); app.synthetic turns
them into API dicts once, in time order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app._synthetic_columns import cols, concat

DAY = 86_400.0
MARGIN = 7_200.0  # sessions start >= 2 h before `end`; the longest one lasts under 1 h
EXPLORE = 0.15  # share of sessions in a random category
BRAND_SESSION = 0.6  # share of favourite-category sessions spent on a favourite brand
BRAND_VIEW = 0.8  # in such a session, share of views on that brand (the rest: its category)
# Ad clicks: logit = AD_BASE + campaign offset + AD_BRAND * brand match + AD_CATEGORY * category.
AD_BASE, AD_BRAND, AD_CATEGORY = -4.0, 2.2, 1.3
AD_SHARE = 0.15  # share of a shopper's events that are ad traffic (when ads are on)
EVENTS_PER_VIEW = 1.66  # views plus the funnel events they lead to, on average
VIEWS_PER_SESSION = 3.2


@dataclass
class Shop:
    categories: list[str]
    brands: list[str]
    items: list[dict[str, Any]]
    item_cat: np.ndarray
    item_brand: np.ndarray
    price: np.ndarray
    log_median: np.ndarray  # log of the item's category median price
    popularity: np.ndarray


@dataclass
class People:
    fav_cat: np.ndarray  # (users, 2), -1 padded
    fav_brand: np.ndarray  # (users, 3), -1 padded
    fav_brand_cat: np.ndarray  # (users, 3): a favourite category each favourite brand sells in
    likes_cat: np.ndarray  # (users, categories) bool
    likes_brand: np.ndarray  # (users, brands) bool
    spend: np.ndarray
    price_sensitivity: np.ndarray
    activity: np.ndarray  # relative activity, mean 1 over warm shoppers
    cold: np.ndarray
    churned: np.ndarray
    first_age: np.ndarray  # seconds before `end` of the shopper's first possible event
    last_age: np.ndarray  # ... and of the last one
    age: np.ndarray


@dataclass
class Campaigns:
    rows: list[dict[str, Any]]
    brand: np.ndarray
    category: np.ndarray
    items: np.ndarray  # (campaigns, 20) item indexes, -1 padded
    offset: np.ndarray  # campaign's own appeal on the logit scale


class AdTables:
    """Everything the true click probability reads."""

    def __init__(self, people: People, camps: Campaigns):
        self.people, self.camps = people, camps

    def p_click(self, users: np.ndarray, campaigns: np.ndarray) -> np.ndarray:
        brand = self.people.likes_brand[users, self.camps.brand[campaigns]]
        category = self.people.likes_cat[users, self.camps.category[campaigns]]
        logit = AD_BASE + self.camps.offset[campaigns] + AD_BRAND * brand + AD_CATEGORY * category
        return 1.0 / (1.0 + np.exp(-logit))


def make_people(
    rng: np.random.Generator,
    shop: Shop,
    n: int,
    days: int,
    churn_days: int,
    churn_fraction: float,
    cold_fraction: float,
) -> People:
    n_cat, n_brand = len(shop.categories), len(shop.brands)
    fav = np.full((n, 2), -1, dtype=np.int64)
    fav[:, 0] = rng.integers(0, n_cat, n)
    second = (rng.random(n) < 0.5) & (n_cat > 1)
    fav[second, 1] = (fav[second, 0] + rng.integers(1, max(n_cat, 2), second.sum())) % n_cat
    likes_cat = np.zeros((n, n_cat), dtype=bool)
    likes_cat[np.arange(n), fav[:, 0]] = True
    likes_cat[np.flatnonzero(second), fav[second, 1]] = True
    # Favourite brands: 1-3 brands that sell in a favourite category, bigger ones likelier
    # (Gumbel top-k sampling without replacement, weights = items in those categories).
    count = np.zeros((n_brand, n_cat))
    np.add.at(count, (shop.item_brand, shop.item_cat), 1.0)
    weight = likes_cat.astype(float) @ count.T  # (users, brands)
    with np.errstate(divide="ignore"):
        score = np.log(weight) + rng.gumbel(size=weight.shape)
    top = np.argsort(-score, axis=1)[:, :3]
    wanted = rng.integers(1, 4, n)
    ok = (np.arange(3) < wanted[:, None]) & np.isfinite(np.take_along_axis(score, top, 1))
    ok[:, 0] |= True  # someone whose categories sell nothing still likes the top brand
    fav_brand = np.where(ok, top, -1)
    likes_brand = np.zeros((n, n_brand), dtype=bool)
    rows, slots = np.nonzero(ok)
    likes_brand[rows, fav_brand[rows, slots]] = True
    # For each favourite brand, a favourite category where it has items (-1: none).
    b = np.maximum(fav_brand, 0)
    has0 = count[b, fav[:, [0]]] > 0
    has1 = (fav[:, [1]] >= 0) & (count[b, np.maximum(fav[:, [1]], 0)] > 0)
    take1 = has1 & (~has0 | (rng.random((n, 3)) < 0.5))
    fav_brand_cat = np.where(take1, fav[:, [1]], np.where(has0, fav[:, [0]], -1))
    fav_brand_cat[fav_brand < 0] = -1
    age = rng.integers(18, 76, n)
    spend = np.exp(rng.normal(0.008 * (age - 40), 0.5))
    cold = rng.random(n) < cold_fraction
    churned = ~cold & (rng.random(n) < churn_fraction)
    activity = np.exp(rng.normal(-0.32, 0.8, n))  # lognormal with mean 1
    span = days * DAY
    # A quarter of the warm shoppers sign up during the period; churned ones were there first.
    late = ~churned & (rng.random(n) < 0.25)
    first_age = np.where(late, MARGIN + 600 + rng.random(n) * (span - MARGIN - 600), span)
    gap = rng.random(n) * max(days - churn_days - 1, 0) / 4 * DAY
    last_age = np.where(churned, churn_days * DAY + MARGIN + gap, MARGIN)
    return People(fav, fav_brand, fav_brand_cat, likes_cat, likes_brand, spend,
                  rng.uniform(0.0, 1.5, n), activity, cold, churned, first_age, last_age,
                  age)  # fmt: skip


def make_campaigns(rng: np.random.Generator, shop: Shop, n: int, prefix: str) -> Campaigns:
    n_brand = len(shop.brands)
    rows, brand, category = [], np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    items = np.full((n, 20), -1, dtype=np.int64)
    inactive = n // 10
    for c in range(n):
        b = c % n_brand
        own = np.flatnonzero(shop.item_brand == b)
        cats = np.bincount(shop.item_cat[own], minlength=len(shop.categories))
        cat = int(np.argmax(cats)) if len(own) else int(c % len(shop.categories))
        chosen = own[shop.item_cat[own] == cat][:20]
        if not len(chosen):  # a brand with no items promotes a few of the catalog's
            chosen = np.arange(min(5, len(shop.items)))
        brand[c], category[c] = b, cat
        items[c, : len(chosen)] = chosen
        rows.append({
            "campaign_id": f"{prefix}c{c:03d}",
            "brand": shop.brands[b],
            "category": shop.categories[cat],
            "item_ids": [shop.items[i]["item_id"] for i in chosen],
            "bid": round(float(rng.uniform(0.2, 2.0)), 2),
            "budget": float(rng.integers(100, 5000)),
            "active": c < n - inactive,
        })  # fmt: skip
    return Campaigns(rows, brand, category, items, rng.normal(0.0, 0.3, n))


def _pool_sample(rng: np.random.Generator, shop: Shop, pool: np.ndarray) -> np.ndarray:
    """One item per entry of `pool` (c: category c, n_cat + b*n_cat + c: brand b in c)."""
    n_cat = len(shop.categories)
    key = shop.item_cat
    u = rng.random(len(pool))
    out = np.empty(len(pool), dtype=np.int64)
    everything = np.arange(len(shop.items))
    for p in np.unique(pool).tolist():
        if p < n_cat:
            members = np.flatnonzero(key == p)
        else:
            b, c = divmod(p - n_cat, n_cat)
            members = np.flatnonzero((shop.item_brand == b) & (key == c))
        members = members if len(members) else everything
        cdf = np.cumsum(shop.popularity[members])
        rows = np.flatnonzero(pool == p)
        pos = np.searchsorted(cdf, u[rows] * cdf[-1], side="right")
        out[rows] = members[np.minimum(pos, len(members) - 1)]
    return out


def browse(
    rng: np.random.Generator,
    shop: Shop,
    people: People,
    events_per_user: float,
    ads: bool,
    recs: bool,
) -> dict[str, np.ndarray]:
    """Sessions of views and the clicks, carts, purchases, removals and ratings they lead to."""
    n = len(people.cold)
    n_cat = len(shop.categories)
    browse_events = events_per_user * (1 - AD_SHARE if ads else 1.0)
    warm_share = max(1.0 - people.cold.mean(), 1e-9)
    # Cold shoppers bring ~2 events each; the warm ones carry the rest of the budget.
    per_warm = max(browse_events - 2.0 * people.cold.mean(), 1.0) / warm_share
    sessions_mean = per_warm / (EVENTS_PER_VIEW * VIEWS_PER_SESSION)
    lam = np.maximum(people.activity * sessions_mean - 1.0, 0.0)
    n_sess = np.where(people.cold, 1, 1 + rng.poisson(lam))
    s_user = np.repeat(np.arange(n), n_sess)
    n_s = len(s_user)
    window = people.first_age[s_user] - people.last_age[s_user] - 60.0
    s_age = people.last_age[s_user] + rng.random(n_s) * window
    explore = rng.random(n_s) < EXPLORE
    n_fav = 1 + (people.fav_cat[:, 1] >= 0)
    fav_cat = people.fav_cat[s_user, (rng.random(n_s) * n_fav[s_user]).astype(np.int64)]
    n_fb = (people.fav_brand >= 0).sum(1)
    k = (rng.random(n_s) * n_fb[s_user]).astype(np.int64)
    s_brand, s_brand_cat = people.fav_brand[s_user, k], people.fav_brand_cat[s_user, k]
    brand_mode = ~explore & (rng.random(n_s) < BRAND_SESSION) & (s_brand_cat >= 0)
    s_cat = np.where(
        explore, rng.integers(0, n_cat, n_s), np.where(brand_mode, s_brand_cat, fav_cat)
    )
    cold_s = people.cold[s_user]
    n_v = np.where(cold_s, rng.integers(1, 4, n_s), np.clip(1 + rng.poisson(2.2, n_s), 1, 12))
    v_sess = np.repeat(np.arange(n_s), n_v)
    n_views = len(v_sess)
    on_brand = brand_mode[v_sess] & (rng.random(n_views) < BRAND_VIEW)
    pool = np.where(on_brand, n_cat + s_brand[v_sess] * n_cat + s_cat[v_sess], s_cat[v_sess])
    item = _pool_sample(rng, shop, pool)
    user = s_user[v_sess]
    # In-session clock: each view 5-120 s after the previous one.
    gaps = rng.uniform(5, 120, n_views)
    cum = np.cumsum(gaps)
    first = np.cumsum(n_v) - n_v
    v_age = s_age[v_sess] - (cum - (cum[first] - gaps[first])[v_sess])
    likes_b = people.likes_brand[user, shop.item_brand[item]]
    likes_c = people.likes_cat[user, shop.item_cat[item]]
    cold_v = cold_s[v_sess]
    clicked = ~cold_v & (rng.random(n_views) < 0.22 + 0.12 * likes_c + 0.12 * likes_b)
    carted = clicked & (rng.random(n_views) < 0.35)
    rel_price = np.log(shop.price[item]) - shop.log_median[item]
    p_buy = 0.45 * np.sqrt(people.spend[user]) * (1 + 0.25 * likes_b)
    p_buy *= np.exp(-people.price_sensitivity[user] * rel_price)
    bought = carted & (rng.random(n_views) < np.clip(p_buy, 0.02, 0.95))
    removed = carted & ~bought & (rng.random(n_views) < 0.3)
    rated = bought & (rng.random(n_views) < 0.1)
    qty = np.clip(1 + rng.poisson(0.25 * people.spend[user]), 1, 6)
    click_age = v_age - rng.uniform(2, 30, n_views)
    cart_age = click_age - rng.uniform(5, 60, n_views)
    buy_age = cart_age - rng.uniform(30, 600, n_views)
    dwell = np.round(np.exp(rng.normal(3.0 + 0.5 * clicked, 0.7)), 1)
    stars = np.clip(np.round(rng.normal(3.6 + 1.0 * likes_b, 0.8)), 1, 5)
    source = rng.choice(3, size=n_s, p=[0.6, 0.35, 0.05])[v_sess]
    parts = [
        cols(v_age, "view", user, item, dwell=dwell, source=source),
        cols(click_age, "click", user, item, source=source, mask=clicked),
        cols(cart_age, "add_to_cart", user, item, qty=qty, source=source, mask=carted),
        cols(cart_age - rng.uniform(60, 1800, n_views), "remove_from_cart", user, item,
              qty=qty, source=source, mask=removed),
        cols(buy_age, "purchase", user, item, qty=qty, amount=np.round(shop.price[item] * qty, 2),
              source=source, mask=bought),
        cols(buy_age - rng.uniform(60, 600, n_views), "rating", user, item, value=stars,
              source=source, mask=rated),
    ]  # fmt: skip
    if recs:
        # A few sessions open on a recommendation list; some shoppers click its first item.
        shown = ~cold_s & (rng.random(n_s) < 0.05)
        rec_click = shown & (rng.random(n_s) < 0.3)
        req = np.arange(n_s)
        parts.append(cols(s_age + 1.0, "rec_impression", s_user, request=req, mask=shown))
        parts.append(cols(v_age[first] + 0.5, "rec_click", s_user, item[first], request=req,
                           mask=rec_click))  # fmt: skip
    return concat(*parts)


def advertise(
    rng: np.random.Generator,
    shop: Shop,
    people: People,
    camps: Campaigns,
    tables: AdTables,
    events_per_user: float,
) -> dict[str, np.ndarray]:
    """Impressions of random campaigns to warm shoppers; clicks and conversions by true P."""
    n = len(people.cold)
    # Clicks and conversions add ~5% to the impressions; cold shoppers see no ads.
    ad_mean = events_per_user * AD_SHARE / 1.05 / max(1.0 - people.cold.mean(), 1e-9)
    per_user = np.where(people.cold, 0.0, people.activity * ad_mean)
    n_imp = rng.poisson(per_user)
    user = np.repeat(np.arange(n), n_imp)
    m = len(user)
    campaign = rng.integers(0, len(camps.rows), m)
    age = people.last_age[user] + rng.random(m) * (people.first_age[user] - people.last_age[user])
    clicked = rng.random(m) < tables.p_click(user, campaign)
    likes_b = people.likes_brand[user, camps.brand[campaign]]
    converted = clicked & (rng.random(m) < 0.12 + 0.15 * likes_b)
    slots = np.maximum((camps.items[campaign] >= 0).sum(1), 1)
    item = camps.items[campaign, (rng.random(m) * slots).astype(np.int64)]
    click_age = age - rng.uniform(1, 20, m)
    amount = np.round(shop.price[np.maximum(item, 0)], 2)
    return concat(
        cols(age, "ad_impression", user, campaign=campaign),
        cols(click_age, "ad_click", user, campaign=campaign, mask=clicked),
        cols(click_age - rng.uniform(60, 1800, m), "ad_conversion", user, item,
              campaign=campaign, amount=amount, mask=converted),
    )  # fmt: skip
