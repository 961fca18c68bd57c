"""The ingest benchmark's workload: generated shop events as JSON batches and COPY records."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

EVENT_COLUMNS = (
    "event_id",
    "user_id",
    "item_id",
    "campaign_id",
    "type",
    "ts",
    "quantity",
    "amount",
    "value",
    "dwell_seconds",
    "source",
    "context",
)
# Rough shares of a shop's event stream: mostly views, few purchases, some ad traffic.
TYPE_WEIGHTS = {
    "view": 60,
    "click": 14,
    "add_to_cart": 7,
    "remove_from_cart": 2,
    "purchase": 3,
    "rating": 1,
    "ad_impression": 8,
    "ad_click": 1,
    "ad_conversion": 0.3,
    "rec_impression": 3,
    "rec_click": 0.7,
}
ITEM_TYPES = {"view", "click", "add_to_cart", "remove_from_cart", "purchase", "rating", "rec_click"}
AD_TYPES = {"ad_impression", "ad_click", "ad_conversion"}


@dataclass
class Workload:
    """The pre-serialised HTTP batches and the same rows as COPY records."""

    batches: list[bytes]
    records: list[tuple[Any, ...]]

    @property
    def events(self) -> int:
        return len(self.records)


def generate(n_events: int, batch_size: int, seed: int = 7) -> Workload:
    """Shoppers with sessions over 30 days on a skewed catalog; ids unique per event."""
    rng = random.Random(seed)
    n_users = max(100, n_events // 20)
    n_items = max(50, n_events // 100)
    n_campaigns = 50
    types = list(TYPE_WEIGHTS)
    weights = list(TYPE_WEIGHTS.values())
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=30)
    batches: list[bytes] = []
    records: list[tuple[Any, ...]] = []
    batch: list[dict[str, Any]] = []
    i = 0
    while i < n_events:
        # One session: a shopper, a moment, a handful of events close together.
        user = f"u{int(rng.paretovariate(1.2) * 7) % n_users:07d}"
        ts = start + timedelta(seconds=rng.randrange(30 * 86400))
        source = rng.choice(("web", "app", "web", "email"))
        for event_type in rng.choices(types, weights, k=rng.randint(1, 12)):
            if i >= n_events:
                break
            ts += timedelta(seconds=rng.randint(1, 90))
            item = (
                f"i{int(rng.paretovariate(1.1) * 5) % n_items:06d}"
                if event_type in ITEM_TYPES or rng.random() < 0.3
                else None
            )
            campaign = f"c{rng.randrange(n_campaigns):03d}" if event_type in AD_TYPES else None
            ev: dict[str, Any] = {
                "event_id": f"ev-{seed}-{i:09d}",
                "user_id": user,
                "type": event_type,
                "timestamp": ts.isoformat(),
            }
            quantity = amount = value = dwell = context = None
            if item:
                ev["item_id"] = item
            if campaign:
                ev["campaign_id"] = campaign
            if event_type in ("add_to_cart", "remove_from_cart", "purchase"):
                quantity = ev["quantity"] = rng.randint(1, 3)
            if event_type in ("purchase", "ad_conversion"):
                amount = ev["amount"] = round(rng.uniform(5, 300), 2)
            if event_type == "rating":
                value = ev["value"] = float(rng.randint(1, 5))
            if event_type == "view":
                dwell = ev["dwell_seconds"] = round(rng.expovariate(1 / 20), 1)
            ev["source"] = source
            if event_type in ("rec_impression", "rec_click"):
                context = ev["context"] = {"request_id": f"r{rng.randrange(10**9)}", "pos": 3}
            batch.append(ev)
            records.append(
                (
                    ev["event_id"],
                    user,
                    item,
                    campaign,
                    event_type,
                    ts,
                    quantity,
                    amount,
                    value,
                    dwell,
                    source,
                    None if context is None else orjson.dumps(context).decode(),
                )
            )
            i += 1
            if len(batch) == batch_size:
                batches.append(orjson.dumps(batch))
                batch = []
    if batch:
        batches.append(orjson.dumps(batch))
    return Workload(batches, records)
