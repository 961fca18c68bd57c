"""GET /v1/campaigns/{id}/delivery counts planted impressions, clicks and purchases exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.promotions.tally import tally
from tests.conftest import INGEST, READ, unique
from tests.promotions.caps_helpers import impression, send
from tests.promotions.conftest import PromoWorld, recommend, sponsored, upsert_campaigns


def click(user: str, campaign_id: str, item: str, ago: timedelta) -> dict[str, Any]:
    return {
        "event_id": unique("clk"),
        "user_id": user,
        "type": "rec_click",
        "item_id": item,
        "campaign_id": campaign_id,
        "timestamp": (datetime.now(UTC) - ago).isoformat(),
    }


def purchase(user: str, item: str, ago: timedelta, amount: float | None) -> dict[str, Any]:
    event = {
        "event_id": unique("buy"),
        "user_id": user,
        "type": "purchase",
        "item_id": item,
        "quantity": 2,
        "timestamp": (datetime.now(UTC) - ago).isoformat(),
    }
    if amount is not None:
        event["amount"] = amount
    return event


async def test_delivery_counts_planted_feedback_exactly(
    client: httpx.AsyncClient, promo_world: PromoWorld, app: Any
) -> None:
    w = promo_world
    cid = unique("dc")
    items = w.items[w.slot][:4]
    price = next(i["price"] for i in w.live.items if i["item_id"] == items[1])
    await upsert_campaigns(client, app, [{"campaign_id": cid, "item_ids": items, "active": False,
                                          "promotion": {"slots": 1}}])  # fmt: skip
    users = [f"{cid}-u{k}" for k in range(5)]
    h = timedelta(hours=1)
    events = []
    for k, user in enumerate(users):  # 5 users, 1 + k impressions each: 15 in all
        for j in range(1 + k):
            events.append(impression(user, cid, items[j % 4], ago=10 * h, in_context=j % 2 == 1))
    events += [click(users[1], cid, items[0], 9 * h), click(users[2], cid, items[1], 9 * h)]
    events.append(impression(users[0], "", items[0]) | {"campaign_id": None})  # organic
    events += [
        purchase(users[1], items[0], 8 * h, 50.0),  # attributed: impressed item, in window
        purchase(users[2], items[1], 5 * h, None),  # attributed: no amount -> price x 2
        purchase(users[3], items[3], 1 * h, 20.0),  # attributed: within 24 h of the impression
        purchase(users[4], w.items[w.capped][0], 8 * h, 99.0),  # not a campaign item
        purchase(users[0], items[2], 8 * h, 30.0),  # user 0 was only shown items[0]
        purchase(f"{cid}-stranger", items[0], 8 * h, 70.0),  # never shown the campaign
    ]
    await send(client, events)
    resp = await client.get(f"/v1/campaigns/{cid}/delivery", headers=READ)
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert report["impressions"] == 15 and report["clicks"] == 2
    assert report["ctr"] == round(2 / 15, 6)
    assert report["users_reached"] == 5
    assert report["attributed_purchases"] == 3
    assert report["attributed_revenue"] == round(50.0 + price * 2 + 20.0, 2)
    assert report["cap_hits"] == 0 and report["boost"] is None
    assert report["promotion"]["slots"] == 1 and report["active"] is False
    old = (datetime.now(UTC) - timedelta(days=60)).isoformat().replace("+00:00", "Z")
    resp = await client.get(f"/v1/campaigns/{cid}/delivery?to={old}", headers=READ)
    assert resp.status_code == 200 and resp.json()["impressions"] == 0
    assert (await client.get("/v1/campaigns/nope-x/delivery", headers=READ)).status_code == 404


async def test_brand_lift_compares_exposed_with_held_out_shoppers(
    client: httpx.AsyncClient, promo_world: PromoWorld, app: Any
) -> None:
    w = promo_world
    users = w.users("beauty")
    exposed = [u for u in users if not w.held_out(w.slot, u)][:6]
    held = [u for u in users if w.held_out(w.slot, u)]
    assert held, "10% of 25 shoppers: the hash holds at least one out"
    for user in exposed + held:
        body = await recommend(client, user, 10)
        assert bool(sponsored(body, w.slot)) == (user in exposed)
    await tally(app.state.ctx).flush(app.state.ctx)
    # One exposed shopper buys a campaign item afterwards.
    await send(client, [purchase(exposed[0], w.items[w.slot][5], timedelta(0), 10.0)])
    resp = await client.get(f"/v1/campaigns/{w.slot}/delivery", headers=READ)
    lift = resp.json()["brand_lift"]
    assert lift["exposed_users"] >= len(exposed) and lift["holdout_users"] >= len(held)
    assert lift["exposed_buyers"] >= 1
    assert resp.json()["boost"] is None
    resp = await client.get(f"/v1/campaigns/{w.boost}/delivery", headers=INGEST)
    assert resp.status_code == 403  # read scope
