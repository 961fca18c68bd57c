"""Upserting catalog rows (items, users, campaigns) and reading them back."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase


async def upsert(
    session: AsyncSession, model: type[DeclarativeBase], key: str, rows: list[BaseModel]
) -> int:
    """Insert or update rows by `key`; only the fields a client sent are written.

    A field left out keeps its stored value; a field sent as null clears it. Rows are
    grouped by the set of fields they carry so one statement serves each group.
    """
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        data = row.model_dump(exclude_unset=True, mode="json")
        # Repeats of an id merge field by field, later ones winning: the same result as
        # sending the entries one by one.
        latest.setdefault(data[key], {}).update(data)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row_key in sorted(latest):  # sorted keys: concurrent batches lock rows in one order
        data = latest[row_key]
        groups[tuple(sorted(data))].append(data)
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    for fields, group in groups.items():
        stmt = insert(model)
        updates: dict[str, Any] = {f: stmt.excluded[f] for f in fields if f != key}
        updates["updated_at"] = func.now()
        await session.execute(stmt.on_conflict_do_update(index_elements=[key], set_=updates), group)
    await session.commit()
    return len(latest)
