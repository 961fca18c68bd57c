"""The generated shop of bench/analytics.py: an A/B experiment's feedback among other events.

Event mix (of n events): 25% `rec_impression` (one per served list, request_id, experiment and
variant in the context), about 2.5% `rec_click` (CTR 10% control, 11.5% treatment, 9%
holdout), 2.5% purchases (half of the clicks lead to a purchase of the clicked item within 20
hours, the rest are purchases of anything), 3% ad events on 50 campaigns, the rest views.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import numpy as np

from app.experiments.assignment import Spec

EXPERIMENT = "bench-exp"
VARIANTS = ("control", "treatment", "holdout")
STRATEGY = ("personalised", "popular", "popular")
CTR = np.array([0.10, 0.115, 0.09])
EVENT_COLUMNS = ["event_id", "user_id", "item_id", "campaign_id", "type", "ts", "amount", "context"]
DAY = 86_400.0
LIST_LEN = 10
CAMPAIGNS = 50


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


class World:
    def __init__(self, n_events: int, seed: int, days: float = 14.0, slices: int = 100) -> None:
        self.n = n_events
        self.rng = np.random.default_rng(seed)
        self.exp_users = max(1000, n_events // 50)
        self.other_users = max(1000, n_events // 33)
        self.items = 20_000
        self.slices = slices
        self.end = time.time() - 3600.0
        self.start = self.end - days * DAY
        spec = Spec(
            name=EXPERIMENT,
            surface="recommendations",
            holdout=0.1,
            start=0.0,
            end=None,
            variants=[{"name": "control", "weight": 1}, {"name": "treatment", "weight": 1}],
        )
        self.variant = np.array(
            [VARIANTS.index(spec.variant_of(f"eu{u}")) for u in range(self.exp_users)], np.int8
        )
        self.lists_total = n_events // 4
        self.list_user: list[np.ndarray] = []
        self.list_items: list[np.ndarray] = []
        self.list_at: list[np.ndarray] = []
        self.seen = np.zeros(self.exp_users, bool)
        self.planted: dict[str, dict[str, int]] = {v: defaultdict(int) for v in VARIANTS}
        self.fresh_by_variant: dict[str, int] = {}
        self.counts: dict[str, int] = defaultdict(int)
        self.next_list = 0
        self.next_event = 0

    def describe(self) -> str:
        return (
            f"{self.exp_users:,} shoppers in the experiment, {self.other_users:,} others, "
            f"{self.items:,} items, {CAMPAIGNS} campaigns"
        )

    def window(self) -> tuple[str, str]:
        return _dt(self.start - 3600).isoformat(), _dt(self.end + DAY).isoformat()

    def feedback_events(self) -> int:
        kinds = (
            "rec_impression",
            "rec_click",
            "purchase",
            "ad_impression",
            "ad_click",
            "ad_conversion",
        )
        return sum(self.counts[k] for k in kinds)

    def add_planted(self, planted: dict[str, dict[str, int]]) -> None:
        for variant, counts in planted.items():
            for key, value in counts.items():
                self.planted[variant][key] += value
        for k, variant in enumerate(VARIANTS):
            self.planted[variant]["users"] = int((self.seen & (self.variant == k)).sum())

    def fresh_impressions(self, n: int) -> list[tuple[Any, ...]]:
        """Impressions of already served lists, stamped a minute ago."""
        users = np.concatenate(self.list_user)
        picks = self.rng.integers(0, len(users), n)
        stamp = _dt(time.time() - 60)
        records = []
        for k, idx in enumerate(picks.tolist()):
            variant = VARIANTS[self.variant[users[idx]]]
            self.fresh_by_variant[variant] = self.fresh_by_variant.get(variant, 0) + 1
            context = f'{{"request_id": "r{idx:012d}"}}'
            records.append(
                (f"fresh{k}", f"eu{users[idx]}", None, None, "rec_impression", stamp, None, context)
            )
        return records


def _columns(
    kind: str,
    users: list[str],
    items: list[str | None],
    ts: np.ndarray,
    campaigns: list[str | None] | None = None,
    amounts: np.ndarray | None = None,
    contexts: list[str | None] | None = None,
) -> dict[str, list[Any]]:
    n = len(users)
    return {
        "type": [kind] * n,
        "user": users,
        "item": items,
        "campaign": campaigns or [None] * n,
        "ts": ts.tolist(),
        "amount": [None] * n if amounts is None else np.round(amounts, 2).tolist(),
        "context": contexts or [None] * n,
    }


def slice_events(world: World, s: int) -> tuple[list[tuple[Any, ...]], dict[str, dict[str, int]]]:
    """The events of one time slice in time order, and what they plant per variant."""
    rng, dt = world.rng, (world.end - world.start) / world.slices
    t0 = world.start + s * dt
    per = world.n // world.slices
    n_lists = world.lists_total // world.slices
    first = world.next_list
    world.next_list += n_lists
    users = rng.integers(0, world.exp_users, n_lists)
    variant = world.variant[users]
    served_at = t0 + rng.random(n_lists) * dt
    items = rng.integers(0, world.items, (n_lists, LIST_LEN)).astype(np.int32)
    world.list_user.append(users)
    world.list_items.append(items)
    world.list_at.append(served_at)
    world.seen[users] = True
    rids = [f"r{first + k:012d}" for k in range(n_lists)]
    uids = [f"eu{u}" for u in users.tolist()]
    names = [VARIANTS[v] for v in variant.tolist()]
    groups = []
    contexts = [
        f'{{"request_id": "{r}", "experiment": "{EXPERIMENT}", "variant": "{v}"}}'
        for r, v in zip(rids, names, strict=True)
    ]
    groups.append(
        _columns("rec_impression", uids, [None] * n_lists, served_at + 2, contexts=contexts)
    )
    clicked = np.flatnonzero(rng.random(n_lists) < CTR[variant])
    pick = items[clicked, rng.integers(0, LIST_LEN, len(clicked))]
    groups.append(
        _columns(
            "rec_click",
            [uids[k] for k in clicked],
            [f"i{i}" for i in pick.tolist()],
            served_at[clicked] + 10,
            contexts=[f'{{"request_id": "{rids[k]}"}}' for k in clicked],
        )
    )
    bought = rng.random(len(clicked)) < 0.5
    buyers = clicked[bought]
    groups.append(
        _columns(
            "purchase",
            [uids[k] for k in buyers],
            [f"i{i}" for i in pick[bought].tolist()],
            served_at[buyers] + rng.uniform(60, 20 * 3600, len(buyers)),
            amounts=rng.uniform(5, 150, len(buyers)),
        )
    )
    n_other = max(0, int(per * 0.025) - len(buyers))
    groups.append(
        _columns(
            "purchase",
            _shoppers(rng, n_other, world),
            _items(rng, n_other, world),
            t0 + rng.random(n_other) * dt,
            amounts=rng.uniform(5, 150, n_other),
        )
    )
    n_ads = int(per * 0.03)
    kinds = rng.choice(["ad_impression", "ad_click", "ad_conversion"], n_ads, p=[0.9, 0.09, 0.01])
    for kind in ("ad_impression", "ad_click", "ad_conversion"):
        k = int((kinds == kind).sum())
        groups.append(
            _columns(
                kind,
                _shoppers(rng, k, world),
                [None] * k,
                t0 + rng.random(k) * dt,
                campaigns=[f"c{c}" for c in rng.integers(0, CAMPAIGNS, k).tolist()],
                amounts=rng.uniform(10, 80, k) if kind == "ad_conversion" else None,
            )
        )
    used = sum(len(g["user"]) for g in groups)
    n_views = max(0, per - used)
    groups.append(
        _columns(
            "view",
            _shoppers(rng, n_views, world),
            _items(rng, n_views, world),
            t0 + rng.random(n_views) * dt,
        )
    )
    merged = {key: [v for g in groups for v in g[key]] for key in groups[0]}
    order = np.argsort(np.asarray(merged["ts"]), kind="stable").tolist()
    base = world.next_event
    world.next_event += len(order)
    records = [
        (
            f"b{base + k}",
            merged["user"][i],
            merged["item"][i],
            merged["campaign"][i],
            merged["type"][i],
            _dt(merged["ts"][i]),
            merged["amount"][i],
            merged["context"][i],
        )
        for k, i in enumerate(order)
    ]
    for g in groups:
        if g["type"]:
            world.counts[g["type"][0]] += len(g["type"])
    planted: dict[str, dict[str, int]] = {v: {"impressions": 0, "clicks": 0} for v in VARIANTS}
    for k, v in enumerate(VARIANTS):
        planted[v]["impressions"] = int((variant == k).sum())
        planted[v]["clicks"] = int((variant[clicked] == k).sum())
    return records, planted


def _shoppers(rng: np.random.Generator, n: int, world: World) -> list[str]:
    codes = rng.integers(0, world.exp_users + world.other_users, n)
    return [f"eu{c}" if c < world.exp_users else f"ou{c}" for c in codes.tolist()]


def _items(rng: np.random.Generator, n: int, world: World) -> list[str | None]:
    return [f"i{i}" for i in rng.integers(0, world.items, n).tolist()]


def served_records(world: World) -> list[tuple[Any, ...]]:
    """served_lists rows, as the worker writes them after draining the API's queue."""
    out = []
    k = 0
    for users, items, at in zip(world.list_user, world.list_items, world.list_at, strict=True):
        for u, row, t in zip(users.tolist(), items.tolist(), at.tolist(), strict=True):
            v = int(world.variant[u])
            ids = '["' + '","'.join(f"i{i}" for i in row) + '"]'
            out.append(
                (f"r{k:012d}", f"eu{u}", ids, STRATEGY[v], 1, EXPERIMENT, VARIANTS[v], _dt(t))
            )
            k += 1
    return out
