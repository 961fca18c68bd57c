"""Recomputing one shopper's list against the live model, without a rebuild.

ALS solves the shopper's factors from their latest interactions against the fixed item
factors (implicit's recalculate_user); item-kNN and EASE score the new interaction row
against their item-item weights. Filters and explanations are the rebuild's own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.models import Event
from app.realtime.ads import LiveAds
from app.training.build import BuildOutput, never_again_by_recency, preprocess_config
from app.training.candidates import content_similar
from app.training.dataset import ITEM_EVENT_TYPES, TYPE_CODE, Catalog, Interactions, _epoch
from app.training.lists import VERBS, History, explain, recent_history
from app.training.preprocess import clean, confidence_matrix, event_weights
from app.training.publish import list_blobs
from app.training.topn import top_n

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
class ScoredBatch:
    """A batch of shoppers' rebuilt interaction rows scored against the live model."""

    inter: Interactions  # the batch's cleaned item events (user codes index `users`)
    scores: np.ndarray  # (len(users), n_items), before any filter; zeros without a row
    has_row: np.ndarray  # bool per user: a positive interaction row was scored
    never_again: dict[int, list[int]]  # user code -> items never to show again, oldest first
    recent: History  # each user's recent items and their verbs (explanations)


# Postgres: the batch's events as one row of arrays (asyncpg decodes them in C: no Python
# object per row), with the user as its position in $1 and the type as its position in $2.
# Joined on user_id alone, so the planner walks the (user_id, ts) index: conditions on type
# or age let it pick the (type, ts) index on a table whose statistics lag a bulk load, and
# scan every event (measured: 150 ms a batch at a million events instead of a few). Type and
# age are filtered here instead.
_PG_USER_EVENTS = """
SELECT array_agg(u.k), array_agg(e.item_id), array_agg(array_position($2::text[], e.type)),
       array_agg(extract(epoch FROM e.ts)::float8), array_agg(e.quantity::float8),
       array_agg(e.amount::float8), array_agg(e.value::float8)
FROM unnest($1::text[]) WITH ORDINALITY AS u(user_id, k)
JOIN events e ON e.user_id = u.user_id AND e.item_id IS NOT NULL
"""


async def load_user_events(engine: AsyncEngine, users: list[str], catalog: Catalog) -> Interactions:
    """The shoppers' item events of the last HISTORY_DAYS on catalog items, as arrays (user
    codes index `users`); unordered: clean() sorts them."""
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            raw: Any = (await conn.get_raw_connection()).driver_connection
            row = await raw.fetchrow(_PG_USER_EVENTS, users, list(ITEM_EVENT_TYPES))
            columns: list[Any] = [c or [] for c in row]
            positions, item_ids, types, *rest = columns
            # 1-based positions (None: not an item event type).
            user = np.asarray(positions, np.int64) - 1
            etype = np.array(types, np.float64) - 1
        else:
            stmt = select(
                Event.user_id, Event.item_id, Event.type, _epoch(engine),
                Event.quantity, Event.amount, Event.value,
            ).where(Event.user_id.in_(users), Event.item_id.is_not(None))  # fmt: skip
            rows = list(await conn.execute(stmt))
            columns = list(zip(*rows, strict=True)) if rows else [()] * 7
            user_ids, item_ids, kinds, *rest = columns
            by_user = {u: k for k, u in enumerate(users)}
            user = np.fromiter((by_user[u] for u in user_ids), np.int64, len(rows))
            etype = np.array([TYPE_CODE.get(k) for k in kinds], np.float64)
    ts, quantity, amount, value = (np.array(c, np.float64) for c in rest)  # None reads as NaN
    item = np.fromiter((catalog.index.get(i, -1) for i in item_ids), np.int64, len(item_ids))
    keep = (item >= 0) & ~np.isnan(etype) & (ts >= time.time() - HISTORY_DAYS * DAY)
    return Interactions(
        user_ids=users,
        user=user[keep].astype(np.int32),
        item=item[keep].astype(np.int32),
        etype=etype[keep].astype(np.int8),
        ts=ts[keep],
        quantity=quantity[keep].astype(np.float32),
        amount=amount[keep].astype(np.float32),
        value=value[keep].astype(np.float32),
    )


def score_batch(
    live: LiveModel, inter: Interactions, settings: Settings, now: float
) -> ScoredBatch | None:
    """Rebuild the shoppers' confidence rows as the rebuild does (clean, weigh, decay,
    log-scale) and score them against the live model in one call."""
    catalog, model = live.catalog, live.out.model
    if model is None:
        return None
    cfg = preprocess_config(settings)
    inter, _ = clean(inter, catalog, cfg)  # sorted by user, then time
    shape = (inter.n_users, len(catalog))
    rows = confidence_matrix(inter.user, inter.item, event_weights(inter, cfg, now), shape)
    has_row = np.diff(rows.indptr) > 0
    scores = np.zeros(shape, np.float32)
    if has_row.any():
        scores[has_row] = model.users_vector_scores(rows[has_row])
    # The rebuild's own helpers: never-again items oldest first, recent items with verbs.
    never_again = never_again_by_recency(inter, settings.exclude_interacted != "all")
    recent = recent_history(inter, len(catalog), inter.n_users)
    return ScoredBatch(inter, scores, has_row, never_again, recent)


def batch_payloads(
    live: LiveModel, batch: ScoredBatch, settings: Settings, unavailable: set[str], now: float
) -> dict[str, tuple[bytes, bytes]]:
    """The published (recs, top) payloads of the batch's scored shoppers (none for a shopper
    with no row, or nothing left to show)."""
    catalog = live.catalog
    users = np.flatnonzero(batch.has_row)
    if not len(users):
        return {}
    scores = batch.scores[users]
    scores[:, ~catalog.available[: scores.shape[1]]] = -np.inf
    gone = [c for i in unavailable if (c := catalog.index.get(i)) is not None]
    if gone:
        scores[:, gone] = -np.inf
    scored = users.tolist()
    barred = [(r, c) for r, u in enumerate(scored) for c in batch.never_again.get(u, ())]
    if barred:
        rows, cols = zip(*barred, strict=True)
        scores[list(rows), list(cols)] = -np.inf
    # As in the rebuild's lists, only items the model reaches; serving fills the rest.
    ids, top = top_n(
        scores, settings.recommendations_top_n, getattr(live.out.model, "floor", -np.inf)
    )
    rounded = np.round(top.astype(np.float64), 5).tolist()
    payloads = {}
    for r, u in enumerate(scored):
        picks = [c for c in ids[r].tolist() if c >= 0]
        if not picks:
            continue
        codes, verbs = batch.recent.items[u].tolist(), batch.recent.verbs[u].tolist()
        history = [(c, VERBS[v]) for c, v in zip(codes, verbs, strict=True) if c >= 0]
        rows_out = explain(picks, rounded[r][: len(picks)], history, live.out, catalog)
        rows_out = _with_new_items(rows_out, live, history, unavailable)
        body = {
            "s": "personalised",
            "i": rows_out,
            "x": [catalog.item_ids[c] for c in batch.never_again.get(u, ())],
            "t": now,
        }
        payloads[batch.inter.user_ids[u]] = list_blobs(body)
    return payloads


def _with_new_items(
    rows: list[Any],
    live: LiveModel,
    history: list[tuple[int, str]],
    unavailable: set[str],
) -> list[Any]:
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
