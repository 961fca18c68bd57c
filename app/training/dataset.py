"""Step 1: load the catalog and item interactions from the database, streaming.

Events arrive in chunks from a server-side cursor and are turned into numpy arrays at once,
so memory grows with compact arrays (about 30 bytes an event), not Python objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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
    # The CleanStats of the preprocess.clean() pass that produced these rows (None: raw rows);
    # clean() returns cleaned rows as they are, so the build and the profiles share one pass.
    cleaned: Any = None

    def __len__(self) -> int:
        return len(self.user)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)


def _epoch(engine: AsyncEngine) -> Any:
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


def _nan(values: tuple[float | None, ...]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float32)


@dataclass
class EventLog:
    """Item events read so far. The worker keeps it between rebuilds: events are append-only,
    so the next rebuild reads only rows with a larger id (see `refresh_log`)."""

    user_ids: list[str] = field(default_factory=list)
    user_index: dict[str, int] = field(default_factory=dict)
    item_ids: list[str] = field(default_factory=list)
    item_index: dict[str, int] = field(default_factory=dict)
    parts: dict[str, list[np.ndarray]] = field(
        default_factory=lambda: {k: [] for k in ("u", "i", "t", "ts", "q", "a", "v")}
    )
    last_id: int = 0
    count: int = 0

    def add(self, rows: list[tuple[Any, ...]]) -> None:
        """Append one chunk of (id, user, item, type, epoch, quantity, amount, value) rows."""
        ids, users, items, types, stamps, qty, amt, val = zip(*rows, strict=True)
        uidx, iidx = self.user_index, self.item_index
        self.parts["u"].append(
            np.fromiter((uidx.setdefault(u, len(uidx)) for u in users), np.int32)
        )
        self.parts["i"].append(
            np.fromiter((iidx.setdefault(i, len(iidx)) for i in items), np.int32)
        )
        self.parts["t"].append(np.fromiter((TYPE_CODE[t] for t in types), np.int8))
        self.parts["ts"].append(np.array(stamps, dtype=np.float64))
        self.parts["q"].append(_nan(qty))
        self.parts["a"].append(_nan(amt))
        self.parts["v"].append(_nan(val))
        self.user_ids.extend(list(uidx)[len(self.user_ids) :])
        self.item_ids.extend(list(iidx)[len(self.item_ids) :])
        self.last_id = max(self.last_id, int(max(ids)))
        self.count += len(rows)

    def column(self, key: str, dtype: type) -> np.ndarray:
        """One column as a single array (chunks are merged once and kept merged)."""
        chunks = self.parts[key]
        if len(chunks) > 1:
            self.parts[key] = chunks = [np.concatenate(chunks)]
        return chunks[0] if chunks else np.empty(0, dtype=dtype)

    def interactions(self, catalog: Catalog) -> Interactions:
        """The log with item codes in `catalog` order (unknown items are appended bare)."""
        to_catalog = np.fromiter((_item_code(catalog, i) for i in self.item_ids), np.int32)
        items = self.column("i", np.int32)
        return Interactions(
            user_ids=list(self.user_ids),
            user=self.column("u", np.int32),
            item=to_catalog[items] if len(items) else items,
            etype=self.column("t", np.int8),
            ts=self.column("ts", np.float64),
            quantity=self.column("q", np.float32),
            amount=self.column("a", np.float32),
            value=self.column("v", np.float32),
        )


_PG_CHUNK = """
SELECT id, user_id, item_id, type, extract(epoch FROM ts)::float8, quantity, amount, value
FROM events
WHERE id > $1 AND type = ANY($2::text[]) AND item_id IS NOT NULL
ORDER BY id LIMIT $3
"""
_PG_COUNT = "SELECT count(*) FROM events WHERE type = ANY($1::text[]) AND item_id IS NOT NULL"


async def refresh_log(engine: AsyncEngine, log: EventLog | None = None) -> EventLog:
    """Bring `log` up to date with the events table, or read it whole.

    The new rows and the total count are read in one snapshot. If the total is not the old
    count plus the new rows, something changed below the cursor (an erasure, or a
    transaction with a smaller id that committed late), and the log is read again in full.
    """
    for attempt in (log, None):
        current = attempt or EventLog()
        if await _read_since(engine, current):
            return current
    raise RuntimeError("the events table kept changing under the loader")


async def _read_since(engine: AsyncEngine, log: EventLog) -> bool:
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            raw: Any = (await conn.get_raw_connection()).driver_connection
            async with raw.transaction(isolation="repeatable_read", readonly=True):
                total = await raw.fetchval(_PG_COUNT, list(ITEM_EVENT_TYPES))
                while rows := await raw.fetch(
                    _PG_CHUNK, log.last_id, list(ITEM_EVENT_TYPES), CHUNK_ROWS
                ):
                    log.add([tuple(r) for r in rows])
            return bool(log.count == total)
        # SQLite: one read transaction is one snapshot in WAL mode.
        where = (Event.type.in_(ITEM_EVENT_TYPES), Event.item_id.is_not(None))
        total = await conn.scalar(select(func.count()).select_from(Event).where(*where))
        stmt = (
            select(Event.id, Event.user_id, Event.item_id, Event.type, _epoch(engine),
                   Event.quantity, Event.amount, Event.value)
            .where(Event.id > log.last_id, *where)
            .order_by(Event.id)
        )  # fmt: skip
        result = await conn.stream(stmt.execution_options(yield_per=CHUNK_ROWS))
        async for chunk in result.partitions(CHUNK_ROWS):
            log.add([tuple(r) for r in chunk])
        return bool(log.count == total)


async def load_interactions(engine: AsyncEngine, catalog: Catalog) -> Interactions:
    """Read every item event (no cache) into arrays."""
    return (await refresh_log(engine)).interactions(catalog)


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
