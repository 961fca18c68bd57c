"""A small shop with planted tastes: each shopper group buys from one category only."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

CATEGORIES = ("shoes", "electronics", "beauty")
BRANDS = {"shoes": ("stride", "peak"), "electronics": ("volt", "ohm"), "beauty": ("glow", "dew")}


def planted_world(
    prefix: str, users_per_group: int = 25, items_per_category: int = 24, seed: int = 3
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
    """Items, events and each user's planted category; ids carry `prefix` to stay unique."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    items = []
    for category in CATEGORIES:
        for n in range(items_per_category):
            brand = BRANDS[category][n % 2]
            items.append(
                {
                    "item_id": f"{prefix}-{category}-{n}",
                    "title": f"{brand} {category} {n}",
                    "category": category,
                    "brand": brand,
                    "price": round(rng.uniform(10, 200), 2),
                    "tags": [category, brand],
                    "kind": "product",
                    "available": True,
                }
            )
    by_category = {c: [i for i in items if i["category"] == c] for c in CATEGORIES}
    events: list[dict[str, Any]] = []
    taste: dict[str, str] = {}
    for category in CATEGORIES:
        for u in range(users_per_group):
            user = f"{prefix}-{category}-fan-{u}"
            taste[user] = category
            # Popular items inside a category are shared, so co-occurrence has structure.
            pool = by_category[category]
            weights = [1.0 / (1 + k) ** 0.7 for k in range(len(pool))]
            picks = rng.choices(pool, weights=weights, k=12)
            for k, item in enumerate(picks):
                ts = now - timedelta(days=rng.uniform(0.1, 40), minutes=k)
                kind = rng.choice(["view", "view", "click", "add_to_cart", "purchase"])
                event: dict[str, Any] = {
                    "event_id": f"{prefix}-ev-{len(events)}",
                    "user_id": user,
                    "item_id": item["item_id"],
                    "type": kind,
                    "timestamp": ts.isoformat(),
                }
                if kind == "purchase":
                    event["amount"] = item["price"]
                events.append(event)
    return items, events, taste
