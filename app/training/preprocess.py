"""Step 2: clean interactions and turn them into a confidence matrix.

Documented defaults:
- exact duplicates (same user, item, type and timestamp under different event ids, e.g. a
  client retry that minted a new id) are dropped;
- users with more than `bot_events_per_minute` item events inside any 60 s window are treated
  as bots and all their events are dropped;
- a missing quantity means 1; a purchase without an amount is worth price x quantity;
- each event weighs `event_weights[type]` (view < click < add_to_cart < purchase;
  remove_from_cart is negative), ratings scale their weight by value / 5;
- weights decay with age: halved every `half_life_days`;
- a user-item confidence is log1p of its summed weight (negative sums drop to zero).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from app.training.dataset import ITEM_EVENT_TYPES, TYPE_CODE, Catalog, Interactions

DAY = 86_400.0


@dataclass
class PreprocessConfig:
    event_weights: dict[str, float]
    half_life_days: float = 30.0
    bot_events_per_minute: int = 120


@dataclass
class CleanStats:
    events_in: int = 0
    duplicates_dropped: int = 0
    bot_users: int = 0
    bot_events_dropped: int = 0
    amounts_filled: int = 0
    extra: dict[str, float] = field(default_factory=dict)


def _subset(inter: Interactions, keep: np.ndarray) -> Interactions:
    return Interactions(
        user_ids=inter.user_ids,
        user=inter.user[keep],
        item=inter.item[keep],
        etype=inter.etype[keep],
        ts=inter.ts[keep],
        quantity=inter.quantity[keep],
        amount=inter.amount[keep],
        value=inter.value[keep],
    )


def clean(
    inter: Interactions, catalog: Catalog, cfg: PreprocessConfig
) -> tuple[Interactions, CleanStats]:
    """Drop duplicates and bot bursts, fill missing fields; result sorted by user, time.
    Rows that are already the result of a clean() pass come back as they are."""
    if inter.cleaned is not None:
        return inter, inter.cleaned
    stats = CleanStats(events_in=len(inter))
    if not len(inter):
        return inter, stats
    order = np.lexsort((inter.etype, inter.item, inter.ts, inter.user))
    inter = _subset(inter, order)
    same = (
        (inter.user[1:] == inter.user[:-1])
        & (inter.ts[1:] == inter.ts[:-1])
        & (inter.item[1:] == inter.item[:-1])
        & (inter.etype[1:] == inter.etype[:-1])
    )
    keep = np.concatenate(([True], ~same))
    stats.duplicates_dropped = int((~keep).sum())
    inter = _subset(inter, keep)

    burst = cfg.bot_events_per_minute
    if len(inter) > burst:
        # Sorted by (user, ts): event i closes a burst if the event `burst` places earlier
        # belongs to the same user and is less than a minute older.
        bursting = (inter.user[burst:] == inter.user[:-burst]) & (
            inter.ts[burst:] - inter.ts[:-burst] < 60.0
        )
        bots = np.unique(inter.user[burst:][bursting])
        if len(bots):
            is_bot = np.isin(inter.user, bots)
            stats.bot_users = len(bots)
            stats.bot_events_dropped = int(is_bot.sum())
            inter = _subset(inter, ~is_bot)

    quantity = np.where(np.isnan(inter.quantity), 1.0, inter.quantity).astype(np.float32)
    purchase = inter.etype == TYPE_CODE["purchase"]
    missing = purchase & np.isnan(inter.amount)
    price = catalog.price[inter.item] if len(catalog.price) else np.zeros(len(inter))
    amount = inter.amount.copy()
    amount[missing] = price[missing] * quantity[missing]
    stats.amounts_filled = int((missing & ~np.isnan(amount)).sum())
    inter.quantity, inter.amount = quantity, amount
    inter.cleaned = stats
    return inter, stats


def event_weights(inter: Interactions, cfg: PreprocessConfig, now: float) -> np.ndarray:
    """Per-event weight: type weight x rating scale x time decay."""
    table = np.array([cfg.event_weights.get(t, 0.0) for t in ITEM_EVENT_TYPES], dtype=np.float32)
    weights = table[inter.etype]
    rating = inter.etype == TYPE_CODE["rating"]
    if rating.any():
        weights[rating] *= np.clip(np.nan_to_num(inter.value[rating], nan=5.0), 0, None) / 5.0
    if cfg.half_life_days > 0:
        age_days = np.clip(now - inter.ts, 0, None) / DAY
        weights = weights * np.power(0.5, age_days / cfg.half_life_days).astype(np.float32)
    return weights.astype(np.float32)


def confidence_matrix(
    users: np.ndarray, items: np.ndarray, weights: np.ndarray, shape: tuple[int, int]
) -> sparse.csr_matrix:
    """Sum weights per user-item, drop non-positive sums, log-scale the rest."""
    matrix = sparse.coo_matrix((weights, (users, items)), shape=shape, dtype=np.float32).tocsr()
    matrix.sum_duplicates()
    matrix.data = np.where(matrix.data > 0, np.log1p(np.clip(matrix.data, 0, None)), 0)
    matrix.data = matrix.data.astype(np.float32)
    matrix.eliminate_zeros()
    return matrix


def interacted_matrix(
    inter: Interactions, shape: tuple[int, int], only_purchases: bool
) -> sparse.csr_matrix:
    """Which items each user must not be recommended again (purchased, or any interaction)."""
    mask = inter.etype == TYPE_CODE["purchase"] if only_purchases else np.ones(len(inter), bool)
    ones = np.ones(int(mask.sum()), dtype=np.float32)
    matrix = sparse.csr_matrix((ones, (inter.user[mask], inter.item[mask])), shape=shape)
    matrix.data[:] = 1.0
    return matrix
