"""What shoppers did lately, read from the events table for the status page.

Every query filters on `type` and a `ts` range, so it is an index range scan of
ix_events_type_ts (type, ts) whatever the size of the log.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, get_args

from sqlalchemy import Integer, cast, func, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.context import AppContext
from app.events.schemas import EventType
from app.models import Campaign, Event

EVENT_TYPES: tuple[str, ...] = get_args(EventType)
HOUR = 3600
DAY = 86_400
MIN_CAMPAIGN_IMPRESSIONS = 10  # fewer impressions say nothing about a campaign's CTR
TOP_CAMPAIGNS = 10


def _hour_bucket(engine: AsyncEngine) -> Any:
    """Whole hours since the epoch of an event's timestamp, in SQL."""
    if engine.dialect.name == "postgresql":
        return cast(func.floor(func.extract("epoch", Event.ts) / HOUR), Integer)
    # SQLite keeps UTC text; strftime('%s') is whole seconds, integer division floors them.
    return cast(func.strftime("%s", Event.ts), Integer) / HOUR


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


async def ingest_by_hour(ctx: AppContext, now: float, hours: int = 24) -> dict[str, Any]:
    """Events per type and hour over the last `hours` hours (the last one still running)."""
    current = math.floor(now / HOUR)
    first = current - hours + 1
    bucket = _hour_bucket(ctx.engine).label("h")
    stmt = (
        select(Event.type, bucket, func.count())
        .where(Event.type.in_(EVENT_TYPES), Event.ts >= _dt(first * HOUR), Event.ts <= _dt(now))
        .group_by(Event.type, bucket)
    )
    async with ctx.sessions() as session:
        rows = (await session.execute(stmt)).all()
    series: dict[str, list[int]] = {}
    for event_type, hour, count in rows:
        index = int(hour) - first
        if 0 <= index < hours:
            series.setdefault(event_type, [0] * hours)[index] += int(count)
    by_type = {t: series[t] for t in EVENT_TYPES if t in series}
    totals = {t: sum(v) for t, v in by_type.items()}
    last_hour = {t: v[-1] for t, v in by_type.items()}
    return {
        "hours": hours,
        "buckets": [_dt((first + i) * HOUR).isoformat() for i in range(hours)],
        "by_type": by_type,
        "totals": totals,
        "total": sum(totals.values()),
        "last_hour": last_hour,
        # The running hour is partial: its rate is over the minutes elapsed so far.
        "per_minute_now": round(sum(last_hour.values()) / max(1.0, (now % HOUR) / 60), 2),
    }


def _ctr(impressions: int, clicks: int) -> float | None:
    return round(clicks / impressions, 4) if impressions else None


async def ctr_by_strategy(ctx: AppContext, now: float, days: int = 7) -> dict[str, Any]:
    """rec_impression and rec_click events by the `strategy` their context names."""
    strategy = func.coalesce(Event.context["strategy"].as_string(), "unknown").label("s")
    stmt = (
        select(strategy, Event.type, func.count())
        .where(
            Event.type.in_(("rec_impression", "rec_click")),
            Event.ts >= _dt(now - days * DAY),
            Event.ts <= _dt(now),
        )
        .group_by(strategy, Event.type)
    )
    async with ctx.sessions() as session:
        rows = (await session.execute(stmt)).all()
    counts: dict[str, dict[str, int]] = {}
    for name, event_type, count in rows:
        counts.setdefault(str(name), {"rec_impression": 0, "rec_click": 0})[event_type] += count
    out = [
        {
            "strategy": name,
            "impressions": c["rec_impression"],
            "clicks": c["rec_click"],
            "ctr": _ctr(c["rec_impression"], c["rec_click"]),
        }
        for name, c in counts.items()
    ]
    out.sort(key=lambda r: (-int(r["impressions"] or 0), str(r["strategy"])))
    return {"window_days": days, "by_strategy": out}


async def top_campaigns(ctx: AppContext, now: float, days: int = 7) -> dict[str, Any]:
    """Campaigns with enough impressions, best click-through first."""
    stmt = (
        select(Event.campaign_id, Event.type, func.count())
        .where(
            Event.type.in_(("ad_impression", "ad_click")),
            Event.ts >= _dt(now - days * DAY),
            Event.ts <= _dt(now),
        )
        .group_by(Event.campaign_id, Event.type)
    )
    async with ctx.sessions() as session:
        rows = (await session.execute(stmt)).all()
        counts: dict[str, dict[str, int]] = {}
        for campaign, event_type, count in rows:
            counts.setdefault(campaign, {"ad_impression": 0, "ad_click": 0})[event_type] += count
        ranked = [
            (c, n["ad_impression"], n["ad_click"])
            for c, n in counts.items()
            if n["ad_impression"] >= MIN_CAMPAIGN_IMPRESSIONS
        ]
        ranked.sort(key=lambda r: (-r[2] / r[1], -r[1], r[0]))
        top = ranked[:TOP_CAMPAIGNS]
        brands: dict[str, str | None] = {}
        if top:
            ids = [c for c, _, _ in top]
            query = select(Campaign.campaign_id, Campaign.brand).where(
                Campaign.campaign_id.in_(ids)
            )
            brands = {c: b for c, b in (await session.execute(query)).all()}
    return {
        "window_days": days,
        "min_impressions": MIN_CAMPAIGN_IMPRESSIONS,
        "campaigns": len(counts),
        "top": [
            {
                "campaign_id": c,
                "brand": brands.get(c),
                "impressions": imp,
                "clicks": clk,
                "ctr": _ctr(imp, clk),
            }
            for c, imp, clk in top
        ],
    }


async def _has_table(ctx: AppContext, name: str) -> bool:
    cache: dict[str, bool] = ctx.extras.setdefault("ops_tables", {})
    if name not in cache:
        async with ctx.engine.connect() as conn:
            cache[name] = await conn.run_sync(lambda c: inspect(c).has_table(name))
    return cache[name]


async def segment_sizes(ctx: AppContext) -> dict[str, Any]:
    """Users per profile segment, when the profiles feature (user_profiles) is installed."""
    if not await _has_table(ctx, "user_profiles"):
        return {"available": False, "sizes": []}
    stmt = text("SELECT segment, count(*) FROM user_profiles GROUP BY segment ORDER BY 2 DESC, 1")
    async with ctx.sessions() as session:
        rows = (await session.execute(stmt)).all()
    return {"available": True, "sizes": [{"segment": s, "users": int(n)} for s, n in rows]}
