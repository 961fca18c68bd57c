"""A generated shop with known structure, for the demo, tests and benchmarks.

Every shopper has planted favourite categories (1-2) and brands (1-3) that draw about 85% of
their sessions; sessions run view -> click -> add_to_cart -> purchase; some shoppers are cold
(1-3 events), some lapse (churn) `churn_days` before the end; ad clicks follow a logistic of
the shopper's affinity to the campaign's brand and category. Everything is vectorised with
numpy and deterministic for a seed (the same ids, items and order whatever `end` is).

Size: `events_per_user` is the mean number of events per shopper (ads included), so about
`n_users * events_per_user` events come out; `world_with_events(n)` picks `n_users` for you.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from app import _synthetic_columns as columns
from app import _synthetic_events as gen

# name: (median price, log-sigma of price, descriptive tags)
CATEGORIES: dict[str, tuple[float, float, tuple[str, ...]]] = {
    "shoes": (70, 0.5, ("running", "leather", "kids", "trail")),
    "electronics": (180, 0.9, ("wireless", "4k", "portable", "smart")),
    "beauty": (22, 0.6, ("vegan", "skincare", "fragrance", "organic")),
    "outdoor": (60, 0.8, ("camping", "waterproof", "hiking", "lightweight")),
    "kitchen": (35, 0.7, ("steel", "nonstick", "baking", "coffee")),
    "toys": (25, 0.6, ("wooden", "puzzle", "plush", "stem")),
    "books": (15, 0.4, ("fiction", "cookbook", "travel", "comics")),
    "fashion": (45, 0.7, ("cotton", "denim", "summer", "wool")),
    "sports": (40, 0.8, ("yoga", "fitness", "cycling", "team")),
    "garden": (30, 0.8, ("plants", "tools", "seeds", "patio")),
    "pets": (20, 0.6, ("dog", "cat", "treats", "aquarium")),
    "music": (55, 1.0, ("vinyl", "guitar", "headphones", "studio")),
}
BRAND_STEMS = (
    "north", "volt", "glow", "peak", "stride", "ember", "lumen", "oak", "tide", "nova",
    "pixel", "sable", "cedar", "aria", "bolt", "flint", "halo", "iris", "jade", "koa",
)  # fmt: skip
BRAND_SUFFIXES = ("", "co", "lab", "works")
DEFAULT_EVENTS_PER_USER = 25.0


@dataclass
class Truth:
    """The planted structure a model should recover."""

    user_categories: dict[str, list[str]] = field(default_factory=dict)
    user_brands: dict[str, list[str]] = field(default_factory=dict)
    churned_users: set[str] = field(default_factory=set)
    user_spend_level: dict[str, float] = field(default_factory=dict)
    cold_users: set[str] = field(default_factory=set)  # 1-3 events in all
    user_price_sensitivity: dict[str, float] = field(default_factory=dict)
    campaigns: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (brand, category)
    # Index arrays behind click_probability (user x category / brand membership, campaigns).
    _users: dict[str, int] = field(default_factory=dict, repr=False)
    _campaigns: dict[str, int] = field(default_factory=dict, repr=False)
    _tables: gen.AdTables | None = field(default=None, repr=False)

    def affinity(self, user_id: str, campaign_id: str) -> tuple[float, float]:
        """(brand match, category match) of a shopper for a campaign, each 0 or 1."""
        brand, category = self.campaigns[campaign_id]
        return (
            float(brand in self.user_brands.get(user_id, [])),
            float(category in self.user_categories.get(user_id, [])),
        )

    def click_probability(self, user_id: str, campaign_id: str) -> float:
        """The true P(ad click | shopper, campaign) the generator used."""
        return float(self.click_probabilities([user_id], [campaign_id])[0])

    def click_probabilities(self, user_ids: list[str], campaign_ids: list[str]) -> np.ndarray:
        """Vectorised click_probability over aligned lists of (shopper, campaign) pairs."""
        assert self._tables is not None
        users = np.array([self._users[u] for u in user_ids], dtype=np.int64)
        campaigns = np.array([self._campaigns[c] for c in campaign_ids], dtype=np.int64)
        return self._tables.p_click(users, campaigns)


@dataclass
class World:
    items: list[dict[str, Any]]
    users: list[dict[str, Any]]
    campaigns: list[dict[str, Any]]
    events: list[dict[str, Any]]
    truth: Truth
    end: datetime | None = None  # every timestamp lies before this instant

    @property
    def click_probability(self) -> Any:
        """Shortcut to `truth.click_probability`."""
        return self.truth.click_probability


def generate_world(
    n_users: int = 2000,
    n_items: int = 800,
    days: int = 60,
    seed: int = 7,
    end: datetime | None = None,
    n_brands: int = 40,
    n_categories: int = 12,
    n_campaigns: int = 20,
    churn_fraction: float = 0.15,
    churn_days: int = 14,
    ad_events: bool = True,
    *,
    events_per_user: float = DEFAULT_EVENTS_PER_USER,
    cold_fraction: float = 0.08,
    rec_events: bool = True,
    id_prefix: str = "",
) -> World:
    """Build a shop; about `n_users * events_per_user` events over the `days` before `end`.

    Ids are `{id_prefix}i00001` (items), `{id_prefix}u000001` (users), `{id_prefix}c001`
    (campaigns), `{id_prefix}s{seed}-00000001` (events, numbered in time order). Churn needs
    `days > churn_days + 1`; otherwise no shopper churns.
    """
    if min(n_users, n_items, n_brands, n_categories, days) < 1:
        raise ValueError("n_users, n_items, n_brands, n_categories and days must be positive")
    rng = np.random.default_rng(seed)
    end = (end or datetime.now(UTC)).astimezone(UTC)
    shop = _catalog(rng, n_items, n_brands, n_categories, id_prefix)
    people = gen.make_people(
        rng, shop, n_users, days, churn_days, churn_fraction if days > churn_days + 1 else 0.0,
        cold_fraction,
    )  # fmt: skip
    camps = gen.make_campaigns(rng, shop, n_campaigns, id_prefix)
    tables = gen.AdTables(people, camps)
    cols = gen.browse(rng, shop, people, events_per_user, ad_events, rec_events)
    if ad_events and n_campaigns:
        cols = columns.concat(
            cols, gen.advertise(rng, shop, people, camps, tables, events_per_user)
        )
    user_ids = [f"{id_prefix}u{u:06d}" for u in range(n_users)]
    item_ids = [i["item_id"] for i in shop.items]
    campaign_ids = [r["campaign_id"] for r in camps.rows]
    stem = f"{id_prefix}s{seed}-"
    events = columns.to_dicts(cols, item_ids, user_ids, campaign_ids, end, stem)
    truth = _truth(shop, people, camps, tables, user_ids)
    users = _users(rng, people, user_ids)
    return World(shop.items, users, camps.rows, events, truth, end)


def world_with_events(n_events: int, events_per_user: float = 50.0, **kwargs: Any) -> World:
    """A world of about `n_events` events: `n_users = n_events / events_per_user`."""
    n_users = max(1, round(n_events / events_per_user))
    return generate_world(n_users=n_users, events_per_user=events_per_user, **kwargs)


def iter_event_batches(
    events: list[dict[str, Any]], size: int = 1000
) -> Iterator[list[dict[str, Any]]]:
    """The events in API-sized batches, in order."""
    for start in range(0, len(events), size):
        yield events[start : start + size]


def _catalog(
    rng: np.random.Generator, n_items: int, n_brands: int, n_categories: int, prefix: str
) -> gen.Shop:
    names = list(CATEGORIES)
    categories = names[:n_categories] + [f"category{k}" for k in range(len(names), n_categories)]
    brands = [
        BRAND_STEMS[b % 20] + BRAND_SUFFIXES[(b // 20) % 4] + (str(b // 80) if b >= 80 else "")
        for b in range(n_brands)
    ]
    n_cat = len(categories)
    # Each brand sells in 1-3 categories; its first (primary) one covers every category in turn.
    sells = np.zeros((n_brands, n_cat), dtype=bool)
    primary = np.arange(n_brands) % n_cat
    sells[np.arange(n_brands), primary] = True
    for b in range(n_brands):
        extra = rng.choice(n_cat, size=int(rng.integers(0, 3)), replace=False)
        sells[b, extra] = True
    brand_size = 1.0 / np.arange(1, n_brands + 1) ** 0.7
    item_brand = rng.choice(n_brands, size=n_items, p=brand_size / brand_size.sum())
    own = rng.random(n_items) < 0.6
    pick = rng.random(n_items)
    item_cat = np.empty(n_items, dtype=np.int64)
    for i, b in enumerate(item_brand.tolist()):
        cats = np.flatnonzero(sells[b])
        item_cat[i] = primary[b] if own[i] else cats[int(pick[i] * len(cats))]
    spec = [
        CATEGORIES.get(c, (30.0, 0.7, ("basic", "premium", "classic", "new"))) for c in categories
    ]
    median = np.array([s[0] for s in spec])[item_cat]
    sigma = np.array([s[1] for s in spec])[item_cat]
    price = np.maximum(np.round(np.exp(rng.normal(np.log(median), sigma)), 2), 0.5)
    tag_pick = rng.integers(0, 4, size=(n_items, 2))
    sale = rng.random(n_items) < 0.1
    content = rng.random(n_items) < 0.03
    available = rng.random(n_items) > 0.03
    items = []
    for i in range(n_items):
        cat, brand = categories[item_cat[i]], brands[item_brand[i]]
        tags = [cat, brand, *sorted({spec[item_cat[i]][2][t] for t in tag_pick[i]})]
        items.append({
            "item_id": f"{prefix}i{i:05d}",
            "title": f"{brand.title()} {tags[2]} {cat} {i}",
            "category": cat,
            "brand": brand,
            "price": float(price[i]),
            "tags": [*tags, "sale"] if sale[i] else tags,
            "kind": "content" if content[i] else "product",
            "available": bool(available[i]),
        })  # fmt: skip
    # Zipf-like popularity over a random order of the catalog.
    popularity = 1.0 / rng.permutation(np.arange(1, n_items + 1)) ** 0.9
    return gen.Shop(categories, brands, items, item_cat, item_brand, price, np.log(median),
                    popularity)  # fmt: skip


def _truth(
    shop: gen.Shop, people: gen.People, camps: gen.Campaigns, tables: gen.AdTables, ids: list[str]
) -> Truth:
    truth = Truth(_users={u: k for k, u in enumerate(ids)}, _tables=tables)
    for u, user_id in enumerate(ids):
        favs = people.fav_cat[u]
        truth.user_categories[user_id] = [shop.categories[c] for c in favs[favs >= 0]]
        brands = people.fav_brand[u]
        truth.user_brands[user_id] = [shop.brands[b] for b in brands[brands >= 0]]
        truth.user_spend_level[user_id] = float(people.spend[u])
        truth.user_price_sensitivity[user_id] = float(people.price_sensitivity[u])
    truth.churned_users = {ids[u] for u in np.flatnonzero(people.churned)}
    truth.cold_users = {ids[u] for u in np.flatnonzero(people.cold)}
    for k, row in enumerate(camps.rows):
        truth.campaigns[row["campaign_id"]] = (row["brand"], row["category"])
        truth._campaigns[row["campaign_id"]] = k
    return truth


def _users(rng: np.random.Generator, people: gen.People, ids: list[str]) -> list[dict[str, Any]]:
    n = len(ids)
    gender = rng.choice(np.array(["f", "m", "x"]), size=n, p=[0.5, 0.45, 0.05])
    country = rng.choice(np.array(["DE", "FR", "NL", "US", "GB", "ES"]), size=n)
    channel = rng.choice(np.array(["organic", "ads", "referral", "social"]), size=n)
    member = rng.random(n) < 0.1 + 0.3 * (people.spend > 1.3)
    return [
        {
            "user_id": ids[u],
            "attributes": {
                "age": int(people.age[u]),
                "gender": str(gender[u]),
                "country": str(country[u]),
                "signup_channel": str(channel[u]),
                "loyalty_member": bool(member[u]),
            },
        }
        for u in range(n)
    ]
