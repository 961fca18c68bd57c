"""Analytics: keeping the roll-ups current, and the recommendation and campaign reports."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.analytics.fold import CHUNK, Busy, fold_chunk
from app.analytics.served import drain, served_log
from app.context import AppContext
from app.experiments.assignment import Spec
from app.logging import get_logger
from app.models import Campaign, CampaignHourly, Experiment, ExperimentUser, RecHourly, ServedList

log = get_logger(__name__)
LOOP_SECONDS = 5.0
REQUEST_CHUNK = 2_500  # a report request folds in small chunks to keep to its budget
GROUPS = {
    "strategy": (RecHourly.strategy,),
    "model_version": (RecHourly.model_version,),
    "variant": (RecHourly.experiment, RecHourly.variant),
}


async def load_specs(ctx: AppContext) -> dict[str, Spec]:
    """Every experiment, stopped ones included (late feedback still counts for them)."""
    async with ctx.sessions() as session:
        rows = (await session.scalars(select(Experiment))).all()
    return {r.name: Spec.from_row(r) for r in rows}


def request_budget(ctx: AppContext) -> float | None:
    """How long a report request may fold (None: until done)."""
    budget = ctx.settings.analytics_request_budget_seconds
    return budget if budget > 0 else None


def _lock(ctx: AppContext) -> asyncio.Lock:
    lock = ctx.extras.get("analytics_lock")
    if lock is None:
        lock = ctx.extras["analytics_lock"] = asyncio.Lock()
    assert isinstance(lock, asyncio.Lock)
    return lock


async def catch_up(
    ctx: AppContext, *, settle: float | None = None, budget: float | None = None
) -> dict[str, Any]:
    """Bring the roll-ups up to date: this process's served lists, the queue, new events.

    With a `budget` (seconds; a report request) it never waits for another pass, stops after
    the chunk that exceeds the budget and then says `up_to_date: false`; the worker's pass,
    which has none, finishes the backlog.
    """
    settings = ctx.settings
    settle = settings.analytics_settle_seconds if settle is None else settle
    window = timedelta(hours=settings.attribution_window_hours)
    hurried = budget is not None
    deadline = time.monotonic() + (budget or 0.0)
    lock = _lock(ctx)
    if hurried and lock.locked():
        return {"lists": 0, "events": 0, "up_to_date": False}  # this process is folding
    async with lock:
        specs = await load_specs(ctx)
        await served_log(ctx).flush(ctx)
        lists = await drain(ctx, specs, deadline=deadline if hurried else None)
        events, more = 0, True
        while more and not (hurried and time.monotonic() > deadline):
            try:
                folded, more = await fold_chunk(
                    ctx,
                    specs,
                    settle,
                    window,
                    REQUEST_CHUNK if hurried else CHUNK,
                    wait=not hurried,
                )
            except Busy:
                break  # another process is on it
            events += folded
    return {"lists": lists, "events": events, "up_to_date": not more}


async def analytics_loop(ctx: AppContext) -> None:
    """Worker side: keep the roll-ups current so reports never fold a backlog themselves."""
    while True:
        try:
            done = await catch_up(ctx)
            if done["lists"] or done["events"]:
                log.info("analytics folded", lists=done["lists"], events=done["events"])
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("analytics pass failed")
        await asyncio.sleep(LOOP_SECONDS)


def floor_hour(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(ts: datetime) -> datetime:
    floor = floor_hour(ts)
    return floor if floor == ts else floor + timedelta(hours=1)


def _rates(impressions: int, clicks: int, conversions: int, revenue: float) -> dict[str, Any]:
    return {
        "impressions": impressions,
        "clicks": clicks,
        "ctr": round(clicks / impressions, 6) if impressions else None,
        "conversions": conversions,
        "conversion_rate": round(conversions / impressions, 6) if impressions else None,
        "revenue": round(revenue, 2),
    }


async def recommendations_report(
    session: AsyncSession, start: datetime, end: datetime, group_by: str
) -> dict[str, Any]:
    """Feedback per group from the hourly roll-up (hours overlapping [start, end))."""
    lo, hi = floor_hour(start), ceil_hour(end)
    cols = GROUPS[group_by]
    sums = (
        func.sum(RecHourly.impressions),
        func.sum(RecHourly.clicks),
        func.sum(RecHourly.conversions),
        func.sum(RecHourly.revenue),
    )
    stmt = (
        select(*cols, *sums)
        .where(RecHourly.hour >= lo, RecHourly.hour < hi)
        .group_by(*cols)
        .order_by(*cols)
    )
    groups = []
    totals = [0, 0, 0, 0.0]
    for row in await session.execute(stmt):
        keys, values = row[: len(cols)], [v or 0 for v in row[len(cols) :]]
        if group_by == "variant":
            if not keys[0]:
                continue  # lists served outside any experiment
            key: dict[str, Any] = {"experiment": keys[0], "variant": keys[1]}
        elif group_by == "model_version":
            key = {"model_version": int(keys[0]) or None}
        else:
            key = {"strategy": keys[0]}
        groups.append(
            {**key, **_rates(int(values[0]), int(values[1]), int(values[2]), float(values[3]))}
        )
        totals = [t + v for t, v in zip(totals, values, strict=True)]
    return {
        "from": lo,
        "to": hi,
        "group_by": group_by,
        "groups": groups,
        "totals": _rates(int(totals[0]), int(totals[1]), int(totals[2]), float(totals[3])),
    }


async def campaigns_report(
    session: AsyncSession, start: datetime, end: datetime, campaign_ids: list[str]
) -> dict[str, Any]:
    """Ad feedback per campaign from the hourly roll-up (hours overlapping [start, end));
    spend = clicks x bid (bids are per click)."""
    lo, hi = floor_hour(start), ceil_hour(end)
    c = CampaignHourly
    where = [c.hour >= lo, c.hour < hi]
    if campaign_ids:
        where.append(c.campaign_id.in_(campaign_ids))
    counts = (
        select(
            c.campaign_id.label("campaign_id"),
            func.sum(c.impressions).label("impressions"),
            func.sum(c.clicks).label("clicks"),
            func.sum(c.conversions).label("conversions"),
            func.sum(c.revenue).label("revenue"),
        )
        .where(*where)
        .group_by(c.campaign_id)
        .subquery()
    )
    stmt = (
        select(counts, Campaign.brand, Campaign.bid)
        .outerjoin(Campaign, Campaign.campaign_id == counts.c.campaign_id)
        .order_by(counts.c.campaign_id)
    )
    rows = [_campaign(r) for r in await session.execute(stmt)]
    return {"from": lo, "to": hi, "group_by": "campaign", "campaigns": rows}


def by_brand(report: dict[str, Any]) -> dict[str, Any]:
    """The campaign report summed per brand; spend and return over the campaigns whose bid is
    known (`campaigns_with_bid` of `campaigns`)."""
    brands: dict[str | None, dict[str, Any]] = {}
    for c in report["campaigns"]:
        b = brands.setdefault(
            c["brand"],
            {"brand": c["brand"], "campaigns": 0, "campaigns_with_bid": 0, "impressions": 0,
             "clicks": 0, "conversions": 0, "revenue": 0.0, "spend": 0.0, "bid_revenue": 0.0,
             "bid_conversions": 0},
        )  # fmt: skip
        b["campaigns"] += 1
        for k in ("impressions", "clicks", "conversions", "revenue"):
            b[k] += c[k]
        if c["spend"] is not None:
            b["campaigns_with_bid"] += 1
            b["spend"] += c["spend"]
            b["bid_revenue"] += c["revenue"]
            b["bid_conversions"] += c["conversions"]
    rows = []
    for b in sorted(brands.values(), key=lambda b: (b["brand"] is None, b["brand"] or "")):
        impressions, clicks, spend = b["impressions"], b["clicks"], b["spend"]
        known = b["campaigns_with_bid"] > 0
        rows.append(
            {
                "brand": b["brand"],
                "campaigns": b["campaigns"],
                "campaigns_with_bid": b["campaigns_with_bid"],
                "impressions": impressions,
                "clicks": clicks,
                "ctr": round(clicks / impressions, 6) if impressions else None,
                "conversions": b["conversions"],
                "conversion_rate": round(b["conversions"] / clicks, 6) if clicks else None,
                "revenue": round(b["revenue"], 2),
                "spend": round(spend, 2) if known else None,
                "return_on_spend": round(b["bid_revenue"] / spend, 4) if spend else None,
                "conversions_per_spend": round(b["bid_conversions"] / spend, 6) if spend else None,
            }
        )
    return {"from": report["from"], "to": report["to"], "group_by": "brand", "brands": rows}


def _campaign(row: Any) -> dict[str, Any]:
    impressions, clicks = int(row.impressions or 0), int(row.clicks or 0)
    conversions, revenue = int(row.conversions or 0), float(row.revenue or 0.0)
    spend = clicks * row.bid if row.bid is not None else None
    return {
        "campaign_id": row.campaign_id,
        "brand": row.brand,
        "impressions": impressions,
        "clicks": clicks,
        "ctr": round(clicks / impressions, 6) if impressions else None,
        "conversions": conversions,
        "conversion_rate": round(conversions / clicks, 6) if clicks else None,
        "revenue": round(revenue, 2),
        "bid": row.bid,
        "spend": round(spend, 2) if spend is not None else None,
        "return_on_spend": round(revenue / spend, 4) if spend else None,
        "conversions_per_spend": round(conversions / spend, 6) if spend else None,
    }


async def erase_user(session: AsyncSession, user_id: str) -> None:
    """Forget a shopper in the analytics tables (for erasure; roll-ups hold no user ids)."""
    await session.execute(delete(ServedList).where(ServedList.user_id == user_id))
    await session.execute(delete(ExperimentUser).where(ExperimentUser.user_id == user_id))


async def close(ctx: AppContext) -> None:
    """Flush this process's served lists before it exits."""
    with contextlib.suppress(Exception):
        await served_log(ctx).close(ctx)
