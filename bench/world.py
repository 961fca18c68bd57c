"""A fast, vectorised shop for benchmarks: planted category/brand tastes, ~N events.

Rows go straight into Postgres with binary COPY so a benchmark spends its time on what it
measures, not on loading.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

TYPES = np.array(["view", "view", "view", "click", "click", "add_to_cart", "purchase"])


@dataclass
class BenchWorld:
    items: list[tuple[str, str, str, float]]  # item_id, category, brand, price
    users: np.ndarray  # user code per event
    item: np.ndarray  # item code per event
    etype: np.ndarray  # type name per event
    ts: np.ndarray  # datetime64[us] per event
    user_taste: np.ndarray  # planted category per user

    def __len__(self) -> int:
        return len(self.users)


def make_world(
    n_events: int,
    n_users: int | None = None,
    n_items: int = 5000,
    n_categories: int = 20,
    days: int = 90,
    seed: int = 11,
) -> BenchWorld:
    """Users draw 85% of their events from one favourite category, Zipf-popular within it."""
    rng = np.random.default_rng(seed)
    n_users = n_users or max(100, n_events // 50)
    item_category = rng.integers(0, n_categories, n_items)
    brands_per_category = 6
    item_brand = item_category * brands_per_category + rng.integers(0, brands_per_category, n_items)
    price = np.round(np.exp(rng.normal(3.5, 0.8, n_items)), 2)
    by_category = [np.flatnonzero(item_category == c) for c in range(n_categories)]
    # Activity is skewed: a few heavy shoppers, many light ones.
    activity = rng.pareto(1.5, n_users) + 1
    users = rng.choice(n_users, size=n_events, p=activity / activity.sum()).astype(np.int32)
    taste = rng.integers(0, n_categories, n_users)
    explore = rng.random(n_events) < 0.15
    category = np.where(explore, rng.integers(0, n_categories, n_events), taste[users])
    item = np.empty(n_events, dtype=np.int32)
    for c in range(n_categories):
        rows = np.flatnonzero(category == c)
        pool = by_category[c]
        rank_weights = 1.0 / np.arange(1, len(pool) + 1) ** 0.9
        item[rows] = rng.choice(pool, size=len(rows), p=rank_weights / rank_weights.sum())
    end = datetime.now(UTC) - timedelta(minutes=5)
    offsets = rng.random(n_events) * days * 86_400
    ts = np.datetime64(end.replace(tzinfo=None), "us") - (offsets * 1e6).astype("timedelta64[us]")
    items = [
        (f"i{i}", f"cat{item_category[i]}", f"brand{item_brand[i]}", float(price[i]))
        for i in range(n_items)
    ]
    return BenchWorld(items, users, item, TYPES[rng.integers(0, len(TYPES), n_events)], ts, taste)


async def copy_world(conn: object, world: BenchWorld, stop: int | None = None) -> None:
    """Load items, users and events into an empty, migrated database with binary COPY."""
    await conn.copy_records_to_table(  # type: ignore[attr-defined]
        "items",
        records=[(i, t, c, b, p) for i, c, b, p in world.items for t in [f"{b} {c} {i}"]],
        columns=["item_id", "title", "category", "brand", "price"],
    )
    n_users = int(world.users.max()) + 1
    await conn.copy_records_to_table(  # type: ignore[attr-defined]
        "users", records=[(f"u{u}",) for u in range(n_users)], columns=["user_id"]
    )
    await copy_events(conn, world, 0, len(world) if stop is None else stop)
    # Planner statistics, as autovacuum would gather them after a load this size in service.
    await conn.execute("ANALYZE")  # type: ignore[attr-defined]


async def copy_events(conn: object, world: BenchWorld, start: int, stop: int) -> None:
    """COPY events start..stop of the world (ids e{k}) into the events table."""
    part = slice(start, stop)
    stamps = world.ts[part].astype(datetime)
    rows = zip(
        world.users[part].tolist(),
        world.item[part].tolist(),
        world.etype[part].tolist(),
        stamps,
        strict=True,
    )
    records = (
        (f"e{start + k}", f"u{u}", f"i{i}", t, s.replace(tzinfo=UTC))
        for k, (u, i, t, s) in enumerate(rows)
    )
    await conn.copy_records_to_table(  # type: ignore[attr-defined]
        "events", records=records, columns=["event_id", "user_id", "item_id", "type", "ts"]
    )
