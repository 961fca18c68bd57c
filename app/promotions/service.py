"""GET /v1/campaigns/{id}/delivery: what a campaign's promotion delivered, and its brand lift.

- impressions, clicks, users reached: `rec_impression`/`rec_click` events carrying the
  campaign (its own `campaign_id` or `context.campaign_id`), counted in the events log
  (the partial (campaign_id, ts) index), so the figures are exact.
- attributed purchases and revenue: the analytics rule (app/analytics/fold.py) narrowed to
  the campaign: a purchase of one of its items within ATTRIBUTION_WINDOW_HOURS after a
  sponsored impression to the same shopper (of that item, or of a list when the impression
  names no item); each purchase counts once; revenue is its amount, else price x quantity.
- cap hits: requests where a frequency cap blocked a placement (counted in the cache).
- brand lift: shoppers served a placement (exposed) against eligible shoppers held out,
  by the share who bought one of the campaign's items after their first time; two-proportion
  z-test from app/experiments/stats.py.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.analytics.fold_io import open_io
from app.cache import CacheUnavailable
from app.catalog.schemas import Promotion
from app.context import AppContext
from app.experiments.stats import lift, rate, two_proportion_p
from app.models import Campaign, Event, Item
from app.promotions.store import CAP_HITS_KEY, reach_key
from app.training.publish import LIVE_KEY, version_key

IN_CHUNK = 5_000
REC_TYPES = ("rec_impression", "rec_click")


def _utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


async def campaign_items(session: AsyncSession, row: Campaign) -> set[str]:
    """Its item_ids, else its brand's items, else its category's (as serving picks them)."""
    if row.item_ids:
        return set(row.item_ids)
    column = Item.brand if row.brand else Item.category if row.category else None
    if column is None:
        return set()
    value = row.brand or row.category
    return set((await session.scalars(select(Item.item_id).where(column == value))).all())


async def _chunked(session: AsyncSession, users: list[str], build: Any) -> list[Any]:
    rows: list[Any] = []
    for start in range(0, len(users), IN_CHUNK):
        stmt: Select[Any] = build(users[start : start + IN_CHUNK])
        rows.extend((await session.execute(stmt)).all())
    return rows


async def _purchases(
    session: AsyncSession, users: list[str], lo: datetime, hi: datetime
) -> list[Any]:
    e = Event
    return await _chunked(
        session,
        users,
        lambda part: select(e.user_id, e.item_id, e.ts, e.amount, e.quantity).where(
            e.type == "purchase", e.user_id.in_(part), e.ts >= lo, e.ts <= hi
        ),
    )


async def _attributed(
    session: AsyncSession, cid: str, items: set[str], lo: datetime, hi: datetime, window: timedelta
) -> tuple[int, float]:
    imps = (
        await session.execute(
            select(Event.user_id, Event.item_id, Event.ts).where(
                Event.campaign_id == cid,
                Event.type == "rec_impression",
                Event.ts >= lo,
                Event.ts < hi,
            )
        )
    ).all()
    if not imps:
        return 0, 0.0
    by_user: dict[str, list[tuple[str | None, datetime]]] = defaultdict(list)
    for user, item, ts in imps:
        by_user[user].append((item, _utc(ts)))
    first = min(ts for v in by_user.values() for _, ts in v)
    last = max(ts for v in by_user.values() for _, ts in v)
    bought = [
        p
        for p in await _purchases(session, sorted(by_user), first, last + window)
        if p.item_id in items
    ]
    credited = []
    for p in bought:
        ts = _utc(p.ts)
        if any(
            t <= ts <= t + window and (item is None or item == p.item_id)
            for item, t in by_user[p.user_id]
        ):
            credited.append(p)
    missing = sorted({p.item_id for p in credited if p.amount is None})
    prices = await (await open_io(session)).prices(missing) if missing else {}
    revenue = sum(
        float(p.amount)
        if p.amount is not None
        else prices.get(p.item_id, 0.0) * (p.quantity if p.quantity is not None else 1)
        for p in credited
    )
    return len(credited), revenue


async def _lift(
    session: AsyncSession, reach: dict[str, dict[str, float]], items: set[str], hi: datetime
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    counts = {}
    for group, users in reach.items():
        buyers = set()
        if users and items:
            lo = datetime.fromtimestamp(min(users.values()), tz=UTC)
            for p in await _purchases(session, sorted(users), lo, hi):
                if p.item_id in items and _utc(p.ts).timestamp() >= users[p.user_id]:
                    buyers.add(p.user_id)
        counts[group] = (len(buyers), len(users))
        out[f"{group}_users"] = len(users)
        out[f"{group}_buyers"] = len(buyers)
        out[f"{group}_purchase_rate"] = round(rate(len(buyers), len(users)), 6)
    (xe, ne), (xh, nh) = counts["exposed"], counts["holdout"]
    value = lift(rate(xh, nh), rate(xe, ne))
    out["lift"] = round(value, 6) if value is not None else None
    out["p_value"] = two_proportion_p(xh, nh, xe, ne)
    return out


async def _cache_facts(ctx: AppContext, cid: str) -> tuple[int, dict[str, dict[str, float]], Any]:
    """(cap hits, reach by group, measured boost of the live version) in one round trip."""

    async def op(client: Any) -> list[Any]:
        async with client.pipeline(transaction=False) as pipe:
            pipe.hget(CAP_HITS_KEY, cid)
            pipe.hgetall(reach_key(cid, "exposed"))
            pipe.hgetall(reach_key(cid, "holdout"))
            pipe.get(LIVE_KEY)
            got = list(await pipe.execute())
        boost = None
        if got[3] is not None:
            boost = await client.hget(version_key(int(got[3]), "promo"), cid)
        return [*got[:3], boost]

    try:
        hits, exposed, holdout, boost = await ctx.cache.run(op)
    except CacheUnavailable:
        return 0, {"exposed": {}, "holdout": {}}, None
    reach = {
        group: {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}
        for group, raw in (("exposed", exposed), ("holdout", holdout))
    }
    return int(hits or 0), reach, orjson.loads(boost) if boost else None


async def delivery(
    ctx: AppContext, session: AsyncSession, row: Campaign, lo: datetime, hi: datetime
) -> dict[str, Any]:
    """The delivery report of one campaign over [lo, hi)."""
    cid = row.campaign_id
    counts = {
        kind: (int(n), int(users))
        for kind, n, users in (
            await session.execute(
                select(Event.type, func.count(), func.count(func.distinct(Event.user_id)))
                .where(
                    Event.campaign_id == cid,
                    Event.type.in_(REC_TYPES),
                    Event.ts >= lo,
                    Event.ts < hi,
                )
                .group_by(Event.type)
            )
        ).all()
    }
    impressions, reached = counts.get("rec_impression", (0, 0))
    clicks = counts.get("rec_click", (0, 0))[0]
    items = await campaign_items(session, row)
    window = timedelta(hours=ctx.settings.attribution_window_hours)
    purchases, revenue = await _attributed(session, cid, items, lo, hi, window)
    cap_hits, reach, boost = await _cache_facts(ctx, cid)
    promotion = Promotion.model_validate(row.promotion) if row.promotion is not None else None
    return {
        "campaign_id": cid,
        "brand": row.brand,
        "active": row.active,
        "promotion": promotion,
        "from": lo,
        "to": hi,
        "impressions": impressions,
        "clicks": clicks,
        "ctr": round(rate(clicks, impressions), 6),
        "users_reached": reached,
        "attributed_purchases": purchases,
        "attributed_revenue": round(revenue, 2),
        "attribution_window_hours": ctx.settings.attribution_window_hours,
        "cap_hits": cap_hits,
        "brand_lift": await _lift(session, reach, items, hi),
        "boost": boost,
    }
