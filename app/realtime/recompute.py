"""Recomputing one shopper's list against the live model, without a rebuild.

ALS solves the shopper's factors from their latest interactions against the fixed item
factors (implicit's recalculate_user); item-kNN and EASE score the new interaction row
against their item-item weights. Filters and explanations are the rebuild's own.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.models import Event
from app.realtime.ads import LiveAds
from app.training.build import BuildOutput
from app.training.candidates import content_similar
from app.training.dataset import ITEM_EVENT_TYPES, Catalog, _epoch
from app.training.lists import VERBS, explain

DAY = 86_400.0
HISTORY_DAYS = 365  # older events weigh almost nothing after time decay
NEW_ITEM_SLOTS = 3  # at most this many not-yet-trained items join a list


@dataclass
class LiveModel:
    """What the worker keeps in memory about the model it published last."""

    version: int
    out: BuildOutput
    catalog: Catalog
    # Items added after the build: id -> (content neighbours in catalog codes, category)
    new_items: dict[str, tuple[list[int], str | None]] = field(default_factory=dict)
    ads: LiveAds | None = None  # the build's ad model, when its profile stage produced one


@dataclass
class Scored:
    """One shopper's interaction row scored against the live model, before any filter."""

    scores: np.ndarray
    never_again: dict[int, None]
    strongest: dict[int, int]
    recency: list[int]


# Postgres: one raw query on the (user_id, ts) index, rows straight from asyncpg; type and age
# are filtered here. Conditions on them in SQL let the planner pick the (type, ts) index on a
# table whose statistics lag a bulk load, and scan every event (measured: 150 ms a batch at
# a million events instead of a few).
_PG_USER_EVENTS = """
SELECT user_id, item_id, type, extract(epoch FROM ts)::float8, value FROM events
WHERE user_id = ANY($1::text[]) AND item_id IS NOT NULL
ORDER BY ts
"""
_ITEM_TYPES = frozenset(ITEM_EVENT_TYPES)


async def load_user_events(
    engine: AsyncEngine, users: list[str]
) -> dict[str, list[tuple[str, str, float, float | None]]]:
    """(item_id, type, epoch, value) per user, oldest first, for their item events."""
    since = time.time() - HISTORY_DAYS * DAY
    grouped: dict[str, list[tuple[str, str, float, float | None]]] = defaultdict(list)
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            raw: Any = (await conn.get_raw_connection()).driver_connection
            for user, item, kind, ts, value in await raw.fetch(_PG_USER_EVENTS, users):
                if kind in _ITEM_TYPES and ts >= since:
                    grouped[user].append((item, kind, ts, value))
            return grouped
        stmt = (
            select(Event.user_id, Event.item_id, Event.type, _epoch(engine), Event.value)
            .where(Event.user_id.in_(users), Event.type.in_(ITEM_EVENT_TYPES))
            .where(Event.item_id.is_not(None))
            .order_by(Event.ts)
        )
        for user, item, kind, ts, value in await conn.execute(stmt):
            if ts >= since:
                grouped[user].append((item, kind, float(ts), value))
    return grouped


def score_user(
    live: LiveModel,
    events: list[tuple[str, str, float, float | None]],
    settings: Settings,
    now: float,
) -> Scored | None:
    """The shopper's rebuilt interaction row scored over the catalog, or None when empty."""
    catalog, model = live.catalog, live.out.model
    if model is None:
        return None
    weights = settings.event_weights
    totals: dict[int, float] = defaultdict(float)
    never_again: dict[int, None] = {}
    strongest: dict[int, int] = {}
    recency: list[int] = []
    for item_id, kind, ts, value in events:
        code = catalog.index.get(item_id)
        if code is None:
            continue
        weight = weights.get(kind, 0.0)
        if kind == "rating" and value is not None:
            weight *= max(value, 0.0) / 5.0
        if settings.decay_half_life_days > 0:
            weight *= 0.5 ** (max(now - ts, 0.0) / DAY / settings.decay_half_life_days)
        totals[code] += weight
        if kind == "purchase" or settings.exclude_interacted == "all":
            never_again.pop(code, None)
            never_again[code] = None
        rank = 2 if kind == "purchase" else 1 if kind == "add_to_cart" else 0
        strongest[code] = max(strongest.get(code, 0), rank)
        recency.append(code)
    positive = {code: np.log1p(total) for code, total in totals.items() if total > 0}
    if not positive:
        return None
    codes = np.fromiter(positive, dtype=np.int32)
    row = sparse.csr_matrix(
        (np.fromiter(positive.values(), dtype=np.float32), (np.zeros(len(codes)), codes)),
        shape=(1, len(catalog)),
    )
    scores = np.asarray(model.user_vector_scores(row), dtype=np.float32)
    return Scored(scores, never_again, strongest, recency)


