"""The generated shop really carries the structure that tests and benchmarks rely on."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np

from app.events.schemas import EventIn
from app.synthetic import generate_world

WORLD = generate_world(n_users=400, n_items=300, days=60, seed=5)
CATEGORY = {i["item_id"]: i["category"] for i in WORLD.items}


def test_deterministic_for_a_seed() -> None:
    again = generate_world(n_users=400, n_items=300, days=60, seed=5, end=None)
    assert len(again.events) == len(WORLD.events)
    assert [e["item_id"] for e in again.events[:200]] == [e["item_id"] for e in WORLD.events[:200]]


def test_events_follow_the_contract_and_are_unique() -> None:
    ids = [e["event_id"] for e in WORLD.events]
    assert len(ids) == len(set(ids))
    parsed = [EventIn.model_validate(e) for e in WORLD.events]
    assert max(p.timestamp for p in parsed) <= datetime.now(UTC)
    assert min(p.timestamp for p in parsed) >= datetime.now(UTC) - timedelta(days=61)


def test_purchases_fall_mostly_in_favourite_categories() -> None:
    in_favourites = total = 0
    for event in WORLD.events:
        if event["type"] in {"purchase", "view"}:
            total += 1
            in_favourites += (
                CATEGORY[event["item_id"]] in WORLD.truth.user_categories[event["user_id"]]
            )
    assert in_favourites / total > 0.75


def test_churned_users_are_quiet_at_the_end() -> None:
    cutoff = (datetime.now(UTC) - timedelta(days=14)).isoformat()
    recent = {e["user_id"] for e in WORLD.events if e["timestamp"] >= cutoff and e.get("item_id")}
    assert WORLD.truth.churned_users
    assert not recent & WORLD.truth.churned_users


def test_ad_clicks_follow_affinity() -> None:
    shown = Counter()
    clicked = Counter()
    for event in WORLD.events:
        if event["type"] in {"ad_impression", "ad_click"}:
            brand, category = WORLD.truth.affinity(event["user_id"], event["campaign_id"])
            (shown if event["type"] == "ad_impression" else clicked)[brand + category > 0] += 1
    ctr = {k: clicked[k] / shown[k] for k in (True, False)}
    assert ctr[True] > 2 * ctr[False]
    p = np.mean([WORLD.click_probability(u["user_id"], "c000") for u in WORLD.users])
    assert 0 < p < 1
