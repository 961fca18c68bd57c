"""Portable bulk upserts (Postgres and SQLite share the ON CONFLICT syntax)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession


def _insert(session: AsyncSession, model: Any) -> Any:
    table = model.__table__
    if session.get_bind().dialect.name == "postgresql":
        return pg_insert(table)
    return sqlite_insert(table)


async def insert_ignore(
    session: AsyncSession, model: Any, rows: list[dict[str, Any]], keys: list[str], returning: str
) -> set[Any]:
    """Insert rows whose key is new; returns the `returning` column of the inserted ones."""
    if not rows:
        return set()
    stmt = _insert(session, model)
    stmt = stmt.on_conflict_do_nothing(index_elements=keys).returning(model.__table__.c[returning])
    result = await session.execute(stmt, rows)
    return set(result.scalars())


async def upsert_add(
    session: AsyncSession,
    model: Any,
    rows: list[dict[str, Any]],
    *,
    keys: list[str],
    add: list[str],
    least: tuple[str, ...] | list[str] = (),
    defaults: dict[str, Any] | None = None,
) -> None:
    """Insert rows, or add their `add` columns to the stored ones (and keep the least of
    `least`). Keys must be unique within `rows` (callers aggregate first)."""
    if not rows:
        return
    table = model.__table__
    if defaults:
        rows = [{**defaults, **r} for r in rows]
    stmt = _insert(session, model)
    update: dict[str, Any] = {c: table.c[c] + stmt.excluded[c] for c in add}
    for c in least:
        update[c] = case((stmt.excluded[c] < table.c[c], stmt.excluded[c]), else_=table.c[c])
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_=update)
    await session.execute(stmt, rows)
