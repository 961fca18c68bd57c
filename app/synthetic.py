"""A generated shop with known structure, for the demo, tests and benchmarks.

Every shopper has planted favourite categories and brands (about 85% of their browsing),
sessions run view -> click -> add_to_cart -> purchase, some shoppers lapse (churn) before
the end, and ad clicks depend on the shopper's affinity to the campaign's brand and category.
Deterministic for a seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

CATEGORIES = (
    "shoes", "electronics", "beauty", "outdoor", "kitchen", "toys",
    "books", "fashion", "sports", "garden", "pets", "music",
)  # fmt: skip
BRAND_STEMS = (
    "north", "volt", "glow", "peak", "stride", "ember", "lumen", "oak", "tide", "nova",
    "pixel", "sable", "cedar", "aria", "bolt", "flint", "halo", "iris", "jade", "koa",
)  # fmt: skip
EXPLORE = 0.15  # share of sessions outside the shopper's favourite categories


@dataclass
class Truth:
    user_categories: dict[str, list[str]] = field(default_factory=dict)
    user_brands: dict[str, list[str]] = field(default_factory=dict)
    churned_users: set[str] = field(default_factory=set)
    user_spend_level: dict[str, float] = field(default_factory=dict)
    campaigns: dict[str, tuple[str, str]] = field(default_factory=dict)

    def affinity(self, user_id: str, campaign_id: str) -> tuple[float, float]:
        """(brand match, category match) of a shopper for a campaign, each 0 or 1."""
        brand, category = self.campaigns[campaign_id]
        return (
            float(brand in self.user_brands.get(user_id, [])),
            float(category in self.user_categories.get(user_id, [])),
        )

    def click_probability(self, user_id: str, campaign_id: str) -> float:
        """The true P(ad click) the generator used."""
        brand, category = self.affinity(user_id, campaign_id)
        return 1.0 / (1.0 + math.exp(-(-3.6 + 2.2 * brand + 1.3 * category)))


@dataclass
class World:
    items: list[dict[str, Any]]
    users: list[dict[str, Any]]
    campaigns: list[dict[str, Any]]
    events: list[dict[str, Any]]
    truth: Truth
    click_probability: Callable[[str, str], float] = field(init=False)

    def __post_init__(self) -> None:
        self.click_probability = self.truth.click_probability


def _catalog(rng: np.random.Generator, n_items: int, n_brands: int, n_categories: int) -> tuple:
    categories = list(CATEGORIES[:n_categories])
    brands = [
        f"{BRAND_STEMS[b % len(BRAND_STEMS)]}{'' if b < 20 else b // 20}" for b in range(n_brands)
    ]
    brand_categories = {
        b: list(rng.choice(categories, size=rng.integers(1, 4), replace=False)) for b in brands
    }
    items = []
    for i in range(n_items):
        brand = brands[int(rng.integers(0, n_brands))]
        category = str(rng.choice(brand_categories[brand]))
        price = round(
            float(np.exp(rng.normal(3.2 + 0.15 * (categories.index(category) % 4), 0.6))), 2
        )
        items.append({
            "item_id": f"i{i:05d}",
            "title": f"{brand.title()} {category} #{i}",
            "category": category,
            "brand": brand,
            "price": price,
            "tags": [category, brand, "sale" if rng.random() < 0.1 else "regular"],
            "kind": "content" if rng.random() < 0.03 else "product",
            "available": bool(rng.random() > 0.03),
        })  # fmt: skip
    return categories, brands, items


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
    sessions_per_user: float = 6.0,
) -> World:
    """Build a shop; `sessions_per_user` (mean) sizes it: about 5 events a session."""
    rng = np.random.default_rng(seed)
    end = end or datetime.now(UTC) - timedelta(minutes=1)
    categories, brands, items = _catalog(rng, n_items, n_brands, min(n_categories, len(CATEGORIES)))
    by_category: dict[str, list[int]] = {c: [] for c in categories}
    for idx, item in enumerate(items):
        by_category[item["category"]].append(idx)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8  # Zipf-like; item order is random
    rng.shuffle(popularity)
    truth = Truth()
    users, events = [], []
    for u in range(n_users):
        user_id = f"u{u:06d}"
        favs = [str(c) for c in rng.choice(categories, size=rng.integers(1, 3), replace=False)]
        fav_brands = sorted({items[i]["brand"] for c in favs for i in by_category[c]} or brands)
        fav_brands = [
            str(b)
            for b in rng.choice(
                fav_brands, size=min(len(fav_brands), int(rng.integers(1, 4))), replace=False
            )
        ]
        spend = float(np.exp(rng.normal(0, 0.5)))
        churned = rng.random() < churn_fraction
        truth.user_categories[user_id], truth.user_brands[user_id] = favs, fav_brands
        truth.user_spend_level[user_id] = spend
        if churned:
            truth.churned_users.add(user_id)
        users.append({
            "user_id": user_id,
            "attributes": {
                "age": int(rng.integers(18, 75)),
                "gender": str(rng.choice(["f", "m", "x"], p=[0.5, 0.45, 0.05])),
                "country": str(rng.choice(["DE", "FR", "NL", "US", "GB"])),
                "signup_channel": str(rng.choice(["organic", "ads", "referral"])),
            },
        })  # fmt: skip
        # Sessions start at least two hours before `end`, so no event lies in the future.
        last_day = days - (churn_days + rng.uniform(0, days / 3) if churned else 1 / 12)
        n_sessions = int(rng.pareto(1.8) * sessions_per_user * 0.45) + 1
        for _ in range(n_sessions):
            start = (
                end
                - timedelta(days=days)
                + timedelta(days=float(rng.uniform(0, max(last_day, 0.5))))
            )
            category = (
                favs[int(rng.integers(0, len(favs)))]
                if rng.random() > EXPLORE
                else str(rng.choice(categories))
            )
            pool = by_category[category] or list(range(n_items))
            weights = np.array(
                [popularity[i] * (4.0 if items[i]["brand"] in fav_brands else 1.0) for i in pool]
            )
            viewed = rng.choice(
                pool,
                size=min(len(pool), int(rng.integers(1, 6))),
                replace=False,
                p=weights / weights.sum(),
            )
            t = start
            for idx in viewed:
                item = items[int(idx)]
                t += timedelta(seconds=float(rng.uniform(5, 120)))
                _add(
                    events,
                    user_id,
                    item,
                    "view",
                    t,
                    dwell_seconds=round(float(rng.uniform(2, 90)), 1),
                )
                if rng.random() < 0.35:
                    t += timedelta(seconds=float(rng.uniform(2, 30)))
                    _add(events, user_id, item, "click", t)
                    if rng.random() < 0.4:
                        t += timedelta(seconds=float(rng.uniform(5, 60)))
                        quantity = int(rng.integers(1, 3))
                        _add(events, user_id, item, "add_to_cart", t, quantity=quantity)
                        if rng.random() < 0.55 * min(spend, 1.5):
                            t += timedelta(seconds=float(rng.uniform(30, 600)))
                            amount = round(item["price"] * quantity, 2)
                            _add(
                                events,
                                user_id,
                                item,
                                "purchase",
                                t,
                                quantity=quantity,
                                amount=amount,
                            )
    campaigns = _campaigns(rng, items, brands, n_campaigns, truth)
    if ad_events:
        _ad_events(rng, events, users, campaigns, truth, end, days)
    events.sort(key=lambda e: e["timestamp"])
    for k, event in enumerate(events):
        event["event_id"] = f"s{seed}-{k:08d}"
        event["timestamp"] = event["timestamp"].isoformat()
    return World(items=items, users=users, campaigns=campaigns, events=events, truth=truth)


def _add(
    events: list[dict[str, Any]],
    user: str,
    item: dict[str, Any],
    kind: str,
    t: datetime,
    **extra: Any,
) -> None:
    events.append(
        {
            "event_id": "",
            "user_id": user,
            "item_id": item["item_id"],
            "type": kind,
            "timestamp": t,
            **extra,
        }
    )


def _campaigns(
    rng: np.random.Generator, items: list[dict[str, Any]], brands: list[str], n: int, truth: Truth
) -> list[dict[str, Any]]:
    campaigns = []
    for c in range(n):
        brand = brands[c % len(brands)]
        brand_items = [i for i in items if i["brand"] == brand] or items[:5]
        category = brand_items[0]["category"]
        campaign_id = f"c{c:03d}"
        truth.campaigns[campaign_id] = (brand, category)
        campaigns.append({
            "campaign_id": campaign_id,
            "brand": brand,
            "category": category,
            "item_ids": [i["item_id"] for i in brand_items[:20]],
            "bid": round(float(rng.uniform(0.2, 2.0)), 2),
            "budget": float(rng.integers(100, 5000)),
            "active": c < n - 2,
        })  # fmt: skip
    return campaigns


def _ad_events(
    rng: np.random.Generator,
    events: list[dict[str, Any]],
    users: list[dict[str, Any]],
    campaigns: list[dict[str, Any]],
    truth: Truth,
    end: datetime,
    days: int,
) -> None:
    user_ids = [u["user_id"] for u in users]
    for campaign in campaigns:
        reach = rng.choice(
            user_ids, size=min(len(user_ids), max(20, len(user_ids) // 3)), replace=False
        )
        for user in reach:
            t = end - timedelta(days=float(rng.uniform(0, days)))
            base = {"campaign_id": campaign["campaign_id"], "item_id": None}
            events.append(
                {
                    "event_id": "",
                    "user_id": str(user),
                    "type": "ad_impression",
                    "timestamp": t,
                    **base,
                }
            )
            if rng.random() < truth.click_probability(str(user), campaign["campaign_id"]):
                events.append(
                    {
                        "event_id": "",
                        "user_id": str(user),
                        "type": "ad_click",
                        "timestamp": t + timedelta(seconds=3),
                        **base,
                    }
                )
                if rng.random() < 0.2:
                    events.append(
                        {
                            "event_id": "",
                            "user_id": str(user),
                            "type": "ad_conversion",
                            "timestamp": t + timedelta(minutes=5),
                            "amount": round(float(rng.uniform(10, 150)), 2),
                            **base,
                        }
                    )


def iter_event_batches(
    events: list[dict[str, Any]], size: int = 1000
) -> Iterator[list[dict[str, Any]]]:
    """The events in API-sized batches."""
    for start in range(0, len(events), size):
        yield events[start : start + size]
