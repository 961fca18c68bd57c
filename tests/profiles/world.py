"""A generated shop plus a few planted shoppers, ingested through the API and rebuilt."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.synthetic import World, generate_world
from app.training.pipeline import rebuild
from tests.conftest import INGEST
from tests.rebuilds import forced_live


@dataclass
class ProfileWorld:
    prefix: str
    world: World
    version: int
    one_brand_user: str
    one_brand: str
    lapsed: list[str]
    active: list[str]
    attributes_only: str
    planted_events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def users(self) -> list[str]:
        return [u["user_id"] for u in self.world.users]


def _event(
    prefix: str, n: int, user: str, item: dict[str, Any], kind: str, when: datetime
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"{prefix}-planted-{n}",
        "user_id": user,
        "item_id": item["item_id"],
        "type": kind,
        "timestamp": when.isoformat(),
    }
    if kind == "purchase":
        event["amount"] = item["price"]
    return event


def planted(prefix: str, world: World) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Events of shoppers with known behaviour: one buys a single brand only, some lapsed
    long ago, some are active every few days."""
    now = datetime.now(UTC)
    items = [i for i in world.items if i["available"]]
    brand = items[0]["brand"]
    own = [i for i in items if i["brand"] == brand]
    events: list[dict[str, Any]] = []
    one = f"{prefix}-one-brand"
    for k in range(12):
        item = own[k % len(own)]
        when = now - timedelta(days=1 + 2 * k, minutes=5)
        for j, kind in enumerate(("view", "click", "purchase")):
            events.append(_event(prefix, len(events), one, item, kind, when + timedelta(minutes=j)))
    lapsed = [f"{prefix}-lapsed-{k}" for k in range(5)]
    active = [f"{prefix}-active-{k}" for k in range(5)]
    for group, start in ((lapsed, 58), (active, 26)):
        for k, user in enumerate(group):
            for d in range(12):  # every other day over 24 days from `start` days ago
                item = items[(7 * k + d) % len(items)]
                when = now - timedelta(days=start - 2 * d, hours=3)
                kind = "purchase" if d % 3 == 0 else "view"
                events.append(_event(prefix, len(events), user, item, kind, when))
    names = {"one_brand_user": one, "one_brand": brand, "lapsed": lapsed, "active": active}
    return events, names


async def ingest_world(
    client: httpx.AsyncClient, world: World, extra: list[dict[str, Any]]
) -> None:
    for path, rows in (
        ("items", world.items),
        ("users", world.users),
        ("campaigns", world.campaigns),
    ):
        for start in range(0, len(rows), 1000):
            resp = await client.post(f"/v1/{path}", json=rows[start : start + 1000], headers=INGEST)
            assert resp.status_code == 200, resp.text
    events = world.events + extra
    for start in range(0, len(events), 5000):
        resp = await client.post("/v1/events", json=events[start : start + 5000], headers=INGEST)
        assert resp.status_code == 202, resp.text


def isolate(world: World, prefix: str) -> None:
    """Prefix every category and brand name, so this shop's popular lists and affinities never
    mix with the other test shops in the session's database (they reuse the same names)."""

    def rename(name: str | None) -> str | None:
        return f"{prefix}-{name}" if name else name

    for item in world.items:
        names = {item["category"], item["brand"]}
        item["tags"] = [rename(t) if t in names else t for t in item["tags"]]
        item["category"], item["brand"] = rename(item["category"]), rename(item["brand"])
    for campaign in world.campaigns:
        campaign["category"], campaign["brand"] = (
            rename(campaign["category"]),
            rename(campaign["brand"]),
        )
    truth = world.truth
    truth.user_categories = {
        u: [f"{prefix}-{c}" for c in v] for u, v in truth.user_categories.items()
    }
    truth.user_brands = {u: [f"{prefix}-{b}" for b in v] for u, v in truth.user_brands.items()}
    truth.campaigns = {
        c: (f"{prefix}-{b}", f"{prefix}-{k}") for c, (b, k) in truth.campaigns.items()
    }


async def build_world(
    client: httpx.AsyncClient, app: Any, prefix: str, **kwargs: Any
) -> ProfileWorld:
    """Generate, plant, ingest, rebuild (the guardrail off: this run must go live)."""
    world = generate_world(id_prefix=f"{prefix}-", **kwargs)
    isolate(world, prefix)
    events, names = planted(prefix, world)
    attributes_only = f"{prefix}-attributes-only"
    resp = await client.post(
        "/v1/users",
        json=[{"user_id": attributes_only, "attributes": {"age": 33, "loyalty_member": True}}],
        headers=INGEST,
    )
    assert resp.status_code == 200, resp.text
    await ingest_world(client, world, events)
    ctx = app.state.ctx
    with forced_live(ctx):
        result = await rebuild(ctx, trigger="test")
    assert result["status"] == "live", result
    return ProfileWorld(
        prefix=prefix, world=world, version=result["version"], attributes_only=attributes_only,
        planted_events=events, **names,
    )  # fmt: skip
