"""Storing event batches: one transaction, idempotent by event_id, append-only."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.events.schemas import EventIn
from app.models import Event, Item, User

# One statement per table with arrays (unnest) is as fast as COPY for 1000-row batches and
# keeps ON CONFLICT: re-sent events are skipped, concurrent duplicates wait for the first
# writer and are then skipped too. Rows are sorted by key so that concurrent batches take
# row locks in the same order and cannot deadlock.
_PG_INSERT_USERS = """
INSERT INTO users (user_id) SELECT unnest($1::text[])
ON CONFLICT (user_id) DO NOTHING
"""
_PG_INSERT_ITEMS = """
INSERT INTO items (item_id) SELECT unnest($1::text[])
ON CONFLICT (item_id) DO NOTHING
"""
_PG_INSERT_EVENTS = """
INSERT INTO events (event_id, user_id, item_id, campaign_id, type, ts, quantity, amount,
                    value, dwell_seconds, source, context)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                     $6::timestamptz[], $7::int[], $8::float8[], $9::float8[], $10::float8[],
                     $11::text[], $12::jsonb[])
ON CONFLICT (event_id) DO NOTHING
RETURNING type
"""


def _dedupe_sorted(events: list[EventIn]) -> list[EventIn]:
    """Events sorted by event_id, keeping the first of any id repeated inside the batch."""
    seen: dict[str, EventIn] = {}
    for ev in events:
        seen.setdefault(ev.event_id, ev)
    return [seen[k] for k in sorted(seen)]


async def store_events(session: AsyncSession, events: list[EventIn]) -> tuple[int, Counter[str]]:
    """Store a validated batch; return (events newly stored, their count by type)."""
    if not events:
        return 0, Counter()
    unique = _dedupe_sorted(events)
    if session.bind.dialect.name == "postgresql":
        inserted = await _store_postgres(session, unique)
    else:
        inserted = await _store_generic(session, unique)
    await session.commit()
    return sum(inserted.values()), inserted


async def _store_postgres(session: AsyncSession, events: list[EventIn]) -> Counter[str]:
    conn = await session.connection()
    raw: Any = (await conn.get_raw_connection()).driver_connection
    users = sorted({e.user_id for e in events})
    items = sorted({e.item_id for e in events if e.item_id is not None})
    await raw.execute(_PG_INSERT_USERS, users)
    if items:
        await raw.execute(_PG_INSERT_ITEMS, items)
    rows = await raw.fetch(
        _PG_INSERT_EVENTS,
        [e.event_id for e in events],
        [e.user_id for e in events],
        [e.item_id for e in events],
        [e.campaign_id for e in events],
        [e.type for e in events],
        [e.timestamp for e in events],
        [e.quantity for e in events],
        [e.amount for e in events],
        [e.value for e in events],
        [e.dwell_seconds for e in events],
        [e.source for e in events],
        [None if e.context is None else orjson.dumps(e.context).decode() for e in events],
    )
    return Counter(r[0] for r in rows)


async def _store_generic(session: AsyncSession, events: list[EventIn]) -> Counter[str]:
    """SQLite (embedded mode): INSERT OR IGNORE ... RETURNING counts only the new rows."""
    users = [{"user_id": u} for u in sorted({e.user_id for e in events})]
    items = [{"item_id": i} for i in sorted({e.item_id for e in events if e.item_id})]
    await session.execute(sqlite_insert(User).on_conflict_do_nothing(), users)
    if items:
        await session.execute(sqlite_insert(Item).on_conflict_do_nothing(), items)
    rows = [
        {
            "event_id": e.event_id,
            "user_id": e.user_id,
            "item_id": e.item_id,
            "campaign_id": e.campaign_id,
            "type": e.type,
            "ts": e.timestamp,
            "quantity": e.quantity,
            "amount": e.amount,
            "value": e.value,
            "dwell_seconds": e.dwell_seconds,
            "source": e.source,
            "context": e.context,
        }
        for e in events
    ]
    stmt = sqlite_insert(Event).on_conflict_do_nothing().returning(Event.type)
    result = await session.execute(stmt, rows)
    return Counter(result.scalars())
