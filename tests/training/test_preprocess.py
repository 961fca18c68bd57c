"""Preprocessing: duplicates, bot bursts, missing fields, weights and decay."""

from __future__ import annotations

import numpy as np

from app.training.dataset import TYPE_CODE, Catalog, Interactions
from app.training.preprocess import (
    PreprocessConfig,
    clean,
    confidence_matrix,
    event_weights,
)

NOW = 1_800_000_000.0
WEIGHTS = {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0, "remove_from_cart": -2.0}


def catalog(n: int = 3) -> Catalog:
    return Catalog(
        item_ids=[f"i{k}" for k in range(n)],
        category=["c"] * n,
        brand=["b"] * n,
        kind=["product"] * n,
        title=[None] * n,
        tags=[[] for _ in range(n)],
        price=np.array([10.0, 20.0, 30.0][:n], np.float32),
        available=np.ones(n, bool),
    )


def interactions(rows: list[tuple[int, int, str, float, float, float]]) -> Interactions:
    users, items, kinds, ts, qty, amount = zip(*rows, strict=True)
    n = len(rows)
    return Interactions(
        user_ids=[f"u{k}" for k in range(max(users) + 1)],
        user=np.array(users, np.int32),
        item=np.array(items, np.int32),
        etype=np.array([TYPE_CODE[k] for k in kinds], np.int8),
        ts=np.array(ts, np.float64),
        quantity=np.array(qty, np.float32),
        amount=np.array(amount, np.float32),
        value=np.full(n, np.nan, np.float32),
    )


def test_exact_duplicates_are_dropped() -> None:
    nan = float("nan")
    inter = interactions([(0, 1, "view", NOW, nan, nan)] * 3 + [(0, 1, "view", NOW + 1, nan, nan)])
    cleaned, stats = clean(inter, catalog(), PreprocessConfig(WEIGHTS))
    assert len(cleaned) == 2 and stats.duplicates_dropped == 2


def test_bot_bursts_drop_the_user() -> None:
    nan = float("nan")
    bot = [(0, k % 3, "view", NOW + k * 0.1, nan, nan) for k in range(200)]
    human = [(1, k % 3, "view", NOW + k * 600.0, nan, nan) for k in range(200)]
    cleaned, stats = clean(interactions(bot + human), catalog(), PreprocessConfig(WEIGHTS))
    assert stats.bot_users == 1 and stats.bot_events_dropped == 200
    assert set(cleaned.user.tolist()) == {1}


def test_missing_quantity_and_amount_are_filled() -> None:
    nan = float("nan")
    inter = interactions([(0, 2, "purchase", NOW, 2.0, nan), (0, 1, "purchase", NOW + 1, nan, nan)])
    cleaned, stats = clean(inter, catalog(), PreprocessConfig(WEIGHTS))
    by_item = dict(zip(cleaned.item.tolist(), cleaned.amount.tolist(), strict=True))
    assert by_item == {2: 60.0, 1: 20.0}
    assert stats.amounts_filled == 2
    assert cleaned.quantity.tolist() == [2.0, 1.0] or sorted(cleaned.quantity.tolist()) == [
        1.0,
        2.0,
    ]


def test_weights_order_types_and_decay_with_age() -> None:
    nan = float("nan")
    kinds = ["view", "click", "add_to_cart", "purchase"]
    inter = interactions([(0, 0, k, NOW, nan, nan) for k in kinds])
    weights = event_weights(inter, PreprocessConfig(WEIGHTS, half_life_days=30), NOW)
    assert list(weights) == sorted(weights)  # view < click < add_to_cart < purchase
    old = interactions([(0, 0, "purchase", NOW - 30 * 86_400, nan, nan)])
    aged = event_weights(old, PreprocessConfig(WEIGHTS, half_life_days=30), NOW)
    assert abs(aged[0] - 4.0) < 1e-4  # one half-life halves a purchase's 8


def test_confidence_is_log_scaled_and_negative_sums_vanish() -> None:
    users = np.array([0, 0, 1], np.int32)
    items = np.array([0, 0, 1], np.int32)
    weights = np.array([8.0, 8.0, -2.0], np.float32)
    matrix = confidence_matrix(users, items, weights, (2, 2))
    assert matrix.nnz == 1
    assert abs(matrix[0, 0] - np.log1p(16.0)) < 1e-5
