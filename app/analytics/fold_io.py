"""Database access of the analytics pass: raw asyncpg with array parameters on Postgres (the
fold reads millions of rows on a backlog), SQLAlchemy Core on SQLite. Both return plain tuples.

Event rows: (id, user_id, item_id, type, ts, amount, quantity, received_at, request_id,
experiment, variant, strategy, model_version, campaign_id); five of them read from `context`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.analytics.upsert import insert_ignore, upsert_add
from app.models import CampaignHourly, Event, ExperimentUser, Item, RecHourly, ServedList

IN_CHUNK = 5_000  # ids per IN (...) list on SQLite, far below its parameter limit
HOURLY_COLUMNS = ("hour", "strategy", "model_version", "experiment", "variant", "impressions",
                  "clicks", "conversions", "revenue")  # fmt: skip
CAMPAIGN_COLUMNS = ("hour", "campaign_id", "impressions", "clicks", "conversions", "revenue")
USER_COLUMNS = ("experiment", "user_id", "variant", "first_seen_at", "lists", "impressions",
                "clicks", "conversions", "revenue")  # fmt: skip
LIST_COLUMNS = ("request_id", "user_id", "item_ids", "strategy", "model_version", "experiment",
                "variant", "served_at")  # fmt: skip
ListRow = tuple[Any, ...]  # (served_at, item_ids, strategy, model_version, experiment, variant)

_PG_EVENTS = """
SELECT id, user_id, item_id, type, ts, amount, quantity, received_at,
       context->>'request_id', context->>'experiment', context->>'variant',
       context->>'strategy', context->>'model_version', campaign_id
FROM events WHERE id > $1 AND type = ANY($2::text[]) ORDER BY id LIMIT $3
"""
_PG_BY_REQUEST = """
SELECT request_id, strategy, model_version, experiment, variant
FROM served_lists WHERE request_id = ANY($1::text[])
"""
_PG_BY_USER = """
SELECT user_id, served_at, item_ids::text, strategy, model_version, experiment, variant
FROM served_lists WHERE user_id = ANY($1::text[]) AND served_at >= $2 AND served_at <= $3
ORDER BY served_at DESC
"""
_PG_PRICES = "SELECT item_id, price FROM items WHERE item_id = ANY($1::text[])"
_PG_HOURLY = """
INSERT INTO rec_hourly (hour, strategy, model_version, experiment, variant, impressions,
                        clicks, conversions, revenue)
SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::int8[], $4::text[], $5::text[],
                     $6::int8[], $7::int8[], $8::int8[], $9::float8[])
ON CONFLICT (hour, strategy, model_version, experiment, variant) DO UPDATE SET
  impressions = rec_hourly.impressions + EXCLUDED.impressions,
  clicks = rec_hourly.clicks + EXCLUDED.clicks,
  conversions = rec_hourly.conversions + EXCLUDED.conversions,
  revenue = rec_hourly.revenue + EXCLUDED.revenue
"""
_PG_CAMPAIGNS = """
INSERT INTO campaign_hourly (hour, campaign_id, impressions, clicks, conversions, revenue)
SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::int8[], $4::int8[], $5::int8[],
                     $6::float8[])
ON CONFLICT (hour, campaign_id) DO UPDATE SET
  impressions = campaign_hourly.impressions + EXCLUDED.impressions,
  clicks = campaign_hourly.clicks + EXCLUDED.clicks,
  conversions = campaign_hourly.conversions + EXCLUDED.conversions,
  revenue = campaign_hourly.revenue + EXCLUDED.revenue
"""
_PG_USERS = """
INSERT INTO experiment_users (experiment, user_id, variant, first_seen_at, lists, impressions,
                              clicks, conversions, revenue)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::int4[],
                     $6::int4[], $7::int4[], $8::int4[], $9::float8[])
ON CONFLICT (experiment, user_id) DO UPDATE SET
  first_seen_at = LEAST(experiment_users.first_seen_at, EXCLUDED.first_seen_at),
  lists = experiment_users.lists + EXCLUDED.lists,
  impressions = experiment_users.impressions + EXCLUDED.impressions,
  clicks = experiment_users.clicks + EXCLUDED.clicks,
  conversions = experiment_users.conversions + EXCLUDED.conversions,
  revenue = experiment_users.revenue + EXCLUDED.revenue
"""
_PG_LISTS = """
INSERT INTO served_lists (request_id, user_id, item_ids, strategy, model_version, experiment,
                          variant, served_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::text[], $5::int8[], $6::text[],
                     $7::text[], $8::timestamptz[])