def user_payload(
    live: LiveModel, scored: Scored, settings: Settings, unavailable: set[str], now: float
) -> bytes | None:
    """The published payload for one scored shopper, or None when nothing is left to show."""
    import orjson

    catalog, never_again = live.catalog, scored.never_again
    scores = scored.scores.copy()
    scores[~catalog.available[: len(scores)]] = -np.inf
    if never_again:
        scores[np.fromiter(never_again, dtype=np.int64)] = -np.inf
    for item_id in unavailable:
        code = catalog.index.get(item_id)
        if code is not None and code < len(scores):
            scores[code] = -np.inf
    n = min(settings.recommendations_top_n, int(np.isfinite(scores).sum()))
    if n <= 0:
        return None
    top = np.argpartition(-scores, n - 1)[:n]
    top = top[np.argsort(-scores[top], kind="stable")]
    history: list[tuple[int, str]] = []
    for code in reversed(scored.recency):
        if len(history) >= 5:
            break
        if all(code != seen for seen, _ in history):
            history.append((code, VERBS[scored.strongest[code]]))
    rows = explain(top.tolist(), np.round(scores[top], 5).tolist(), history, live.out, catalog)
    rows = _with_new_items(rows, live, history, unavailable)
    body = {
        "s": "personalised",
        "i": rows,
        "x": [catalog.item_ids[c] for c in never_again],
        "t": now,
    }
    return orjson.dumps(body)


def _with_new_items(
    rows: list[list[Any]],
    live: LiveModel,
    history: list[tuple[int, str]],
    unavailable: set[str],
) -> list[list[Any]]:
    """Place items newer than the model next to the trained items they resemble."""
    if not live.new_items:
        return rows
    keep = len(rows)
    position = {row[0]: k for k, row in enumerate(rows[:20])}
    recent = {code for code, _ in history}
    placed: list[tuple[int, list[Any]]] = []
    for item_id, (neighbours, _category) in live.new_items.items():
        if item_id in unavailable or len(placed) >= NEW_ITEM_SLOTS:
            continue
        for code in neighbours[:5]:
            anchor = live.catalog.item_ids[code]
            if anchor in position or code in recent:
                at = position.get(anchor, 0)
                score = rows[at][1] if rows else 0.0
                placed.append((at + 1, [item_id, score, f"new, like {anchor}"]))
                break
    for at, row in sorted(placed, key=lambda p: -p[0]):
        rows.insert(at, row)
    return rows[:keep]


def register_new_items(live: LiveModel, items: list[dict[str, Any]]) -> dict[str, list[list[Any]]]:
    """Content neighbours for items the model has not seen; returns their similar lists."""
    catalog = live.catalog
    fresh = [i for i in items if i["item_id"] not in catalog.index]
    if not fresh:
        return {}
    # Score each new item against the trained catalogue with the same content features.
    probe = Catalog(
        item_ids=[*catalog.item_ids, *(i["item_id"] for i in fresh)],
        category=[*catalog.category, *(i.get("category") for i in fresh)],
        brand=[*catalog.brand, *(i.get("brand") for i in fresh)],
        kind=[*catalog.kind, *(i.get("kind") or "product" for i in fresh)],
        title=[*catalog.title, *(i.get("title") for i in fresh)],
        tags=[*catalog.tags, *(list(i.get("tags") or []) for i in fresh)],
        price=np.concatenate([catalog.price, np.full(len(fresh), np.nan, np.float32)]),
        available=np.concatenate([catalog.available, np.zeros(len(fresh), bool)]),
    )
    popularity = np.zeros(len(probe), np.float32)
    start = len(catalog)
    neighbours = content_similar(probe, np.arange(start, len(probe)), 20, popularity)
    lists: dict[str, list[list[Any]]] = {}
    for offset, item in enumerate(fresh):
        near = [(j, s) for j, s in neighbours[start + offset] if j < start]
        live.new_items[item["item_id"]] = ([j for j, _ in near], item.get("category"))
        lists[item["item_id"]] = [[catalog.item_ids[j], round(s, 5)] for j, s in near]
    return lists
