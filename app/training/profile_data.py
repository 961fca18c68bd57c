"""Loading what profiles and ad targeting need beyond the item event log, streaming.

Users (with attributes), campaigns, ad events (impressions, clicks, conversions) and each
user's dwell time. Rows arrive in chunks and are packed into numpy arrays at once, so memory
grows with compact arrays, not Python objects per event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Float, cast, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.models import Campaign, Event, User

AD_TYPES = ("ad_impression", "ad_click", "ad_conversion")
AD_CODE = {name: code for code, name in enumerate(AD_TYPES)}
CHUNK_ROWS = 20_000


@dataclass
class Users:
    """Every known user (the users table), in a fixed order with an index."""

    ids: list[str] = field(default_factory=list)
    attributes: list[dict[str, Any]] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def code(self, user_id: str) -> int:
        """The user's code; a user seen only in events read later is appended bare."""
        found = self.index.get(user_id)
        if found is None:
            found = self.index[user_id] = len(self.ids)
            self.ids.append(user_id)
            self.attributes.append({})
        return found


@dataclass
class Campaigns:
    ids: list[str] = field(default_factory=list)
    brand: list[str | None] = field(default_factory=list)
    category: list[str | None] = field(default_factory=list)
    items: list[list[str]] = field(default_factory=list)
    bid: list[float | None] = field(default_factory=list)
    budget: list[float | None] = field(default_factory=list)
    active: list[bool] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, campaign_id: str, **fields: Any) -> int:
        self.index[campaign_id] = len(self.ids)
        self.ids.append(campaign_id)
        self.brand.append(fields.get("brand"))
        self.category.append(fields.get("category"))
        self.items.append(list(fields.get("item_ids") or []))
        self.bid.append(fields.get("bid"))
        self.budget.append(fields.get("budget"))
        self.active.append(bool(fields.get("active", False)))
        return self.index[campaign_id]


@dataclass
class AdLog:
    """One row per ad event; user codes index `Users`, campaign codes index `Campaigns`."""

    user: np.ndarray
    campaign: np.ndarray
    etype: np.ndarray  # int8 code into AD_TYPES
    ts: np.ndarray  # float64 epoch seconds
    amount: np.ndarray  # float32, NaN when missing

    def __len__(self) -> int:
        return len(self.user)


@dataclass
class ProfileData:
    users: Users
    campaigns: Campaigns
    ads: AdLog
    # user code -> (summed dwell seconds, events with a dwell time)
    dwell_sum: np.ndarray
    dwell_count: np.ndarray


def _epoch(engine: AsyncEngine) -> Any:
    if engine.dialect.name == "postgresql":
        return cast(func.extract("epoch", Event.ts), Float)
    return (func.julianday(Event.ts) - 2440587.5) * 86400.0  # SQLite keeps UTC text


async def _stream(conn: AsyncConnection, stmt: Any) -> Any:
    result = await conn.stream(stmt.execution_options(yield_per=CHUNK_ROWS))
    async for chunk in result.partitions(CHUNK_ROWS):
        yield chunk


async def load_users(conn: AsyncConnection) -> Users:
    """Every row of the users table, in user_id order."""
    users = Users()
    stmt = select(User.user_id, User.attributes).order_by(User.user_id)
    async for chunk in _stream(conn, stmt):
        for user_id, attributes in chunk:
            users.index[user_id] = len(users.ids)
            users.ids.append(user_id)
            users.attributes.append(attributes if isinstance(attributes, dict) else {})
    return users


async def load_campaigns(conn: AsyncConnection) -> Campaigns:
    campaigns = Campaigns()
    stmt = select(
        Campaign.campaign_id,
        Campaign.brand,
        Campaign.category,
        Campaign.item_ids,
        Campaign.bid,
        Campaign.budget,
        Campaign.active,
    ).order_by(Campaign.campaign_id)
    for row in (await conn.execute(stmt)).all():
        campaigns.add(
            row[0],
            brand=row[1],
            category=row[2],
            item_ids=row[3],
            bid=row[4],
            budget=row[5],
            active=row[6],
        )
    return campaigns


async def load_ad_log(
    engine: AsyncEngine, conn: AsyncConnection, users: Users, campaigns: Campaigns
) -> AdLog:
    """Every ad event (the partial campaign index covers them), as arrays."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("u", "c", "t", "ts", "a")}
    stmt = select(Event.user_id, Event.campaign_id, Event.type, _epoch(engine), Event.amount).where(
        Event.campaign_id.is_not(None), Event.type.in_(AD_TYPES)
    )
    async for chunk in _stream(conn, stmt):
        user_ids, campaign_ids, types, stamps, amounts = zip(*chunk, strict=True)
        parts["u"].append(np.fromiter((users.code(u) for u in user_ids), np.int32))
        # An event may name a campaign that was never sent to /v1/campaigns: keep it bare.
        parts["c"].append(
            np.fromiter((_campaign_code(campaigns, c) for c in campaign_ids), np.int32)
        )
        parts["t"].append(np.fromiter((AD_CODE[t] for t in types), np.int8))
        parts["ts"].append(np.asarray(stamps, dtype=np.float64))
        parts["a"].append(np.array([np.nan if a is None else a for a in amounts], np.float32))

    def col(key: str, dtype: Any) -> np.ndarray:
        return np.concatenate(parts[key]).astype(dtype) if parts[key] else np.empty(0, dtype)

    return AdLog(
        user=col("u", np.int32),
        campaign=col("c", np.int32),
        etype=col("t", np.int8),
        ts=col("ts", np.float64),
        amount=col("a", np.float32),
    )


def _campaign_code(campaigns: Campaigns, campaign_id: str) -> int:
    found = campaigns.index.get(campaign_id)
    return campaigns.add(campaign_id) if found is None else found


async def load_dwell(conn: AsyncConnection, users: Users) -> tuple[np.ndarray, np.ndarray]:
    """Summed dwell seconds and their count per user (aggregated by the database)."""
    stmt = (
        select(Event.user_id, func.sum(Event.dwell_seconds), func.count(Event.dwell_seconds))
        .where(Event.dwell_seconds.is_not(None))
        .group_by(Event.user_id)
    )
    codes: list[int] = []
    sums: list[float] = []
    counts: list[int] = []
    async for chunk in _stream(conn, stmt):
        for user_id, total, count in chunk:
            codes.append(users.code(user_id))
            sums.append(float(total or 0.0))
            counts.append(int(count or 0))
    n = len(users)
    dwell_sum = np.zeros(n, np.float64)
    dwell_count = np.zeros(n, np.float64)
    dwell_sum[codes] = sums
    dwell_count[codes] = counts
    return dwell_sum, dwell_count


async def load_profile_data(engine: AsyncEngine) -> ProfileData:
    """Users, campaigns, ad events and dwell times in one read-only pass."""
    async with engine.connect() as conn:
        users = await load_users(conn)
        campaigns = await load_campaigns(conn)
        ads = await load_ad_log(engine, conn, users, campaigns)
        dwell_sum, dwell_count = await load_dwell(conn, users)
    return ProfileData(users, campaigns, ads, dwell_sum, dwell_count)
