"""Assignment: deterministic per (experiment, user), weighted, with a holdout."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

from app.experiments.assignment import HOLDOUT, Spec, bucket


def spec(name: str, weights: list[float], holdout: float = 0.0) -> Spec:
    variants = [{"name": f"v{k}", "weight": w} for k, w in enumerate(weights)]
    return Spec(
        name=name,
        surface="recommendations",
        variants=variants,
        holdout=holdout,
        start=0.0,
        end=None,
    )


USERS = [f"user-{k}" for k in range(20_000)]


def test_assignment_is_stable_across_calls_and_processes() -> None:
    s = spec("stable", [1, 1, 2], holdout=0.1)
    here = [s.variant_of(u) for u in USERS[:200]]
    assert here == [s.variant_of(u) for u in USERS[:200]]
    # Another interpreter (another process, or the same service after a restart) agrees.
    code = (
        "from app.experiments.assignment import Spec\n"
        "s = Spec(name='stable', surface='recommendations', variants=["
        "{'name': 'v0', 'weight': 1}, {'name': 'v1', 'weight': 1}, {'name': 'v2', 'weight': 2}],"
        " holdout=0.1, start=0.0, end=None)\n"
        "print(','.join(s.variant_of(f'user-{k}') for k in range(200)))\n"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip().split(",") == here


def test_weights_and_holdout_are_respected() -> None:
    s = spec("weighted", [1, 3], holdout=0.2)
    counts = Counter(s.variant_of(u) for u in USERS)
    shares = {k: v / len(USERS) for k, v in counts.items()}
    assert abs(shares[HOLDOUT] - 0.2) < 0.012
    assert abs(shares["v0"] - 0.2) < 0.012  # 0.8 x 1/4
    assert abs(shares["v1"] - 0.6) < 0.012  # 0.8 x 3/4
    expected = s.expected_shares()
    assert list(expected) == ["v0", "v1", HOLDOUT]
    assert [round(v, 9) for v in expected.values()] == [0.2, 0.6, 0.2]


def test_experiments_assign_independently() -> None:
    a, b = spec("first", [1, 1]), spec("second", [1, 1])
    pairs = Counter((a.variant_of(u), b.variant_of(u)) for u in USERS)
    # Independent halves: each of the four combinations holds about a quarter of the users.
    for count in pairs.values():
        assert abs(count / len(USERS) - 0.25) < 0.015


def test_bucket_is_uniform() -> None:
    values = sorted(bucket("uniform", u) for u in USERS)
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        assert abs(values[int(q * len(values))] - q) < 0.015
    assert values[0] >= 0.0 and values[-1] < 1.0


def test_holdout_gets_the_popular_baseline_and_variants_their_strategy() -> None:
    s = Spec(
        name="strategies",
        surface="recommendations",
        variants=[
            {"name": "control", "weight": 1},
            {"name": "pop", "weight": 1, "strategy": "popular"},
        ],
        holdout=0.3,
        start=0.0,
        end=None,
    )
    seen = {}
    for u in USERS[:2000]:
        a = s.assign(u)
        seen[a.variant] = a.strategy
    assert seen == {"control": None, "pop": "popular", HOLDOUT: "popular"}


def test_active_window() -> None:
    s = Spec(
        name="w",
        surface="ads",
        variants=[{"name": "a", "weight": 1}],
        holdout=0.0,
        start=100.0,
        end=200.0,
    )
    assert not s.active(99.0) and s.active(100.0) and s.active(199.9) and not s.active(200.0)
    s.stopped = True
    assert not s.active(150.0)