ON CONFLICT (request_id) DO NOTHING
RETURNING request_id
"""


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


class PgIO:
    """Postgres: one statement per step, ids and rows passed as arrays."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    @classmethod
    async def open(cls, session: AsyncSession) -> PgIO:
        conn = await session.connection()
        return cls((await conn.get_raw_connection()).driver_connection)

    async def events(self, cursor: int, types: tuple[str, ...], limit: int) -> list[tuple]:
        return [tuple(r) for r in await self.raw.fetch(_PG_EVENTS, cursor, list(types), limit)]

    async def lists_by_request(self, request_ids: list[str]) -> dict[str, tuple]:
        rows = await self.raw.fetch(_PG_BY_REQUEST, request_ids)
        return {r[0]: tuple(r)[1:] for r in rows}

    async def lists_by_user(
        self, users: list[str], lo: datetime, hi: datetime
    ) -> dict[str, list[ListRow]]:
        out: dict[str, list[ListRow]] = defaultdict(list)
        for r in await self.raw.fetch(_PG_BY_USER, users, lo, hi):
            items = r[2] if isinstance(r[2], list) else orjson.loads(r[2])  # codec or not
            out[r[0]].append((r[1], items, r[3], r[4], r[5], r[6]))
        return out

    async def prices(self, item_ids: list[str]) -> dict[str, float]:
        rows = await self.raw.fetch(_PG_PRICES, item_ids)
        return {r[0]: float(r[1]) for r in rows if r[1] is not None}

    async def upsert_hourly(self, rows: list[tuple]) -> None:
        if rows:
            await self.raw.execute(_PG_HOURLY, *_columns(rows, len(HOURLY_COLUMNS)))

    async def upsert_users(self, rows: list[tuple]) -> None:
        if rows:
            await self.raw.execute(_PG_USERS, *_columns(rows, len(USER_COLUMNS)))

    async def upsert_campaigns(self, rows: list[tuple]) -> None:
        if rows:
            await self.raw.execute(_PG_CAMPAIGNS, *_columns(rows, len(CAMPAIGN_COLUMNS)))

    async def insert_lists(self, rows: list[tuple]) -> set[str]:
        if not rows:
            return set()
        cols = _columns(rows, len(LIST_COLUMNS))
        cols[2] = [orjson.dumps(v).decode() for v in cols[2]]
        return {r[0] for r in await self.raw.fetch(_PG_LISTS, *cols)}


class SqlIO:
    """SQLite (embedded mode): the same steps through SQLAlchemy Core."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def events(self, cursor: int, types: tuple[str, ...], limit: int) -> list[tuple]:
        ctx = Event.context
        stmt = (
            select(Event.id, Event.user_id, Event.item_id, Event.type, Event.ts, Event.amount,
                   Event.quantity, Event.received_at, ctx["request_id"].as_string(),
                   ctx["experiment"].as_string(), ctx["variant"].as_string(),
                   ctx["strategy"].as_string(), ctx["model_version"].as_string(),
                   Event.campaign_id)
            .where(Event.id > cursor, Event.type.in_(types))
            .order_by(Event.id)
            .limit(limit)
        )  # fmt: skip
        return [tuple(r) for r in await self.session.execute(stmt)]

    async def lists_by_request(self, request_ids: list[str]) -> dict[str, tuple]:
        out: dict[str, tuple] = {}
        cols = (ServedList.request_id, ServedList.strategy, ServedList.model_version,
                ServedList.experiment, ServedList.variant)  # fmt: skip
        for start in range(0, len(request_ids), IN_CHUNK):
            part = request_ids[start : start + IN_CHUNK]
            for r in await self.session.execute(
                select(*cols).where(ServedList.request_id.in_(part))
            ):
                out[r[0]] = tuple(r)[1:]
        return out

    async def lists_by_user(
        self, users: list[str], lo: datetime, hi: datetime
    ) -> dict[str, list[ListRow]]:
        out: dict[str, list[ListRow]] = defaultdict(list)
        s = ServedList
        for start in range(0, len(users), IN_CHUNK):
            part = users[start : start + IN_CHUNK]
            stmt = (
                select(s.user_id, s.served_at, s.item_ids, s.strategy, s.model_version,
                       s.experiment, s.variant)
                .where(s.user_id.in_(part), s.served_at >= lo, s.served_at <= hi)
                .order_by(s.served_at.desc())
            )  # fmt: skip
            for r in await self.session.execute(stmt):
                out[r[0]].append(tuple(r)[1:])
        return out

    async def prices(self, item_ids: list[str]) -> dict[str, float]:
        out: dict[str, float] = {}
        for start in range(0, len(item_ids), IN_CHUNK):
            part = item_ids[start : start + IN_CHUNK]
            rows = await self.session.execute(
                select(Item.item_id, Item.price).where(Item.item_id.in_(part))
            )
            out.update({i: float(p) for i, p in rows if p is not None})
        return out

    async def upsert_hourly(self, rows: list[tuple]) -> None:
        await upsert_add(
            self.session,
            RecHourly,
            [dict(zip(HOURLY_COLUMNS, r, strict=True)) for r in rows],
            keys=list(HOURLY_COLUMNS[:5]),
            add=list(HOURLY_COLUMNS[5:]),
        )

    async def upsert_users(self, rows: list[tuple]) -> None:
        await upsert_add(
            self.session,
            ExperimentUser,
            [dict(zip(USER_COLUMNS, r, strict=True)) for r in rows],
            keys=["experiment", "user_id"],
            add=list(USER_COLUMNS[4:]),
            least=["first_seen_at"],
        )

    async def upsert_campaigns(self, rows: list[tuple]) -> None:
        await upsert_add(
            self.session,
            CampaignHourly,
            [dict(zip(CAMPAIGN_COLUMNS, r, strict=True)) for r in rows],
            keys=["hour", "campaign_id"],
            add=list(CAMPAIGN_COLUMNS[2:]),
        )

    async def insert_lists(self, rows: list[tuple]) -> set[str]:
        dicts = [dict(zip(LIST_COLUMNS, r, strict=True)) for r in rows]
        return set(
            await insert_ignore(self.session, ServedList, dicts, ["request_id"], "request_id")
        )


async def open_io(session: AsyncSession) -> PgIO | SqlIO:
    if session.get_bind().dialect.name == "postgresql":
        return await PgIO.open(session)
    return SqlIO(session)
