"""A generated shop for bench/accuracy_world.py: the world, its temporal splits, the service's
matrix, and loading a time window into the service's own storage.

The world is app/synthetic.py's (shoppers with 1-2 planted favourite categories and 1-3
favourite brands drawing ~85% of their sessions, view -> click -> cart -> purchase funnels,
Zipf item popularity, cold, late-joining and churning shoppers), without ad traffic: ad events
say nothing about items and the worker does not read them, so the event budget goes to item
events. Its `end` lies `test_days` after the moment of the run, so the training window ends
now (the worker measures decay and popular windows from its newest event, the API from the
clock); the test window's events are kept in memory only, never stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from scipy import sparse

from app.config import Settings
from app.synthetic import World, generate_world
from app.training.build import preprocess_config
from app.training.dataset import TYPE_CODE, Catalog, Interactions
from app.training.evaluate import Split, temporal_split
from app.training.preprocess import clean, confidence_matrix, event_weights

DAY = 86_400.0
EVENT_BATCH = 5000  # the HTTP contract's batch limit
CATALOG_BATCH = 1000


@dataclass
class Shop:
    world: World
    events: list[dict[str, Any]]  # every generated event (item events and rec impressions)
    event_ts: np.ndarray  # seconds since the epoch, per entry of `events`
    inter: Interactions  # the item events only, as the worker reads them
    user_ids: list[str]
    item_ids: list[str]
    end: float

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.user_ids), len(self.item_ids)


def make(
    n_events: int,
    *,
    test_days: float,
    days: int = 60,
    n_items: int = 3000,
    n_brands: int = 60,
    events_per_user: float = 50.0,
    seed: int = 7,
) -> Shop:
    """About `n_events` events over `days`, the last `test_days` of them after now."""
    end = datetime.fromtimestamp(time.time() + test_days * DAY, tz=UTC)
    world = generate_world(
        n_users=max(1, round(n_events / events_per_user)),
        n_items=n_items,
        n_brands=n_brands,
        days=days,
        seed=seed,
        end=end,
        ad_events=False,
        events_per_user=events_per_user,
    )
    user_ids = [u["user_id"] for u in world.users]
    item_ids = [i["item_id"] for i in world.items]
    users = {u: k for k, u in enumerate(user_ids)}
    items = {i: k for k, i in enumerate(item_ids)}
    stamps = np.array([e["timestamp"][:-6] for e in world.events], dtype="datetime64[ms]")
    event_ts = stamps.astype(np.int64) / 1000.0
    rows = [k for k, e in enumerate(world.events) if e["type"] in TYPE_CODE]
    picked = [world.events[k] for k in rows]

    def column(key: str) -> np.ndarray:
        return np.array([e.get(key, np.nan) for e in picked], np.float32)

    inter = Interactions(
        user_ids=user_ids,
        user=np.array([users[e["user_id"]] for e in picked], np.int32),
        item=np.array([items[e["item_id"]] for e in picked], np.int32),
        etype=np.array([TYPE_CODE[e["type"]] for e in picked], np.int8),
        ts=event_ts[rows],
        quantity=column("quantity"),
        amount=column("amount"),
        value=column("value"),
    )
    return Shop(world, world.events, event_ts, inter, user_ids, item_ids, end.timestamp())


def catalog(shop: Shop) -> Catalog:
    """The items as the service's Catalog (clean() reads prices to fill purchase amounts)."""
    items = shop.world.items
    cat = Catalog(
        item_ids=list(shop.item_ids),
        category=[i["category"] for i in items],
        brand=[i["brand"] for i in items],
        kind=[i["kind"] for i in items],
        title=[i["title"] for i in items],
        tags=[i["tags"] for i in items],
        price=np.array([i["price"] for i in items], np.float32),
        available=np.array([i["available"] for i in items], bool),
    )
    cat.index = {item_id: k for k, item_id in enumerate(cat.item_ids)}
    return cat


def binary_split(shop: Shop, upto: float, cutoff: float) -> Split:
    """Item events before `upto`, split at `cutoff`: train = 1 for every user-item pair touched
    before it; targets = items a user first touched (any item event) at/after it, for users
    with a training event."""
    inter = shop.inter
    keep = inter.ts < upto
    split = temporal_split(
        inter.user[keep],
        inter.item[keep],
        np.ones(int(keep.sum()), np.float32),
        inter.ts[keep],
        *shop.shape,
        cutoff=cutoff,
    )
    split.train.data[:] = 1.0  # event counts -> touched
    return split


def service_split(shop: Shop, upto: float, cutoff: float, settings: Settings) -> Split:
    """Same targets as `binary_split`; train is the confidence matrix the worker's own
    preprocessing makes of the item events before `cutoff` with `cutoff` as "now"."""
    before = shop.inter.ts < cutoff
    inter = Interactions(
        user_ids=shop.user_ids,
        **{
            name: getattr(shop.inter, name)[before]
            for name in ("user", "item", "etype", "ts", "quantity", "amount", "value")
        },
    )
    cfg = preprocess_config(settings)
    inter, _ = clean(inter, catalog(shop), cfg)
    weights = event_weights(inter, cfg, now=cutoff)
    train = confidence_matrix(inter.user, inter.item, weights, shop.shape)
    return Split(train=train, test=binary_split(shop, upto, cutoff).test)


def seen_matrix(shop: Shop, start: float, stop: float) -> sparse.csr_matrix:
    """users x items, 1 where the user had an item event in [start, stop)."""
    inter = shop.inter
    keep = (inter.ts >= start) & (inter.ts < stop)
    matrix = sparse.csr_matrix(
        (np.ones(int(keep.sum()), np.float32), (inter.user[keep], inter.item[keep])),
        shape=shop.shape,
    )
    matrix.data[:] = 1.0
    return matrix


async def load_into_service(sessions: Any, shop: Shop, cutoff: float) -> int:
    """The catalog, the shoppers with their attributes and every event before `cutoff` (as
    generated, API-shaped), through the service's own validation and storage code."""
    from pydantic import BaseModel

    from app.catalog.schemas import ItemIn, UserIn
    from app.catalog.service import upsert
    from app.events.schemas import EventIn
    from app.events.service import store_events
    from app.models import Item, User

    for model, key, schema, rows in (
        (Item, "item_id", ItemIn, shop.world.items),
        (User, "user_id", UserIn, shop.world.users),
    ):
        for start in range(0, len(rows), CATALOG_BATCH):
            batch: list[BaseModel] = [schema(**r) for r in rows[start : start + CATALOG_BATCH]]
            async with sessions() as session:
                await upsert(session, model, key, batch)
    picked = np.flatnonzero(shop.event_ts < cutoff).tolist()
    stored = 0
    for start in range(0, len(picked), EVENT_BATCH):
        events = [EventIn(**shop.events[k]) for k in picked[start : start + EVENT_BATCH]]
        async with sessions() as session:
            count, _ = await store_events(session, events)
        stored += count
    return stored


def planted_share(shop: Shop, lists: dict[int, list[int]]) -> tuple[float, float]:
    """Share of recommended items in one of the shopper's planted favourite categories, and
    in one of their favourite brands (the generator's truth)."""
    truth = shop.world.truth
    items = shop.world.items
    in_cat = in_brand = total = 0
    for user, got in lists.items():
        cats = set(truth.user_categories.get(shop.user_ids[user], []))
        brands = set(truth.user_brands.get(shop.user_ids[user], []))
        for i in got:
            if i < 0:
                continue
            total += 1
            in_cat += items[i]["category"] in cats
            in_brand += items[i]["brand"] in brands
    return in_cat / max(total, 1), in_brand / max(total, 1)
