"""Holdout sampling keeps the same shoppers across rebuilds; cleaning happens once."""

from __future__ import annotations

import numpy as np

from app.training.evaluate import stable_sample
from app.training.preprocess import PreprocessConfig, clean
from tests.training.test_preprocess import WEIGHTS, catalog, interactions


def test_a_stable_sample_keeps_its_shoppers_as_the_holdout_grows() -> None:
    ids = [f"u{i}" for i in range(5000)]
    users = np.arange(4000)
    first = stable_sample(users, ids, 1000)
    assert len(first) == 1000 and len(np.unique(first)) == 1000
    assert set(first.tolist()) <= set(users.tolist())
    # Same call, same answer; a holdout with 5% more shoppers keeps ~95% of the sample.
    assert np.array_equal(stable_sample(users, ids, 1000), first)
    grown = stable_sample(np.arange(4200), ids, 1000)
    assert len(np.intersect1d(first, grown)) >= 900
    # Not simply the lowest codes: a hash spreads it over the holdout.
    assert first.max() > 3000
    assert np.array_equal(stable_sample(users, ids, 0), users)
    assert np.array_equal(stable_sample(users[:10], ids, 1000), users[:10])


def test_cleaning_twice_is_one_pass() -> None:
    rows = [(0, 0, "view", 100.0, 1.0, 1.0), (0, 0, "view", 100.0, 1.0, 1.0)]
    raw = interactions(rows)
    cleaned, stats = clean(raw, catalog(), PreprocessConfig(WEIGHTS))
    assert stats.duplicates_dropped == 1 and len(cleaned) == 1
    again, stats_again = clean(cleaned, catalog(), PreprocessConfig(WEIGHTS))
    assert again is cleaned and stats_again is stats
