"""Step 1: load the catalog and item interactions from the database, streaming.

Events arrive in chunks from a server-side cursor and are turned into numpy arrays at once,
so memory grows with compact arrays (about 30 bytes an event), not Python objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import Float, cast, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.models import Event, Item

# Event types that say something about a shopper's taste for an item, in code order.
ITEM_EVENT_TYPES = (
    "view",
    "click",
    "rec_click",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
    "rating",
)
TYPE_CODE = {name: code for code, name in enumerate(ITEM_EVENT_TYPES)}
CHUNK_ROWS = 50_000


@dataclass
class Catalog:
    item_ids: list[str]
    category: list[str | None]
    brand: list[str | None]
    kind: list[str]
    title: list[str | None]
    tags: list[list[str]]
    price: np.ndarray
    available: np.ndarray
    index: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.item_ids)


@dataclass
class Interactions:
    """One row per item event; users and items are dense integer codes."""

    user_ids: list[str]
    user: np.ndarray  # int32 user code
    item: np.ndarray  # int32 item code (Catalog order)
    etype: np.ndarray  # int8 code into ITEM_EVENT_TYPES
    ts: np.ndarray  # float64 seconds since the epoch
    quantity: np.ndarray  # float32, NaN when missing
    amount: np.ndarray  # float32, NaN when missing
    value: np.ndarray  # float32, NaN when missing

    def __len__(self) -> int:
        return len(self.user)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)


def _epoch(engine: AsyncEngine):  # type: ignore[no-untyped-def]
    if engine.dialect.name == "postgresql":
        return cast(func.extract("epoch", Event.ts), Float)
    # SQLite stores UTC text; julianday keeps the fractional seconds.
    return (func.julianday(Event.ts) - 2440587.5) * 86400.0


async def load_catalog(engine: AsyncEngine) -> Catalog:
    """Every item with the attributes filters and content similarity need."""
    stmt = select(
        Item.item_id,
        Item.category,
        Item.brand,
        Item.kind,
        Item.title,
        Item.tags,
        Item.price,
        Item.available,
    ).order_by(Item.item_id)
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    catalog = Catalog(
        item_ids=[r[0] for r in rows],
        category=[r[1] for r in rows],
        brand=[r[2] for r in rows],
        kind=[r[3] or "product" for r in rows],
        title=[r[4] for r in rows],
        tags=[list(r[5] or []) for r in rows],
        price=np.array([np.nan if r[6] is None else r[6] for r in rows], dtype=np.float32),
        available=np.array([bool(r[7]) for r in rows], dtype=bool),
    )
    catalog.index = {item_id: i for i, item_id in enumerate(catalog.item_ids)}
    return catalog


def _nan(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float32)


async def load_interactions(
    engine: AsyncEngine, catalog: Catalog, since: datetime | None = None
) -> Interactions:
    """Stream item events (optionally only those at or after `since`) into arrays."""
    stmt = select(
        Event.user_id,
        Event.item_id,
        Event.type,
        _epoch(engine),
        Event.quantity,
        Event.amount,
        Event.value,
    ).where(Event.type.in_(ITEM_EVENT_TYPES), Event.item_id.is_not(None))
    if since is not None:
        stmt = stmt.where(Event.ts >= since)
    user_index: dict[str, int] = {}
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("u", "i", "t", "ts", "q", "a", "v")}
    async with engine.connect() as conn:
        result = await conn.stream(stmt.execution_options(yield_per=CHUNK_ROWS))
        async for chunk in result.partitions(CHUNK_ROWS):
            users, items, types, stamps, qty, amt, val = zip(*chunk, strict=True)
            parts["u"].append(
                np.fromiter((user_index.setdefault(u, len(user_index)) for u in users), np.int32)
            )
            parts["i"].append(np.fromiter((_item_code(catalog, i) for i in items), np.int32))
            parts["t"].append(np.fromiter((TYPE_CODE[t] for t in types), np.int8))
            parts["ts"].append(np.array(stamps, dtype=np.float64))
            parts["q"].append(_nan(list(qty)))
            parts["a"].append(_nan(list(amt)))
            parts["v"].append(_nan(list(val)))

    def cat(key: str, dtype: type) -> np.ndarray:
        return np.concatenate(parts[key]) if parts[key] else np.empty(0, dtype=dtype)

    return Interactions(
        user_ids=list(user_index),
        user=cat("u", np.int32),
        item=cat("i", np.int32),
        etype=cat("t", np.int8),
        ts=cat("ts", np.float64),
        quantity=cat("q", np.float32),
        amount=cat("a", np.float32),
        value=cat("v", np.float32),
    )


def _item_code(catalog: Catalog, item_id: str) -> int:
    """Catalog code of an item; an event's item missing from the catalog is appended bare."""
    code = catalog.index.get(item_id)
    if code is None:
        code = len(catalog.item_ids)
        catalog.index[item_id] = code
        catalog.item_ids.append(item_id)
        catalog.category.append(None)
        catalog.brand.append(None)
        catalog.kind.append("product")
        catalog.title.append(None)
        catalog.tags.append([])
        catalog.price = np.append(catalog.price, np.float32(np.nan))
        catalog.available = np.append(catalog.available, True)
    return code


def utc_from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)
