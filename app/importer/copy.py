"""Catalog rows into Postgres through COPY: binary COPY into a temporary staging table, then
one INSERT ... SELECT ... ON CONFLICT DO UPDATE per set of fields into the real table.

The same semantics as the API's upsert (app/catalog/service.py): a field left out keeps its
stored value, a field sent as null clears it, repeats of an id in a batch merge field by
field with later ones winning, and `updated_at` moves on every write. Events need no staging:
app/events/service.py already COPYs them straight into `events`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import asyncpg
import orjson
from pydantic import BaseModel
from sqlalchemy import JSON, Float
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase


def _encoders(model: type[DeclarativeBase]) -> dict[str, Callable[[Any], Any]]:
    """Per column, JSON-mode values to what asyncpg's binary COPY takes (JSON as text)."""
    out: dict[str, Callable[[Any], Any]] = {}
    for column in model.__table__.columns:
        kind = column.type
        if isinstance(kind, JSON) or "JSON" in type(kind).__name__:
            out[column.name] = lambda v: None if v is None else orjson.dumps(v).decode()
        elif isinstance(kind, Float):
            out[column.name] = lambda v: None if v is None else float(v)
        else:
            out[column.name] = lambda v: v
    return out


def merged_groups(rows: list[BaseModel], key: str) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """Rows merged by id (later fields win), grouped by the fields they carry, ids sorted."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        data = row.model_dump(exclude_unset=True, mode="json")
        latest.setdefault(data[key], {}).update(data)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row_key in sorted(latest):
        data = latest[row_key]
        groups[tuple(sorted(data))].append(data)
    return groups


async def copy_upsert(
    session: AsyncSession, model: type[DeclarativeBase], key: str, rows: list[BaseModel]
) -> int:
    """Upsert a batch of catalog rows through COPY (Postgres only); returns rows written."""
    groups = merged_groups(rows, key)
    if not groups:
        return 0
    table = model.__tablename__
    stage = f"import_stage_{table}"
    encode = _encoders(model)
    conn = await session.connection()
    raw: asyncpg.Connection = (await conn.get_raw_connection()).driver_connection
    written = 0
    # Names below come from the ORM tables and the validated models' field names, never from
    # the file.
    async with raw.transaction():
        await raw.execute(
            f'CREATE TEMP TABLE "{stage}" (LIKE "{table}" INCLUDING DEFAULTS) ON COMMIT DROP'
        )
        for fields, group in groups.items():
            records = [tuple(encode[f](data.get(f)) for f in fields) for data in group]
            await raw.copy_records_to_table(stage, records=records, columns=list(fields))
            columns = ", ".join(f'"{f}"' for f in fields)
            updates = [f'"{f}" = EXCLUDED."{f}"' for f in fields if f != key]
            updates.append('"updated_at" = now()')
            # Sorted ids: concurrent writers lock rows in one order and cannot deadlock.
            await raw.execute(
                f'INSERT INTO "{table}" ({columns}) SELECT {columns} FROM "{stage}" '
                f'ORDER BY "{key}" ON CONFLICT ("{key}") DO UPDATE SET {", ".join(updates)}'
            )
            await raw.execute(f'TRUNCATE "{stage}"')
            written += len(group)
    await session.commit()
    return written
