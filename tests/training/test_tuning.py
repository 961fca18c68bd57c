"""Tuning stays inside its grid, never loses to its starting point, and keeps to its budget."""

from __future__ import annotations

import time

import pytest

from app.training.evaluate import Split, ranking_metrics
from app.training.models import DEFAULTS, build_model
from app.training.tuning import DEFAULT_GRIDS, select_model, tune


def _ndcg(kind: str, params: dict, split: Split) -> float:
    model = build_model(kind, params)
    model.fit(split.train)
    return ranking_metrics(model, split)["ndcg@10"]


async def test_tune_ease_default_grid(split: Split) -> None:
    params, metrics = tune("ease", split, budget_seconds=30)
    assert params["lambda_"] in DEFAULT_GRIDS["ease"]["lambda_"]
    assert metrics["trials"] == len(DEFAULT_GRIDS["ease"]["lambda_"])
    assert metrics["ndcg@10"] >= _ndcg("ease", {}, split) - 1e-12  # the default is 300
    assert metrics["ndcg@10"] == max(
        _ndcg("ease", {"lambda_": lam}, split) for lam in DEFAULT_GRIDS["ease"]["lambda_"]
    )


async def test_tune_als_custom_grid(split: Split) -> None:
    grid = {"factors": [8, 16], "regularization": [0.5, 5.0], "alpha": [1.0, 2.0]}
    params, metrics = tune("als", split, grid=grid, budget_seconds=30)
    for name, values in grid.items():
        assert params[name] in values
    # The search starts at the defaults (64, 10.0, 1.0) snapped to the grid.
    start = _ndcg("als", {"factors": 16, "regularization": 5.0, "alpha": 1.0}, split)
    assert metrics["ndcg@10"] >= start - 1e-12
    assert metrics["ndcg@10"] == _ndcg("als", params, split)  # reproducible from the params
    assert 2 <= metrics["trials"] <= 8


@pytest.mark.parametrize("kind", ["als", "itemknn", "ease"])
async def test_default_grids_hold_the_defaults_and_tuning_never_loses_to_them(
    kind: str, split: Split
) -> None:
    for name, value in DEFAULTS[kind].items():
        if name in DEFAULT_GRIDS[kind]:
            assert value in DEFAULT_GRIDS[kind][name], (kind, name)
    params, metrics = tune(kind, split, budget_seconds=4)  # a few trials suffice here
    for name, value in params.items():
        if name in DEFAULT_GRIDS[kind]:
            assert value in DEFAULT_GRIDS[kind][name]
    assert metrics["trials"] > 1
    assert metrics["ndcg@10"] >= _ndcg(kind, {}, split) - 1e-12
    assert metrics["ndcg@10"] == pytest.approx(_ndcg(kind, params, split))


async def test_no_budget_means_one_trial(split: Split) -> None:
    params, metrics = tune("itemknn", split, budget_seconds=0)
    assert metrics["trials"] == 1
    assert params == build_model("itemknn").params


async def test_select_model_ranks_candidates(split: Split) -> None:
    began = time.perf_counter()
    results = select_model(split, kinds=("als", "itemknn", "ease"), budget_seconds=8)
    assert time.perf_counter() - began < 8 + 5  # at most one trial past the budget per kind
    assert [r["kind"] for r in results] != [] and len(results) == 3
    assert {r["kind"] for r in results} == {"als", "itemknn", "ease"}
    scores = [r["metrics"]["ndcg@10"] for r in results]
    assert scores == sorted(scores, reverse=True)
    for r in results:
        assert set(r) == {"kind", "params", "metrics", "fit_seconds"}
        assert r["fit_seconds"] == r["metrics"]["fit_seconds"] >= 0
    # The winner clearly beats popularity on planted tastes.
    assert scores[0] > 1.5 * _ndcg("popular", {}, split)
