"""The generated shop really carries the structure that tests and benchmarks rely on."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from app.catalog.schemas import CampaignIn, ItemIn, UserIn
from app.events.schemas import EventIn
from app.synthetic import generate_world, iter_event_batches, world_with_events

END = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WORLD = generate_world(n_users=800, n_items=400, days=60, seed=5, end=END)
TRUTH = WORLD.truth
ITEMS = {i["item_id"]: i for i in WORLD.items}


def _of(kind: str) -> list[dict]:
    return [e for e in WORLD.events if e["type"] == kind]


def test_deterministic_for_a_seed_whatever_the_end() -> None:
    same = generate_world(n_users=800, n_items=400, days=60, seed=5, end=END)
    assert same.events == WORLD.events and same.items == WORLD.items
    assert same.users == WORLD.users and same.campaigns == WORLD.campaigns
    later = generate_world(n_users=800, n_items=400, days=60, seed=5, end=END + timedelta(days=3))
    shifted = datetime.fromisoformat(later.events[100]["timestamp"])
    assert shifted - datetime.fromisoformat(WORLD.events[100]["timestamp"]) == timedelta(days=3)
    assert [e["event_id"] for e in later.events] == [e["event_id"] for e in WORLD.events]
    other = generate_world(n_users=800, n_items=400, days=60, seed=6, end=END)
    assert [e["item_id"] for e in other.items[:50]] == [e["item_id"] for e in WORLD.items[:50]]
    assert [e.get("item_id") for e in other.events[:50]] != [
        e.get("item_id") for e in WORLD.events[:50]
    ]


def test_rows_follow_the_api_contract() -> None:
    ids = [e["event_id"] for e in WORLD.events]
    assert len(ids) == len(set(ids))
    parsed = [EventIn.model_validate(e) for e in WORLD.events]
    stamps = [p.timestamp for p in parsed]
    assert stamps == sorted(stamps)
    assert all(p.timestamp.utcoffset() == timedelta(0) for p in parsed[:10])
    assert END - timedelta(days=60) <= stamps[0] and stamps[-1] < END
    assert {p.type for p in parsed} >= {
        "view", "click", "add_to_cart", "purchase", "ad_impression", "ad_click", "rec_click",
    }  # fmt: skip
    for model, rows in (
        (ItemIn, WORLD.items),
        (UserIn, WORLD.users),
        (CampaignIn, WORLD.campaigns),
    ):
        assert all(model.model_validate(r) for r in rows)
    batches = list(iter_event_batches(WORLD.events, 1000))
    assert sum(map(len, batches)) == len(WORLD.events) and max(map(len, batches)) == 1000


def test_default_end_is_now_and_nothing_is_in_the_future() -> None:
    world = generate_world(n_users=50, n_items=40, days=10)
    last = datetime.fromisoformat(world.events[-1]["timestamp"])
    assert datetime.now(UTC) - timedelta(hours=3) < last < datetime.now(UTC)


def test_views_and_purchases_fall_mostly_in_favourite_categories_and_brands() -> None:
    for kind, category_share, brand_share in (("view", 0.8, 0.5), ("purchase", 0.85, 0.6)):
        events = _of(kind)
        in_cat = np.mean([ITEMS[e["item_id"]]["category"] in TRUTH.user_categories[e["user_id"]]
                          for e in events])  # fmt: skip
        in_brand = np.mean([ITEMS[e["item_id"]]["brand"] in TRUTH.user_brands[e["user_id"]]
                            for e in events])  # fmt: skip
        assert category_share < in_cat < 0.97, (kind, in_cat)  # some exploring remains
        assert in_brand > brand_share, (kind, in_brand)
    assert all(1 <= len(v) <= 2 for v in TRUTH.user_categories.values())
    assert all(1 <= len(v) <= 3 for v in TRUTH.user_brands.values())


def test_funnel_is_consistent() -> None:
    carted = {(e["user_id"], e["item_id"]) for e in _of("add_to_cart")}
    purchases = _of("purchase")
    assert len(_of("view")) > len(_of("click")) > len(_of("add_to_cart")) > len(purchases) > 0
    assert all((p["user_id"], p["item_id"]) in carted for p in purchases)
    for p in purchases:
        assert p["amount"] == pytest.approx(ITEMS[p["item_id"]]["price"] * p["quantity"], abs=0.01)
    assert all(e["dwell_seconds"] > 0 for e in _of("view"))
    assert all(1 <= e["value"] <= 5 for e in _of("rating"))


def test_catalog_is_realistic() -> None:
    prices = defaultdict(list)
    for item in WORLD.items:
        prices[item["category"]].append(item["price"])
    assert np.median(prices["electronics"]) > 3 * np.median(prices["books"])
    brand_categories = defaultdict(set)
    for item in WORLD.items:
        brand_categories[item["brand"]].add(item["category"])
    assert all(1 <= len(c) <= 3 for c in brand_categories.values())
    # Zipf-like popularity: the top tenth of the catalog draws a large share of the views.
    views = sorted(Counter(e["item_id"] for e in _of("view")).values(), reverse=True)
    assert sum(views[: len(WORLD.items) // 10]) > 0.3 * sum(views)
    for campaign in WORLD.campaigns:
        assert {ITEMS[i]["brand"] for i in campaign["item_ids"]} == {campaign["brand"]}


def test_churned_users_are_quiet_at_the_end_and_cold_users_have_few_events() -> None:
    cutoff = END - timedelta(days=14)
    recent = {
        e["user_id"] for e in WORLD.events if datetime.fromisoformat(e["timestamp"]) >= cutoff
    }
    assert 0.08 < len(TRUTH.churned_users) / len(WORLD.users) < 0.25
    assert not recent & TRUTH.churned_users
    per_user = Counter(e["user_id"] for e in WORLD.events)
    assert TRUTH.churned_users <= set(per_user)  # they were active before
    assert TRUTH.cold_users and all(1 <= per_user[u] <= 3 for u in TRUTH.cold_users)
    # Most of the other shoppers are still around.
    warm = set(per_user) - TRUTH.churned_users - TRUTH.cold_users
    assert len(recent & warm) > 0.6 * len(warm)


def test_ad_clicks_follow_affinity() -> None:
    shown, clicked = Counter(), Counter()
    expected = defaultdict(list)
    for event in WORLD.events:
        if event["type"] in {"ad_impression", "ad_click"}:
            brand, category = TRUTH.affinity(event["user_id"], event["campaign_id"])
            bucket = brand + category > 0
            (shown if event["type"] == "ad_impression" else clicked)[bucket] += 1
            if event["type"] == "ad_impression":
                expected[bucket].append(
                    TRUTH.click_probability(event["user_id"], event["campaign_id"])
                )
    ctr = {k: clicked[k] / shown[k] for k in (True, False)}
    assert ctr[True] > 3 * ctr[False]
    # The observed clicks match the true probabilities the generator says it used (within
    # four standard deviations of the binomial count).
    for bucket in (True, False):
        mean = float(np.sum(expected[bucket]))
        assert abs(clicked[bucket] - mean) < 4 * np.sqrt(mean) + 2, (bucket, clicked, mean)
    pairs = [(u["user_id"], c["campaign_id"]) for u in WORLD.users[:50] for c in WORLD.campaigns]
    vector = TRUTH.click_probabilities([p[0] for p in pairs], [p[1] for p in pairs])
    assert vector[7] == pytest.approx(WORLD.click_probability(*pairs[7]))


def test_ad_events_can_be_left_out() -> None:
    world = generate_world(n_users=100, n_items=60, seed=1, ad_events=False, rec_events=False)
    assert not {e["type"] for e in world.events} & {"ad_impression", "rec_impression"}


def test_world_is_sized_by_events() -> None:
    started = time.perf_counter()
    world = world_with_events(100_000, events_per_user=40, id_prefix="x-")
    elapsed = time.perf_counter() - started
    assert len(world.users) == 2500
    assert 85_000 < len(world.events) < 115_000
    assert elapsed < 20  # about 0.5 s here; a million takes about 5 s
    assert world.events[0]["event_id"].startswith("x-") and world.items[0]["item_id"] == "x-i00000"
    assert world.events[0]["user_id"].startswith("x-u")


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        generate_world(n_users=0)
    # A history shorter than the churn window has no churned shoppers (nothing to stop).
    assert not generate_world(n_users=100, n_items=50, days=7).truth.churned_users
