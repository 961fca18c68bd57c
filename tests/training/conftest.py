"""Fixtures: one planted world, models of every kind fitted on it once per module."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pytest

from app.training.evaluate import Split, temporal_split
from app.training.models import Recommender, build_model
from tests.training.world import Planted, planted_world

# Every kind that learns item relations; "popular" is tested on its own.
CF_KINDS: dict[str, dict] = {
    # Regularised enough not to chase the 3% stray picks (too little and ALS recommends them).
    "als": {"factors": 16, "regularization": 5.0, "iterations": 15},
    "bpr": {"factors": 16, "learning_rate": 0.01, "iterations": 100, "num_threads": 1},
    "itemknn": {"K": 50},
    "itemknn-cosine": {"similarity": "cosine", "K": 50},
    "ease": {"lambda_": 50.0},
}


@pytest.fixture(scope="session")
def world() -> Planted:
    return planted_world()


@pytest.fixture(scope="session")
def fitted(world: Planted) -> dict[str, Recommender]:
    """Each CF kind (and popular) fitted on the whole planted matrix."""
    X = world.matrix()
    models: dict[str, Recommender] = {}
    for name, params in {**CF_KINDS, "popular": {}}.items():
        model = build_model(name.split("-")[0], params, use_gpu=False)
        model.fit(X)
        models[name] = model
    return models


@pytest.fixture(scope="session")
def split(world: Planted) -> Split:
    """The last 20 of 100 days held out."""
    return temporal_split(
        world.users,
        world.items,
        np.ones(len(world.users)),
        world.timestamps,
        world.n_users,
        world.n_items,
        cutoff=80 * 86_400,
    )
