"""Profile features, segments and linear models on hand-made data (no database)."""

from __future__ import annotations

import numpy as np
import pytest

from app.training.attributes import AttributeEncoder
from app.training.linear import top_factors, train_churn, train_spend
from app.training.profiles import (
    DAY,
    PURCHASE,
    TYPE_CODE,
    Activity,
    ProfileConfig,
    features_at,
)
from app.training.segments import assign, quintile_scores

NOW = 1.8e9
VIEW = TYPE_CODE["view"]


def activity(rows: list[tuple[int, float, int, float, int, float]], n_users: int) -> Activity:
    """rows: (user, days ago, type, amount, brand, relative price)."""
    rows = sorted(rows, key=lambda r: (r[0], -r[1]))
    user, ago, kind, amount, brand, rel = (np.array(c) for c in zip(*rows, strict=True))
    return Activity(
        n_users=n_users, user=user.astype(np.int64), ts=NOW - ago * DAY, etype=kind.astype(np.int8),
        amount=amount.astype(float), weight=np.ones(len(rows)), category=brand.astype(np.int64),
        brand=brand.astype(np.int64), rel_price=rel.astype(float), categories=["a", "b"],
        brands=["x", "y"],
    )  # fmt: skip


def table_for(act: Activity, ref: float = NOW):  # type: ignore[no-untyped-def]
    n = act.n_users
    return features_at(
        act, ref, np.zeros((n, 0)), [], (np.array([300.0, 0, 0]), np.array([10.0, 0, 0]))
    )


def test_rfm_recency_and_price_sensitivity() -> None:
    act = activity(
        [
            (0, 40, VIEW, 0, 0, 0.5), (0, 30, PURCHASE, 20, 0, -0.5), (0, 2, PURCHASE, 30, 1, -0.5),
            (0, 2.5, VIEW, 0, 1, 0.5),
            (1, 50, VIEW, 0, 0, np.nan),
        ],
        n_users=3,
    )  # fmt: skip
    table = table_for(act)
    assert table.recency_days[0] == pytest.approx(2) and table.recency_days[1] == pytest.approx(50)
    assert np.isnan(table.recency_days[2]) and table.events.tolist() == [4, 1, 0]
    assert table.frequency.tolist() == [2, 0, 0] and table.monetary.tolist() == [50, 0, 0]
    # Browses at +0.5, buys at -0.5, two purchases shrunk by 2 / (2 + 2).
    assert table.price_sensitivity[0] == pytest.approx(0.5)
    assert np.isnan(table.price_sensitivity[1])
    assert table.avg_dwell[0] == pytest.approx(30) and np.isnan(table.avg_dwell[1])
    assert table.column("has_events").tolist() == [1, 1, 0]
    # As of 10 days ago, the latest purchase has not happened yet.
    past = table_for(act, NOW - 10 * DAY)
    assert past.frequency.tolist() == [1, 0, 0] and past.recency_days[0] == pytest.approx(20)


def test_quintile_scores_share_ties() -> None:
    values = np.array([1, 1, 1, 1, 2, 3, 4, 5, 6, 7, 0], dtype=float)
    mask = values > 0
    scores = quintile_scores(values, mask)
    assert scores[-1] == 0
    assert len(set(scores[:4].tolist())) == 1  # equal values, equal score
    assert scores[:10].tolist() == sorted(scores[:10].tolist()) and scores.max() == 5


def test_every_user_lands_in_exactly_one_segment() -> None:
    rng = np.random.default_rng(1)
    rows = []
    for u in range(200):
        for _ in range(rng.integers(0, 8)):
            kind = PURCHASE if rng.random() < 0.3 else VIEW
            rows.append((u, float(rng.uniform(0, 90)), kind, 10.0 if kind == PURCHASE else 0, 0, 0))
    act = activity(rows, n_users=220)
    segments = assign(table_for_many(act), ProfileConfig())
    assert len(segments) == 220 and all(isinstance(s, str) for s in segments)
    assert set(segments[200:]) == {"unengaged"}


def table_for_many(act: Activity):  # type: ignore[no-untyped-def]
    n = act.n_users
    return features_at(act, NOW, np.zeros((n, 0)), [], (np.zeros(n), np.zeros(n)))


def test_linear_models_recover_planted_signs_and_report_cv() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(600, 3))
    spend = np.clip(40 + 25 * X[:, 0] - 10 * X[:, 1] + rng.normal(0, 5, 600), 0, None)
    model = train_spend(X, spend, ["a", "b", "c"])
    described = model.describe()
    assert described["cv"]["r2"] > 0.8 > described["mean_predictor_cv"]["r2"]
    assert described["cv"]["mse"] < described["mean_predictor_cv"]["mse"]
    coefficients = described["linear"]["coefficients"]
    assert coefficients["a"] == pytest.approx(25, abs=2) and coefficients["b"] < 0
    churn = (X[:, 2] + rng.normal(0, 0.5, 600) > 0).astype(int)
    classifier = train_churn(X, churn, ["a", "b", "c"])
    assert classifier.describe()["cv"]["roc_auc"] > 0.85
    assert classifier.describe()["linear"]["standardized_coefficients"]["c"] > 1
    assert np.all((classifier.predict(X) >= 0) & (classifier.predict(X) <= 1))
    factors = top_factors(classifier.contributions(X[:2]), ["a", "b", "c"], 2, k=1)
    assert factors[0][0][0] == "c" or abs(X[0, 2]) < 0.5


def test_too_little_data_falls_back_to_a_constant() -> None:
    X = np.zeros((5, 2))
    spend = train_spend(X, np.array([1.0, 2, 3, 4, 5]), ["a", "b"])
    assert spend.estimator is None and spend.predict(X).tolist() == [3.0] * 5
    churn = train_churn(np.zeros((40, 2)), np.array([0] * 38 + [1, 1]), ["a", "b"])
    assert churn.estimator is None and churn.predict(X)[0] == pytest.approx(0.05)


def test_attribute_encoding() -> None:
    rows = [{"age": 30, "vip": True, "country": "DE"}, {"age": 50, "country": "FR"}, {}]
    encoder = AttributeEncoder().fit(rows)
    assert encoder.names == ["attr.age", "attr.vip", "attr.country=DE", "attr.country=FR"]
    assert encoder.transform(rows).tolist() == [[30, 1, 1, 0], [50, 0, 0, 1], [40, 0, 0, 0]]
