"""The profile stage caches profiles before the recommender is done and reuses its choice of
linear models between rebuilds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest

from app.training import linear
from app.training.dataset import load_catalog, load_interactions
from app.training.profile_job import SELECTIONS, ProfileJob, _fresh_selections
from app.training.publish import version_key
from tests.profiles.world import ProfileWorld

UNUSED_VERSION = 987_654_321  # never a real run: nothing points at it


async def test_profiles_are_cached_while_the_recommender_still_trains(
    app: Any, profile_world: ProfileWorld
) -> None:
    ctx = app.state.ctx
    catalog = await load_catalog(ctx.engine)
    inter = await load_interactions(ctx.engine, catalog)
    name = version_key(UNUSED_VERSION, "prof")
    job = ProfileJob(ctx, catalog, inter, UNUSED_VERSION)
    try:
        await asyncio.wait_for(job.cached.wait(), timeout=60)
        assert job.prepared is not None and not job.model.done()  # no recommender yet
        cached = await ctx.cache.client.hgetall(name)
        assert len(cached) == len(job.prepared.records) > 0
        user = next(iter(cached))
        body = orjson.loads(cached[user])
        assert body["user_id"] == user.decode() and body["model_version"] == UNUSED_VERSION
        # Not live: the pending version expires unless a switch makes it persistent.
        assert await ctx.cache.client.ttl(name) > 0
    finally:
        job.abandon()
        with pytest.raises(RuntimeError):
            await job.task
        await ctx.cache.client.delete(name, version_key(UNUSED_VERSION, "pmeta"))


def test_a_chosen_linear_kind_is_refitted_without_cross_validation(monkeypatch) -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(400, 5))
    y = np.clip(X @ np.array([3.0, -1.0, 0.5, 0.0, 2.0]) + rng.normal(size=400) + 5, 0, None)
    names = [f"f{k}" for k in range(5)]
    first = linear.train_spend(X, y, names)
    chosen = linear.selection(first)
    assert chosen is not None and chosen["kind"] == first.kind and "selected_at" in chosen

    def no_cv(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("cross-validated again")

    monkeypatch.setattr(linear, "_cross_validate", no_cv)
    again = linear.train_spend(X[:300], y[:300], names, previous=chosen)
    assert again.kind == first.kind and again.metrics["rows"] == 300
    assert again.metrics["selected_at"] == chosen["selected_at"]
    assert again.metrics["cv"] == first.metrics["cv"]
    assert np.corrcoef(again.predict(X), y)[0, 1] > 0.9  # a real fit on today's rows


def test_choices_older_than_reselect_hours_are_dropped() -> None:
    now = datetime.now(UTC)
    ctx = SimpleNamespace(
        settings=SimpleNamespace(reselect_hours=24.0),
        extras={
            SELECTIONS: {
                "spend_30d": {
                    "kind": "ridge",
                    "selected_at": (now - timedelta(hours=1)).isoformat(),
                },
                "churn": {
                    "kind": "logistic_regression",
                    "selected_at": (now - timedelta(hours=30)).isoformat(),
                },
            }
        },
    )
    assert set(_fresh_selections(ctx)) == {"spend_30d"}  # type: ignore[arg-type]
